// What the engine offers the HTTP layer, the CLI's `serve` and the tests. Inputs here are
// already validated for shape by the HTTP schemas; the engine still enforces the rules that
// need stored state (unknown agents, lease holders, routing).

import type {
  AgentStatus,
  AgentView,
  AuthScope,
  DeadLetterReason,
  Delivery,
  MessageType,
  Priority,
  QueueEntry,
  QueueGauges,
  Stats,
  TopicGauges,
} from '../core/types.ts';
import type { StoreFileSizes } from '../store/store.ts';

/**
 * What a waiting poll needs to know of its caller hanging up. An AbortSignal is one; the HTTP
 * route passes a lighter one (EventTarget-based signals cost tens of µs per poll here).
 */
export interface CancelSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export interface Page<T> {
  items: T[];
  total: number;
  nextCursor: string | null;
}

/** Who asked: recorded in the audit log for recovery and admin calls. Never the token. */
export interface Actor {
  scope: AuthScope;
  tokenName: string;
  requestId?: string;
}

export interface RegisterAgentInput {
  id?: string;
  type: string;
  status?: AgentStatus;
  capabilities?: string[];
  endpoint?: string | null;
  maxInflight?: number;
  metadata?: Record<string, unknown>;
}

export interface RegisterAgentResult {
  agent: AgentView;
  heartbeatIntervalMs: number;
  staleAfterMs: number;
}

export interface HeartbeatInput {
  status?: AgentStatus;
  metrics?: Record<string, unknown>;
}

export interface MessageInput {
  id?: string;
  source?: string;
  target: string;
  type?: MessageType;
  topic?: string | null;
  payload?: unknown;
  timestamp?: string;
  correlationId?: string;
  replyTo?: string;
  priority?: Priority;
  ttlMs?: number;
  headers?: Record<string, string>;
}

export interface EnqueueInput {
  message: MessageInput;
  delayMs?: number;
  maxAttempts?: number;
}

export interface EnqueueResult {
  /** The entry created (or the existing one, for a duplicate); null for a broadcast to nobody. */
  queueId: string | null;
  /** Every entry created: one, or one per live agent for a broadcast. */
  queueIds: string[];
  duplicate: boolean;
  messageId: string;
}

export interface PublishInput {
  topic: string;
  payload?: unknown;
  source?: string;
  priority?: Priority;
  ttlMs?: number;
  type?: MessageType;
  id?: string;
  headers?: Record<string, string>;
  correlationId?: string;
}

export interface PublishResult {
  enqueued: number;
  queueIds: string[];
}

export interface PollInput {
  limit: number;
  waitMs: number;
  leaseMs: number;
}

export interface AckResult {
  acked: number;
  rejected: { queueId: string; why: string }[];
}

export interface NackInput {
  queueIds: string[];
  error?: string;
  retry?: boolean;
  delayMs?: number;
  agentId?: string;
}

export interface NackResult {
  retried: number;
  deadLettered: number;
  rejected: { queueId: string; why: string }[];
}

export interface AgentQuery {
  type?: string;
  status?: AgentStatus;
  stale?: boolean;
  limit: number;
  cursor?: string;
}

export interface AgentDetail extends AgentView {
  subscriptions: string[];
  /** The metrics of the agent's last heartbeat that carried any; null if none did. */
  lastMetrics: Record<string, unknown> | null;
  lastMetricsAt: number | null;
}

export interface RoutingType {
  type: string;
  agents: number;
  live: number;
  pending: number;
  targets: string[];
}

export interface RoutingAnomaly {
  kind: 'stale_target' | 'no_live_agents' | 'stale_subscriber';
  message: string;
  agentId?: string;
  type?: string;
  capability?: string;
  topic?: string;
  count?: number;
}

export interface RoutingOverview {
  strategy: string;
  types: RoutingType[];
  anomalies: RoutingAnomaly[];
}

export interface RoutingForType {
  agentType: string;
  targets: string[];
  live: number;
  pending: number;
  anomalies: RoutingAnomaly[];
}

export interface QueueSummary extends QueueGauges {
  byTopic: Record<string, TopicGauges>;
  stats: Stats;
}

export interface DeadLetterQuery {
  topic?: string;
  target?: string;
  reason?: DeadLetterReason;
  limit: number;
  cursor?: string;
}

export interface DispatchResult {
  delivered: number;
  failed: number;
  deadLettered: number;
  pending: number;
  durationMs: number;
}

export interface RequeueInput {
  limit: number;
  ids?: string[];
  topic?: string;
  target?: string;
  reason?: DeadLetterReason;
  dryRun: boolean;
}

export interface RequeueResult {
  requeued: number;
  remaining: number;
  skipped: { queueId: string; why: string }[];
  dryRun: boolean;
  /** The entries requeued (or that would be, on a dry run). */
  queueIds: string[];
}

export interface PruneInput {
  staleMs: number;
  dryRun: boolean;
}

