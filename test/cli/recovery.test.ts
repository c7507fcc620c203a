// The recovery actions one by one: dlq requeue and purge (with --dry-run), dispatch,
// prune-stale, and the audit trail they leave. Real binary against a real server.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEnv, parseJson, sleep, startServer, swarmctl, type TestServer } from './harness.ts';
import { enqueue, registerPullAgent, rejectAll } from './swarm.ts';

let server: TestServer;
let deadIds: string[];

beforeAll(async () => {
  server = await startServer({
    env: {
      OWOKX_STALE_AFTER_MS: '1000',
      OWOKX_PRUNE_MIN_STALE_MS: '0',
      OWOKX_AUTO_PRUNE_AFTER_MS: '0',
    },
  });
  await registerPullAgent(server.agent, 'worker-1', 'worker');
  deadIds = await enqueue(server.agent, 'type:worker', 4, 'orders');
  await rejectAll(server.agent, 'worker-1', 4);
});

afterAll(async () => {
  await server?.stop();
});

describe('dlq requeue', () => {
  it('--dry-run reports what would be requeued and changes nothing', async () => {
    const r = await swarmctl(['dlq', 'requeue', '--dry-run', '--json'], { env: cliEnv(server) });

    expect(r.code).toBe(0);
    // What would stay, as the real call would answer: all four would move.
    expect(parseJson(r)).toMatchObject({ requeued: 4, remaining: 0, dryRun: true });
    expect((await server.read.metrics()).queue.deadLettered).toBe(4);

    const human = await swarmctl(['dlq', 'requeue', '--dry-run'], { env: cliEnv(server) });
    expect(human.stdout).toContain(
      'dry run: would requeue 4 dead letters; 0 would remain in the dead-letter queue',
    );
  });

  it('requeues only the listed ids', async () => {
    const ids = deadIds.slice(0, 2).join(',');

    const r = await swarmctl(['dlq', 'requeue', '--ids', ids], { env: cliEnv(server) });

    expect(r.code).toBe(0);
    expect(r.stdout).toContain('requeued 2 dead letters; 2 remain in the dead-letter queue');
    expect((await server.read.metrics()).queue.deadLettered).toBe(2);
  });

  it('needs the trade scope', async () => {
    const r = await swarmctl(['dlq', 'requeue'], {
      env: { OWOKX_URL: server.url, OWOKX_API_TOKEN_READONLY: 'test-read-token-0123456789abcdef' },
    });

    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      '403 forbidden: this token lacks the trade scope needed for requeue-dlq',
    );
  });
});

describe('dispatch', () => {
  it('runs one pass and reports it', async () => {
    const r = await swarmctl(['dispatch', '--limit', '10', '--json'], { env: cliEnv(server) });
    const body = parseJson<Record<string, number>>(r);

    expect(r.code).toBe(0);
    expect(Object.keys(body).sort()).toEqual(
      ['deadLettered', 'delivered', 'durationMs', 'failed', 'pending'].sort(),
    );

    const human = await swarmctl(['dispatch'], { env: cliEnv(server) });
    expect(human.stdout).toMatch(/delivered\s+\d+/);
    expect(human.stdout).toMatch(/took\s+\d/);
  });
});

describe('dlq purge', () => {
  it('needs the admin scope', async () => {
    const r = await swarmctl(['dlq', 'purge', '--topic', 'orders'], {
      env: { OWOKX_URL: server.url, OWOKX_API_TOKEN_TRADE: 'test-trade-token-0123456789abcdef' },
    });

    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      '403 forbidden: this token lacks the admin scope needed for purge-dlq',
    );
  });

  it('--dry-run counts, then a real purge removes, the matching dead letters', async () => {
    const dry = await swarmctl(['dlq', 'purge', '--reason', 'rejected', '--dry-run', '--json'], {
      env: cliEnv(server),
    });
    const wouldStay = (await server.read.metrics()).queue.deadLettered - 2;
    expect(parseJson(dry)).toMatchObject({ purged: 2, remaining: wouldStay, dryRun: true });

    const real = await swarmctl(['dlq', 'purge', '--reason', 'rejected'], { env: cliEnv(server) });
    expect(real.code).toBe(0);
    expect(real.stdout).toContain('purged 2 dead letters; 0 remain');
    expect((await server.read.metrics()).queue.deadLettered).toBe(0);
  });
});

describe('prune-stale', () => {
  it('--dry-run names the stale agents; the real run removes them', async () => {
    await registerPullAgent(server.agent, 'quiet-1', 'scout');
    await sleep(1500);

    const dry = await swarmctl(['prune-stale', '--stale-ms', '1000', '--dry-run', '--json'], {
      env: cliEnv(server),
    });
    const plan = parseJson<{ removedIds: string[]; dryRun: boolean }>(dry);
    expect(plan.dryRun).toBe(true);
    expect(plan.removedIds).toContain('quiet-1');
    expect((await server.read.listAgents()).agents.map((a) => a.id)).toContain('quiet-1');

    const real = await swarmctl(['prune-stale', '--stale-ms', '1000'], { env: cliEnv(server) });
    expect(real.code).toBe(0);
    expect(real.stdout).toMatch(/removed \d+ stale agents?/);
    expect(real.stdout).toContain('quiet-1');
    expect((await server.read.listAgents()).agents.map((a) => a.id)).not.toContain('quiet-1');
  });
});

describe('audit', () => {
  it('lists the recovery and admin actions just taken', async () => {
    const r = await swarmctl(['audit', '--json'], { env: cliEnv(server) });
    const page = parseJson<{ items: { action: string; scope: string }[] }>(r);
    const actions = page.items.map((i) => i.action);

    expect(r.code).toBe(0);
    expect(actions).toEqual(
      expect.arrayContaining(['requeue-dlq', 'dispatch', 'purge-dlq', 'prune-stale']),
    );

    const human = await swarmctl(['audit', '--limit', '3'], { env: cliEnv(server) });
    expect(human.stdout).toMatch(/WHEN\s+SCOPE\s+TOKEN\s+ACTION/);
  });
});
