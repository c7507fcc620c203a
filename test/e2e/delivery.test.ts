// End to end over loopback: a real coordinator process, real agent processes built on the SDK,
// and this test as the sender. Nothing is mocked.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnqueueInput } from '../../src/engine/contract.ts';
import { type Swarm, startSwarm, until } from './helpers.ts';

let swarm: Swarm;

beforeAll(async () => {
  swarm = await startSwarm({
    // Short enough that a stalled agent turns stale within seconds, long enough that a
    // heartbeating one (every 400 ms) never does.
    OWOKX_STALE_AFTER_MS: '2000',
    OWOKX_PRUNE_MIN_STALE_MS: '1000',
    OWOKX_AUTO_PRUNE_AFTER_MS: '0',
    OWOKX_BACKOFF_BASE_MS: '50',
    OWOKX_BACKOFF_CAP_MS: '200',
    OWOKX_DISPATCH_INTERVAL_MS: '100',
  });
}, 60_000);

afterAll(async () => {
  await swarm?.close();
}, 60_000);

const messages = (target: string, count: number, extra: Partial<EnqueueInput> = {}) =>
  Array.from({ length: count }, (_, i) => ({
    message: { target, type: 'COMMAND' as const, payload: { n: i } },
    ...extra,
  }));

describe('pull delivery', () => {
  it('balances role-addressed messages across two analysts, and every one is acked', async () => {
    const env = {
      AGENT_TYPE: 'analyst',
      AGENT_LIMIT: '2',
      AGENT_CONCURRENCY: '2',
      AGENT_WORK_MS: '20',
    };
    const [a, b] = await Promise.all([
      swarm.agent('analyst-a', env),
      swarm.agent('analyst-b', env),
    ]);

    const results = await swarm.client.enqueueBatch(messages('type:analyst', 40));
    const sent = new Set(results.map((r) => r.queueId));
    expect(sent.size).toBe(40);

    await until(
      () => a.queueIds('acked').length + b.queueIds('acked').length >= 40,
      20_000,
      () =>
        `acked ${a.queueIds('acked').length} + ${b.queueIds('acked').length} of 40\n` +
        `${a.process.recentOutput(10)}\n${swarm.server.recentOutput(10)}`,
    );

    const acked = [...a.queueIds('acked'), ...b.queueIds('acked')];
    expect(new Set(acked)).toEqual(sent);
    // Fewest in-flight first: neither analyst may sit idle while the other works.
    expect(a.queueIds('acked').length).toBeGreaterThanOrEqual(8);
    expect(b.queueIds('acked').length).toBeGreaterThanOrEqual(8);

    const queue = await swarm.client.queue();
    expect(queue.byTopic).toBeDefined();
    const detail = await swarm.client.getAgent('analyst-a');
    expect(detail.inflight).toBe(0);
  }, 60_000);
});

describe('push delivery', () => {
  it('delivers published messages to a push agent through the dispatcher', async () => {
    const trader = await swarm.agent('trader-1', {
      AGENT_TYPE: 'trader',
      AGENT_MODE: 'push',
      AGENT_TOPICS: 'signals.approved',
    });

    const subs = await swarm.client.subscriptions('signals.approved');
    expect(subs['signals.approved']).toContain('trader-1');

    const queueIds: string[] = [];
    for (let i = 0; i < 10; i++) {
      const published = await swarm.client.publish({
        topic: 'signals.approved',
        payload: { i },
        source: 'e2e',
      });
      expect(published.enqueued).toBe(1);
      queueIds.push(...published.queueIds);
    }

    await until(
      () => trader.queueIds('handled').length >= 10,
      20_000,
      () => `handled ${trader.queueIds('handled').length} of 10`,
    );
    expect(new Set(trader.queueIds('handled'))).toEqual(new Set(queueIds));

    // A 2xx acknowledges the whole push: nothing stays leased to the trader.
    await until(async () => (await swarm.client.getAgent('trader-1')).inflight === 0, 5000);
  }, 60_000);
});