export interface PruneResult {
  removed: number;
  remaining: number;
  removedIds: string[];
  released: number;
  deadLettered: number;
  dryRun: boolean;
}

export interface PurgeInput {
  ids?: string[];
  topic?: string;
  reason?: DeadLetterReason;
  olderThanMs?: number;
  dryRun: boolean;
}

export interface PurgeResult {
  purged: number;
  remaining: number;
  dryRun: boolean;
}

export interface AuditRecord {
  id: string;
  at: number;
  timestamp: string;
  scope: AuthScope;
  tokenName: string;
  action: string;
  parameters: Record<string, unknown>;
  result: Record<string, unknown>;
}

export interface HealthReason {
  code:
    | 'dead_letters_present'
    | 'dead_letters_growing'
    | 'stale_agents'
    | 'delivery_failures_elevated'
    | 'queue_pressure'
    | 'no_live_agents'
    | 'dispatcher_stalled'
    | 'store_unreachable';
  message: string;
  value: number;
  threshold: number;
}

export interface Escalation {
  condition: 'dead_letters_rising' | 'stale_agents_not_fewer' | 'failures_elevated' | 'degraded';
  cycles: number;
  since: number;
}

export interface SwarmHealth {
  healthy: boolean;
  degraded: boolean;
  status: 'healthy' | 'degraded' | 'unhealthy';
  reasons: HealthReason[];
  deadLettered: number;
  staleAgents: number;
  activeAgents: number;
  totalAgents: number;
  queueDepth: number;
  deliveryFailureRate: number;
  escalate: boolean;
  escalations: Escalation[];
  recoveryCycles: number;
  timestamp: string;
}

export interface SwarmMetrics {
  timestamp: string;
  staleAfterMs: number;
  agents: {
    total: number;
    active: number;
    stale: number;
    byType: Record<string, number>;
    byStatus: Record<string, number>;
  };
  queue: QueueGauges;
  stats: Stats;
  rates: {
    windowMs: number;
    deliveryAttempts: number;
    deliveryFailures: number;
    deliveryFailureRate: number;
    deadLetteredInWindow: number;
    enqueuedPerSec: number;
    deliveredPerSec: number;
  };
  dispatch: { lastRunAt: number | null; lastDelivered: number; lastFailed: number };
}

export interface Liveness {
  status: 'ok';
  version: string;
  uptimeMs: number;
  startedAt: number;
}

/** The swarm's operations. Every method is safe to call concurrently. */
export interface SwarmApi {
  liveness(): Liveness;
  ready(): Promise<boolean>;
  /** The store's files on disk, for the Prometheus view; null when it has none. */
  storeFileSizes(): StoreFileSizes | null;
  swarmHealth(): Promise<SwarmHealth>;
  metrics(): Promise<SwarmMetrics>;

  listAgents(query: AgentQuery): Promise<Page<AgentView>>;
  getAgent(id: string): Promise<AgentDetail>;
  routing(type: string | undefined, count: number): Promise<RoutingOverview | RoutingForType>;
  queueSummary(): Promise<QueueSummary>;
  listDeadLetters(query: DeadLetterQuery): Promise<Page<QueueEntry>>;
  getEntry(queueId: string): Promise<QueueEntry>;
  subscriptions(topic?: string): Promise<Record<string, string[]>>;
  listAudit(limit: number, cursor?: string): Promise<Page<AuditRecord>>;

  dispatch(limit: number, actor: Actor): Promise<DispatchResult>;
  requeueDeadLetters(input: RequeueInput, actor: Actor): Promise<RequeueResult>;
  pruneStale(input: PruneInput, actor: Actor): Promise<PruneResult>;
  purgeDeadLetters(input: PurgeInput, actor: Actor): Promise<PurgeResult>;

  registerAgent(input: RegisterAgentInput): Promise<RegisterAgentResult>;
  heartbeat(id: string, input: HeartbeatInput): Promise<void>;
  deregisterAgent(id: string): Promise<{ released: number; deadLettered: number }>;
  subscribe(agentId: string, topic: string): Promise<void>;
  unsubscribe(agentId: string, topic: string): Promise<void>;

  /** `batch`: the request was a `messages` list, so errors name `messages[i]`, even of one. */
  enqueue(inputs: EnqueueInput[], batch?: boolean): Promise<EnqueueResult[]>;
  publish(input: PublishInput): Promise<PublishResult>;
  /** Leases up to `limit` entries; with waitMs > 0 waits until one arrives or the signal aborts. */
  poll(agentId: string, input: PollInput, signal?: CancelSignal): Promise<Delivery[]>;
  ack(queueIds: string[], agentId?: string): Promise<AckResult>;
  nack(input: NackInput): Promise<NackResult>;
  /** The original worker's poll: hand out and acknowledge in one step. */
  pollAndAck(agentId: string, limit: number): Promise<Delivery[]>;
}
