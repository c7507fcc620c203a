// swarmctl's read commands and its contract with scripts: exit codes, --json shapes, messages
// for refused connections and tokens, colour only on a terminal. Real binary, real server.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ANSI,
  cliEnv,
  parseJson,
  startServer,
  swarmctl,
  swarmctlOnTty,
  type TestServer,
  TOKENS,
} from './harness.ts';
import { enqueue, registerPullAgent, rejectAll } from './swarm.ts';

let server: TestServer;

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  await server?.stop();
});

describe('usage', () => {
  it('prints help and exits 0', async () => {
    const r = await swarmctl(['--help']);

    expect(r.code).toBe(0);
    expect(r.stdout).toContain('drill');
    expect(r.stdout).toContain('verify');
  });

  it('exits 2 for an unknown command, naming it', async () => {
    const r = await swarmctl(['frobnicate']);

    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
  });

  it('exits 2 for a malformed option value before sending anything', async () => {
    const r = await swarmctl(['dlq', 'list', '--limit', 'many'], { env: cliEnv(server) });

    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--limit');
  });

  it('exits 2 when the server rejects a value as out of range', async () => {
    const r = await swarmctl(['dlq', 'list', '--limit', '5000'], { env: cliEnv(server) });

    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/400 invalid_request: .*limit/);
  });

  it('exits 2 for dlq purge without any filter, and purges nothing', async () => {
    const r = await swarmctl(['dlq', 'purge'], { env: cliEnv(server) });

    expect(r.code).toBe(2);
    expect(r.stderr).toContain('needs at least one filter');
  });

  it('exits 2 for a --url that is not http(s)', async () => {
    const r = await swarmctl(['--url', 'ftp://example.com', 'health']);

    expect(r.code).toBe(2);
  });
});

describe('unreachable and unauthorised', () => {
  it('exits 3 with a clear message when nothing listens', async () => {
    const r = await swarmctl(['--url', 'http://127.0.0.1:9', 'health'], {
      env: { OWOKX_TOKEN: TOKENS.read },
    });

    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      'cannot reach http://127.0.0.1:9: connection refused — is the server running? (npm start)',
    );
  });

  it('exits 3 on a timeout, saying so', async () => {
    // A server that accepts the connection and never answers.
    const net = await import('node:net');
    const sockets: import('node:net').Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;

    try {
      const r = await swarmctl(
        ['--url', `http://127.0.0.1:${port}`, '--timeout', '300', 'health'],
        {
          env: { OWOKX_TOKEN: TOKENS.read },
        },
      );

      expect(r.code).toBe(3);
      expect(r.stderr).toContain('timed out after 300ms');
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('exits 3 with the 401 message when the token is unknown', async () => {
    const r = await swarmctl(['metrics'], { env: { OWOKX_URL: server.url, OWOKX_TOKEN: 'nope' } });

    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      "401 unauthorized: the token from OWOKX_TOKEN was refused — give this server's with OWOKX_TOKEN or --token",
    );
  });

  it('exits 3 with the 403 message naming the missing scope', async () => {
    const r = await swarmctl(['dispatch'], {
      env: { OWOKX_URL: server.url, OWOKX_TOKEN: TOKENS.read },
    });

    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      '403 forbidden: this token lacks the trade scope needed for dispatch',
    );
  });
});

describe('token choice', () => {
  it('sends the least-scoped token a command needs, falling back upward', async () => {
    // Only trade and admin set: dispatch must go with trade, not admin.
    const env = {
      OWOKX_URL: server.url,
      OWOKX_API_TOKEN_TRADE: TOKENS.trade,
      OWOKX_API_TOKEN_ADMIN: TOKENS.admin,
    };
    expect((await swarmctl(['dispatch', '--limit', '1'], { env })).code).toBe(0);

    // metrics falls back from read (unset) to trade.
    expect((await swarmctl(['metrics'], { env })).code).toBe(0);

    const audit = await server.read.audit({ limit: 1 });
    expect(audit.items[0]?.action).toBe('dispatch');
    expect(audit.items[0]?.tokenName).toBe('trade');
  });

  it('uses the legacy OWOKX_API_TOKEN as admin for purge', async () => {
    const legacy = await startServer({
      env: {
        OWOKX_API_TOKEN_READONLY: '',
        OWOKX_API_TOKEN_AGENT: '',
        OWOKX_API_TOKEN_TRADE: '',
        OWOKX_API_TOKEN_ADMIN: '',
        OWOKX_API_TOKEN: 'legacy-token-0123456789abcdef',
      },
    });

    try {
      const r = await swarmctl(['dlq', 'purge', '--topic', 'none', '--dry-run'], {
        env: { OWOKX_URL: legacy.url, OWOKX_API_TOKEN: 'legacy-token-0123456789abcdef' },
      });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('dry run: would purge 0 dead letters');
    } finally {
      await legacy.stop();
    }
  });

  it("finds the server's generated tokens.json on loopback when no token is set", async () => {
    const fresh = await startServer({ noTokens: true });

    try {
      const r = await swarmctl([
        '--url',
        fresh.url,
        '--data-dir',
        fresh.dataDir,
        'health',
        '--json',
      ]);
      expect(r.code).toBe(0);
      expect(parseJson<{ status: string }>(r).status).toBe('healthy');

      const missing = await swarmctl(['--url', fresh.url, '--data-dir', '/nonexistent', 'health']);
      expect(missing.code).toBe(3);
      expect(missing.stderr).toContain('401 unauthorized');
    } finally {
      await fresh.stop();
    }
  });
});

