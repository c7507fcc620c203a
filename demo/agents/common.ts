// What every demo agent process shares: where the server is (from the environment the demo
// sets), a JSON-lines event stream on stdout that the demo and the tests read, and a
// clean exit on SIGINT/SIGTERM that deregisters the agent.

import { type AgentLogger, SwarmAgent, type SwarmAgentOptions } from '../../src/agent/index.ts';

export interface DemoEnv {
  url: string;
  token: string;
  id: string;
}

export function demoEnv(): DemoEnv {
  const url = process.env.OWOKX_URL;
  const token = process.env.OWOKX_AGENT_TOKEN;
  const id = process.env.AGENT_ID;

  if (!url || !token || !id) {
    console.error('OWOKX_URL, OWOKX_AGENT_TOKEN and AGENT_ID must be set (demo/run.ts sets them)');
    process.exit(2);
  }
  return { url, token, id };
}

// A closed stdout (the demo went away) must not crash the agent before it deregisters; the
// orphan check in demoAgent() takes it down cleanly.
process.stdout.on('error', () => {});

/** One event as one JSON line: {"event":"acked","agent":"analyst-1",...}. */
export function emit(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ event, agent: process.env.AGENT_ID, ...fields })}\n`);
}

const log: AgentLogger = (level, message, fields) => {
  if (level === 'debug') return;
  emit('log', { level, message, ...fields });
};

/** An agent wired to the demo's server, deregistering on SIGINT/SIGTERM. */
export function demoAgent(
  options: Omit<SwarmAgentOptions, 'baseUrl' | 'token' | 'id' | 'client'>,
): SwarmAgent {
  const env = demoEnv();
  const agent = new SwarmAgent({
    baseUrl: env.url,
    token: env.token,
    id: env.id,
    handleSignals: true,
    log,
    ...options,
  });

  // The demo starts agents in their own process group, so a parent that dies without
  // stopping them (kill -9) would leave them running: notice and leave too.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid === parent) return;
    void Promise.race([agent.stop(), sleep(3000)]).finally(() => process.exit(0));
  }, 1000).unref();

  return agent;
}

/** A number from the environment, or the default. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;

  const n = Number(raw);
  if (!Number.isFinite(n)) {
    console.error(`${name} must be a number (got "${raw}")`);
    process.exit(2);
  }
  return n;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Reports a failure that stops the agent, as an event and on stderr, and exits non-zero. */
export function fatal(err: unknown): never {
  emit('fatal', { error: (err as Error)?.message ?? String(err) });
  console.error(err);
  process.exit(1);
}
