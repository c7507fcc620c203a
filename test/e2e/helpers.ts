// Shared setup for the end-to-end tests: a real coordinator process on a free port with a
// SQLite file in a temp directory (or, in the "postgres" test project, a PostgreSQL schema of
// its own), real agent processes, and the bookkeeping to kill them all.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  freePort,
  generateTokens,
  type ManagedProcess,
  type ServerProcess,
  spawnAgent,
  spawnServer,
  type Tokens,
  waitReady,
} from '../../demo/processes.ts';
import { SwarmClient } from '../../src/client/index.ts';
import { testDatabaseUrl } from '../support/stores.ts';

export interface AgentEvent {
  event: string;
  agent: string;
  [key: string]: unknown;
}

/** An agent process and every event it reported, in order. */
export class AgentHandle {
  readonly events: AgentEvent[] = [];

  constructor(readonly process: ManagedProcess) {
    process.onLine((line) => {
      if (!line.startsWith('{')) return;
      try {
        this.events.push(JSON.parse(line) as AgentEvent);
      } catch {
        // Not one of ours (a stray log line).
      }
    });
  }

  count(event: string): number {
    return this.events.filter((e) => e.event === event).length;
  }

  /** Every queueId named by `event` events (one per `queueId`, or each of `queueIds`). */
  queueIds(event: string): string[] {
    const ids: string[] = [];
    for (const e of this.events) {
      if (e.event !== event) continue;
      if (typeof e.queueId === 'string') ids.push(e.queueId);
      if (Array.isArray(e.queueIds)) ids.push(...(e.queueIds as string[]));
    }
    return ids;
  }

  async waitFor(event: string, timeoutMs = 15_000): Promise<AgentEvent> {
    await until(
      () => this.events.some((e) => e.event === event),
      timeoutMs,
      () => `${this.process.name} never reported "${event}":\n${this.process.recentOutput()}`,
    );
    return this.events.find((e) => e.event === event) as AgentEvent;
  }
}

/** Polls `check` every 50 ms until it is true; throws with `why()` after timeoutMs. */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  why: () => string = () => 'condition not met',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;

  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs}ms: ${why()}`);
}

export interface Swarm {
  url: string;
  port: number;
  dir: string;
  tokens: Tokens;
  server: ServerProcess;
  /** Admin-token client for the test's own checks and sends. */
  client: SwarmClient;
  agent(name: string, env?: Record<string, string>): Promise<AgentHandle>;
  /** The store's URL: the SQLite file, or the PostgreSQL schema. */
  databaseUrl: string;
  /** Starts the server again on the same port and store (after a kill). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

const FIXTURE = 'test/e2e/fixtures/agent.ts';

// Whatever ends this test process (a crash, a timeout), it takes its children along.
const children = new Set<ManagedProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** A server on a free port with its own temp data dir; `env` adds OWOKX_* settings. */
export async function startSwarm(env: Record<string, string> = {}): Promise<Swarm> {
  const dir = mkdtempSync(path.join(tmpdir(), 'owokx-e2e-'));
  const port = await freePort();
  const tokens = generateTokens();
  const agents: ManagedProcess[] = [];
  const databaseUrl = await testDatabaseUrl(dir);

  const launch = async (): Promise<ServerProcess> => {
    const server = spawnServer({
      port,
      dataDir: dir,
      databaseUrl,
      tokens,
      env,
      logLevel: 'warn',
    });
    children.add(server);
    await waitReady(server.url, 30_000, server);
    return server;
  };

  let server = await launch();
  const client = new SwarmClient({ baseUrl: server.url, token: tokens.admin, timeoutMs: 5000 });

  const swarm: Swarm = {
    url: server.url,
    port,
    dir,
    tokens,
    databaseUrl,
    get server() {
      return server;
    },
    client,

    async agent(name, agentEnv = {}) {
      const proc = spawnAgent({
        script: FIXTURE,
        name,
        url: server.url,
        token: tokens.agent,
        env: agentEnv,
      });
      agents.push(proc);
      children.add(proc);
      const handle = new AgentHandle(proc);
      await handle.waitFor('ready', 20_000);
      return handle;
    },

    async restart() {
      if (server.running) await server.stop();
      server = await launch();
    },

    async close() {
      await Promise.all(agents.map((a) => a.stop(3000)));
      await server.stop(5000);
      await client.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return swarm;
}