describe('read commands', () => {
  beforeAll(async () => {
    await registerPullAgent(server.agent, 'reader-1', 'analyst');
    await server.agent.subscribe('reader-1', 'signals');
    await enqueue(server.agent, 'reader-1', 2, 'signals');
    await rejectAll(server.agent, 'reader-1', 2);
  });

  it('health exits 1 when the swarm is degraded, and lists the reasons', async () => {
    const r = await swarmctl(['health'], { env: cliEnv(server) });

    expect(r.code).toBe(1);
    expect(r.stdout).toContain('DEGRADED');
    expect(r.stdout).toContain('dead_letters_present');
  });

  it('health --json is the server answer', async () => {
    const r = await swarmctl(['health', '--json'], { env: cliEnv(server) });
    const body = parseJson<Record<string, unknown>>(r);

    expect(r.code).toBe(1);
    expect(body).toMatchObject({ status: 'degraded', degraded: true });
    expect(body.deadLettered).toBe(2);
    expect(Array.isArray(body.reasons)).toBe(true);
  });

  it('metrics --json carries every section of the contract', async () => {
    const r = await swarmctl(['metrics', '--json'], { env: cliEnv(server) });
    const m = parseJson<Record<string, Record<string, unknown>>>(r);

    expect(r.code).toBe(0);
    expect(Object.keys(m)).toEqual(
      expect.arrayContaining([
        'timestamp',
        'staleAfterMs',
        'agents',
        'queue',
        'stats',
        'rates',
        'dispatch',
      ]),
    );
    expect(m.queue?.deadLettered).toBe(2);
  });

  it('agents and agent <id> show the registry', async () => {
    const list = await swarmctl(['agents', '--type', 'analyst', '--json'], { env: cliEnv(server) });
    const page = parseJson<{ agents: { id: string }[]; total: number; nextCursor: unknown }>(list);
    expect(page.agents.map((a) => a.id)).toContain('reader-1');
    expect(page).toHaveProperty('nextCursor');

    const human = await swarmctl(['agents'], { env: cliEnv(server) });
    expect(human.stdout).toMatch(/ID\s+TYPE\s+STATUS/);
    expect(human.stdout).toMatch(/reader-1\s+analyst\s+active/);

    const one = await swarmctl(['agent', 'reader-1'], { env: cliEnv(server) });
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/subscriptions\s+signals/);

    const unknown = await swarmctl(['agent', 'nobody'], { env: cliEnv(server) });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('404 not_found');
  });

  it('routing shows next targets and anomalies', async () => {
    const r = await swarmctl(['routing', '--json'], { env: cliEnv(server) });
    const body = parseJson<{ strategy: string; types: { type: string }[]; anomalies: unknown[] }>(
      r,
    );
    expect(body.types.map((t) => t.type)).toContain('analyst');

    const typed = await swarmctl(['routing', '--type', 'analyst', '--count', '2', '--json'], {
      env: cliEnv(server),
    });
    expect(parseJson<{ agentType: string; targets: string[] }>(typed)).toMatchObject({
      agentType: 'analyst',
      targets: ['reader-1', 'reader-1'],
    });
  });

  it('queue, dlq list and dlq show agree on the dead letters', async () => {
    const queue = parseJson<{ deadLettered: number; byTopic: Record<string, unknown> }>(
      await swarmctl(['queue', '--json'], { env: cliEnv(server) }),
    );
    expect(queue.deadLettered).toBe(2);
    expect(queue.byTopic).toHaveProperty('signals');

    const list = parseJson<{ items: { queueId: string; reason: string }[]; total: number }>(
      await swarmctl(['dlq', 'list', '--reason', 'rejected', '--json'], { env: cliEnv(server) }),
    );
    expect(list.total).toBe(2);
    expect(list.items[0]?.reason).toBe('rejected');

    const id = list.items[0]?.queueId as string;
    const show = await swarmctl(['dlq', 'show', id], { env: cliEnv(server) });
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/reason\s+rejected/);
    expect(show.stdout).toContain('handler refused the message');

    const human = await swarmctl(['dlq', 'list'], { env: cliEnv(server) });
    expect(human.stdout).toMatch(/QUEUE ID\s+TOPIC\s+TARGET\s+REASON/);
    expect(human.stdout).toContain('2 of 2 dead letters');
  });

  it('writes no colour when stdout is not a terminal', async () => {
    const r = await swarmctl(['health'], { env: cliEnv(server) });

    expect(r.stdout).not.toMatch(ANSI);
  });

  it('colours its output on a terminal, unless NO_COLOR is set', async () => {
    const tty = await swarmctlOnTty(['health'], { env: cliEnv(server) });
    expect(tty.code).toBe(1);
    expect(tty.stdout).toMatch(ANSI);
    expect(tty.stdout).toContain('DEGRADED');

    const plain = await swarmctlOnTty(['health'], { env: cliEnv(server, { NO_COLOR: '1' }) });
    expect(plain.stdout).not.toMatch(ANSI);
    expect(plain.stdout).toContain('DEGRADED');
  });
});
