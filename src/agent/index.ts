// The agent SDK: what an agent process imports to join the swarm.

export { type StopOptions, SwarmAgent, type SwarmAgentOptions } from './agent.ts';
export type { ConsumeOptions, ConsumerStats } from './consumer.ts';
export type { PushServer, PushServerStats, ServeOptions } from './push-server.ts';
export {
  type AgentLogger,
  type DeliveryContext,
  failureOf,
  type MessageHandler,
  PermanentError,
} from './types.ts';
