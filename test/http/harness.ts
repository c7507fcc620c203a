// The stack the HTTP tests run against: the real engine on a real SQLite file in a temp dir of
// its own, behind the real app, driven through app.inject(). One token per scope plus the
// legacy one; a ManualClock so stale agents need no sleeping.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { type Config, testConfig } from '../../src/config.ts';
import { ManualClock } from '../../src/engine/clock.ts';
import type { SwarmApi } from '../../src/engine/contract.ts';
import { SwarmEngine } from '../../src/engine/engine.ts';
import { type App, buildApp } from '../../src/http/app.ts';
import type { ResolvedTokens } from '../../src/http/tokens.ts';
import { openTestStore } from '../support/stores.ts';

export const TOKENS = {
  read: 'read-token-0123456789abcdef',
  agent: 'agent-token-0123456789abcdef',
  trade: 'trade-token-0123456789abcdef',
  admin: 'admin-token-0123456789abcdef',
  legacy: 'legacy-token-0123456789abcdef',
} as const;

export type TokenKey = keyof typeof TOKENS;

const RESOLVED: ResolvedTokens = {
  tokens: [
    { name: 'readonly', scope: 'read', token: TOKENS.read },
    { name: 'agent', scope: 'agent', token: TOKENS.agent },
    { name: 'trade', scope: 'trade', token: TOKENS.trade },
    { name: 'admin', scope: 'admin', token: TOKENS.admin },
    { name: 'legacy', scope: 'admin', token: TOKENS.legacy },
  ],
  generatedFile: null,
};

export interface Harness {
  app: App;
  engine: SwarmEngine;
  clock: ManualClock;
  config: Readonly<Config>;
  dir: string;
  close(): Promise<void>;
}

export interface HarnessOptions {
  config?: Partial<Config>;
  /** Where the app logs; silent by default. */
  logger?: Logger;
  /** Wraps the engine, to observe calls the HTTP layer makes (the store stays real). */
  wrap?: (engine: SwarmEngine) => SwarmApi;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(path.join(tmpdir(), 'owokx-http-'));
  const { store, databaseUrl } = await openTestStore(dir);
  const config = testConfig({
    dataDir: dir,
    databaseUrl,
    logLevel: 'silent',
    ...options.config,
  });
  const log = pino({ level: 'silent' });
  const clock = new ManualClock(Date.UTC(2025, 0, 1));

  const engine = new SwarmEngine({ store, config, log, clock, loops: false });
  await engine.start();

  const api = options.wrap?.(engine) ?? engine;
  const app = await buildApp({ api, config, logger: options.logger ?? log, tokens: RESOLVED });

  return {
    app,
    engine,
    clock,
    config,
    dir,
    async close() {
      await app.close();
      await engine.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Call {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  token?: TokenKey | null;
  body?: unknown;
  /** Sent as is, with Content-Type application/json unless headers say otherwise. */
  raw?: string;
  headers?: Record<string, string>;
}

export interface Answer {
  status: number;
  headers: Record<string, unknown>;
  // biome-ignore lint/suspicious/noExplicitAny: tests read answers field by field
  body: any;
  text: string;
}

/** One request through app.inject(); JSON bodies are sent with their Content-Type. */
export async function call(app: App, req: Call): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (req.token !== null) headers.authorization = `Bearer ${TOKENS[req.token ?? 'admin']}`;

  let payload: string | undefined;
  if (req.body !== undefined || req.raw !== undefined) {
    headers['content-type'] = 'application/json';
    payload = req.raw ?? JSON.stringify(req.body);
  }
  Object.assign(headers, req.headers);

  const res = await app.inject({ method: req.method, url: req.url, headers, payload });
  let body: unknown;
  try {
    body = res.body === '' ? undefined : JSON.parse(res.body);
  } catch {
    body = res.body;
  }

  return { status: res.statusCode, headers: res.headers, body, text: res.body };
}

/** Registers a pull agent and gives it one dead letter (nacked without retry); returns its id. */
export async function makeDeadLetter(
  app: App,
  agentId = 'scout-1',
  message: Record<string, unknown> = {},
): Promise<string> {
  await call(app, {
    method: 'POST',
    url: '/swarm/agents',
    token: 'agent',
    body: { id: agentId, type: 'scout' },
  });
  const enqueued = await call(app, {
    method: 'POST',
    url: '/swarm/messages',
    token: 'agent',
    body: { message: { target: agentId, topic: 'drill', payload: { n: 1 }, ...message } },
  });
  const queueId = enqueued.body.queueId as string;

  await call(app, { method: 'POST', url: `/swarm/agents/${agentId}/poll`, token: 'agent' });
  await call(app, {
    method: 'POST',
    url: '/swarm/nack',
    token: 'agent',
    body: { queueIds: [queueId], retry: false, error: 'cannot handle it' },
  });

  return queueId;
}

/** What a rejected request must leave untouched: the queue, the counters, agents and audit. */
export async function snapshot(app: App): Promise<unknown> {
  const [queue, metrics, agents, audit] = await Promise.all([
    call(app, { method: 'GET', url: '/swarm/queue', token: 'read' }),
    call(app, { method: 'GET', url: '/swarm/metrics', token: 'read' }),
    call(app, { method: 'GET', url: '/swarm/agents', token: 'read' }),
    call(app, { method: 'GET', url: '/swarm/audit', token: 'read' }),
  ]);

  return {
    queue: queue.body,
    stats: metrics.body.stats,
    gauges: metrics.body.queue,
    agents: agents.body,
    audit: audit.body.total,
  };
}