describe('dead letters', () => {
  it('dead-letters a failing agent’s messages after maxAttempts, with the last error', async () => {
    const flaky = await swarm.agent('flaky-1', { AGENT_TYPE: 'flaky', AGENT_FAIL: 'always' });

    const results = await swarm.client.enqueueBatch(messages('type:flaky', 5, { maxAttempts: 3 }));
    const sent = results.map((r) => r.queueId as string);

    await until(
      async () => (await swarm.client.deadLetters({ target: 'type:flaky' })).total >= 5,
      20_000,
      () => `flaky failed ${flaky.count('failed')} times`,
    );

    const page = await swarm.client.deadLetters({ target: 'type:flaky', limit: 100 });
    expect(new Set(page.items.map((e) => e.queueId))).toEqual(new Set(sent));
    for (const entry of page.items) {
      expect(entry.state).toBe('dead');
      expect(entry.reason).toBe('max_attempts');
      expect(entry.attempts).toBe(3);
      expect(entry.lastError).toContain('fixture failure on attempt 3');
    }
    // The agent reports each failure on its stdout, which can reach us after the server has
    // already dead-lettered the last message: wait for the line, then check there were no more.
    await until(
      async () => flaky.count('failed') >= 15,
      5_000,
      () => `flaky reported ${flaky.count('failed')} failures`,
    );
    expect(flaky.count('failed')).toBe(15);

    const one = await swarm.client.getDeadLetter(sent[0] as string);
    expect(one.queueId).toBe(sent[0]);
  }, 60_000);

  it('dead-letters at once as rejected when the handler says retry: false', async () => {
    await swarm.agent('picky-1', {
      AGENT_TYPE: 'picky',
      AGENT_FAIL: 'always',
      AGENT_FAIL_RETRY: 'false',
    });

    const [result] = await swarm.client.enqueueBatch(messages('type:picky', 1, { maxAttempts: 5 }));
    const queueId = result?.queueId as string;

    await until(
      async () => (await swarm.client.deadLetters({ target: 'type:picky' })).total >= 1,
      10_000,
    );
    const entry = await swarm.client.getDeadLetter(queueId);
    expect(entry.reason).toBe('rejected');
    expect(entry.attempts).toBe(1);
  }, 30_000);
});

describe('stale agents', () => {
  it('reports an agent that stops heartbeating as stale, and prune-stale removes it', async () => {
    const sleepy = await swarm.agent('learning-1', {
      AGENT_TYPE: 'learning',
      AGENT_STALL_AFTER_MS: '300',
      AGENT_TOPICS: 'signals.price',
    });
    await sleepy.waitFor('stalled');

    await until(async () => (await swarm.client.getAgent('learning-1')).stale, 10_000);

    const metrics = await swarm.client.metrics();
    expect(metrics.agents.stale).toBeGreaterThanOrEqual(1);
    const health = await swarm.client.swarmHealth();
    expect(health.reasons.map((r) => r.code)).toContain('stale_agents');
    const routing = await swarm.client.routing();
    expect(routing.anomalies.map((a) => a.kind)).toContain('stale_subscriber');

    // Every other agent of this file keeps heartbeating, so only the stalled one goes.
    const pruned = await swarm.client.pruneStale({ staleMs: 1000 });
    expect(pruned.removedIds).toEqual(['learning-1']);

    const after = await swarm.client.metrics();
    expect(after.agents.stale).toBe(0);
    const list = await swarm.client.listAgents({ limit: 1000 });
    expect(list.agents.map((a) => a.id)).not.toContain('learning-1');
  }, 60_000);
});

describe('re-registration', () => {
  it('registers again with its subscriptions when the server forgets a live agent', async () => {
    const phoenix = await swarm.agent('phoenix-1', {
      AGENT_TYPE: 'phoenix',
      AGENT_TOPICS: 'phoenix.events',
    });

    await swarm.client.deregister('phoenix-1');

    // The next heartbeat (or poll) answers 404, and the SDK registers and subscribes again.
    await until(async () => {
      const subs = await swarm.client.subscriptions('phoenix.events');
      return (subs['phoenix.events'] ?? []).includes('phoenix-1');
    }, 10_000);

    const published = await swarm.client.publish({ topic: 'phoenix.events', payload: 'back' });
    expect(published.enqueued).toBe(1);
    await until(() => phoenix.queueIds('acked').includes(published.queueIds[0] as string), 10_000);
  }, 30_000);
});
