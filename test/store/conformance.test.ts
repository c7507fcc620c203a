// The store contract (src/store/store.ts), checked on a real store: in the "sqlite" test
// project a SQLite file, in the "postgres" project a PostgreSQL schema. The same assertions
// run on both; the one place where they differ on purpose (what a restart does to leases)
// says why.

import { afterEach, describe, expect, it } from 'vitest';

import type { Message } from '../../src/core/types.ts';
import type { AgentRoutes, NewEntry, Store } from '../../src/store/store.ts';
import { tempDir } from '../support/engine.ts';
import { agent, entry, NOW } from '../support/entries.ts';
import { BACKEND, openTestStore } from '../support/stores.ts';

const WORKER: AgentRoutes = { agentId: 'a1', type: 'worker', capabilities: [] };
const LEASE = { leaseMs: 30_000, now: NOW };
const backoff = (attempt: number) => 1000 * attempt;
const open: Store[] = [];

afterEach(async () => {
  for (const store of open.splice(0)) await store.close();
});

async function fresh(dir = tempDir()): Promise<Store> {
  const { store } = await openTestStore(dir);
  open.push(store);
  return store;
}

async function closeStore(store: Store): Promise<void> {
  open.splice(open.indexOf(store), 1);
  await store.close();
}

/** stats.enqueued = stats.delivered + queued + inflight + deadLettered + stats.purged */
async function conserved(store: Store, now = NOW): Promise<void> {
  const stats = await store.stats();
  const gauges = await store.gauges(now);
  expect(stats.enqueued).toBe(
    stats.delivered + gauges.queued + gauges.inflight + gauges.deadLettered + stats.purged,
  );
}

const payloads = (deliveries: { message: Message }[]) =>
  deliveries.map((d) => (d.message.payload as { n: number }).n);

/** Entry n with the sender's own message id, so it is deduplicated. */
function keyed(n: number, key = `m-${n}`): NewEntry {
  return { ...entry(n), dedupeKey: key };
}

/** Entry n addressed to one agent, which must be registered. */
function direct(n: number, agentId: string): NewEntry {
  const e = entry(n);
  const message = { ...e.message, target: agentId };
  return {
    ...e,
    message,
    messageJson: JSON.stringify(message),
    routeKind: 'agent',
    routeKey: agentId,
    requireRegistered: true,
  };
}

describe(`the ${BACKEND} store`, () => {
  it('claims in priority, then availability, then enqueue order, across all of an agent’s routes', async () => {
    const store = await fresh();
    await store.upsertAgent({ ...agent('a1'), capabilities: ['gpu'] });
    const gpu = { ...entry(4, { priority: 'high' }), routeKind: 'capability', routeKey: 'gpu' };
    await store.enqueue(
      [
        entry(1),
        entry(2, { priority: 'critical' }),
        entry(3, { delayMs: 5_000 }),
        gpu as NewEntry,
        direct(5, 'a1'),
      ],
      NOW,
    );

    const routes = { ...WORKER, capabilities: ['gpu'] };
    const first = await store.claim(routes, { ...LEASE, limit: 10 });
    expect(payloads(first)).toEqual([2, 4, 1, 5]);
    expect(first.map((d) => d.attempt)).toEqual([1, 1, 1, 1]);
    expect(first[0]?.leaseExpiresAt).toBe(NOW + 30_000);

    // The delayed one is ready once its delay is over.
    expect(await store.claim(routes, { ...LEASE, limit: 10, now: NOW + 4_999 })).toEqual([]);
    const later = await store.claim(routes, { ...LEASE, limit: 10, now: NOW + 5_000 });
    expect(payloads(later)).toEqual([3]);
    await conserved(store, NOW + 5_000);
  });

  it('never leases one entry to two claims made at once', async () => {
    const store = await fresh();
    await store.enqueue(
      Array.from({ length: 200 }, (_, i) => entry(i)),
      NOW,
    );

    const claims = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        store.claim(
          { agentId: `a${i}`, type: 'worker', capabilities: [] },
          { ...LEASE, limit: 15 },
        ),
      ),
    );
    const ids = claims.flat().map((d) => d.queueId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(200);
    expect(await store.gauges(NOW)).toMatchObject({ queued: 0, inflight: 200 });
    await conserved(store);
  });

  it('queues a message id once while it is live, and again once it is dead', async () => {
    const store = await fresh();
    const [a, b] = await store.enqueue([keyed(1), keyed(2, 'm-1')], NOW);
    expect(a?.duplicate).toBe(false);
    expect(b).toEqual({ queueId: a?.queueId, duplicate: true });

    const [again] = await store.enqueue([keyed(3, 'm-1')], NOW);
    expect(again).toEqual({ queueId: a?.queueId, duplicate: true });
    expect((await store.stats()).deduplicated).toBe(2);

    // Dead-lettered, the id is free: a resend is a new message.
    const [leased] = await store.claim(WORKER, { ...LEASE, limit: 1 });
    await store.fail([leased?.queueId as string], { error: 'no', retry: false, now: NOW }, backoff);
    const [resent] = await store.enqueue([keyed(4, 'm-1')], NOW);
    expect(resent?.duplicate).toBe(false);
    expect(resent?.queueId).not.toBe(a?.queueId);
    await conserved(store);
  });

  it('keeps keys that differ only after a U+0000 apart (the engine’s broadcast copies)', async () => {
    const store = await fresh();
    const outcomes = await store.enqueue(
      [keyed(1, 'X\u0000a1'), keyed(2, 'X\u0000a2'), keyed(3, 'X\u0000a1')],
      NOW,
    );
    expect(outcomes.map((o) => o.duplicate)).toEqual([false, false, true]);
    expect(outcomes[2]?.queueId).toBe(outcomes[0]?.queueId);
  });

  it('dead-letters at once, as no_route, a direct entry for an agent that is not registered', async () => {
    const store = await fresh();
    await store.upsertAgent(agent('a1'));
    const [ok, lost] = await store.enqueue([direct(1, 'a1'), direct(2, 'ghost')], NOW);

    expect((await store.getEntry(ok?.queueId as string))?.state).toBe('pending');
    const dead = await store.getEntry(lost?.queueId as string);
    expect(dead).toMatchObject({ state: 'dead', reason: 'no_route', deadLetteredAt: NOW });
    expect((await store.stats()).deadLettered).toBe(1);
    await conserved(store);
  });

  it('refuses a whole call past maxDepth, and concurrent calls cannot all pass on one reading', async () => {
    const store = await fresh();
    await store.enqueue([entry(1), entry(2), entry(3)], NOW, 5);
    await expect(store.enqueue([entry(4), entry(5), entry(6)], NOW, 5)).rejects.toMatchObject({
      code: 'rate_limited',
    });
    expect((await store.gauges(NOW)).queued).toBe(3);

    const calls = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => store.enqueue([entry(10 + i)], NOW, 5)),
    );
    expect(calls.filter((c) => c.status === 'fulfilled')).toHaveLength(2);
    expect((await store.gauges(NOW)).queued).toBe(5);
    await conserved(store);
  });

  it('acks only what the caller holds, each id once, and says why it refuses the rest', async () => {
    const store = await fresh();
    await store.enqueue([entry(1), entry(2), entry(3)], NOW);
    const [d1, d2] = await store.claim(WORKER, { ...LEASE, limit: 2 });

    const other = await store.ack([d1?.queueId as string], 'a2', NOW);
    expect(other).toEqual({
      acked: 0,
      rejected: [{ queueId: d1?.queueId, why: 'not_lease_holder' }],
    });

    const result = await store.ack(
      [d1?.queueId as string, d1?.queueId as string, 'nope', '999999'],
      'a1',
      NOW,
    );
    expect(result.acked).toBe(1);
    expect(result.rejected).toEqual([
      { queueId: d1?.queueId, why: 'not_leased' },
      { queueId: 'nope', why: 'unknown_queue_id' },
      { queueId: '999999', why: 'unknown_queue_id' },
    ]);

    // After the ack the entry is gone; an ack with no agent (an operator's) takes any lease.
    expect((await store.ack([d1?.queueId as string], 'a1', NOW)).rejected[0]?.why).toBe(
      'unknown_queue_id',
    );
    expect((await store.ack([d2?.queueId as string], undefined, NOW)).acked).toBe(1);
    expect((await store.stats()).delivered).toBe(2);
    await conserved(store);
  });

  it('acks made at once, by many callers, each count once', async () => {
    const store = await fresh();
    await store.enqueue(
      Array.from({ length: 50 }, (_, i) => entry(i)),
      NOW,
    );
    const leased = await store.claim(WORKER, { ...LEASE, limit: 50 });
    const ids = leased.map((d) => d.queueId);

    // Every id acked twice, by two calls racing in the same turn.
    const results = await Promise.all([
      ...ids.map((id) => store.ack([id], 'a1', NOW)),
      ...ids.map((id) => store.ack([id], 'a1', NOW)),
    ]);
    expect(results.reduce((n, r) => n + r.acked, 0)).toBe(50);
    expect((await store.stats()).delivered).toBe(50);
    await conserved(store);
  });

  it('retries a failed attempt after the backoff, and dead-letters it once the budget is spent', async () => {
    const store = await fresh();
    const [queued] = await store.enqueue([entry(1)], NOW);
    const id = queued?.queueId as string;

    let now = NOW;
    for (let attempt = 1; attempt <= 3; attempt += 1) {
      const [d] = await store.claim(WORKER, { leaseMs: 30_000, limit: 1, now });
      expect(d?.attempt).toBe(attempt);
      const outcome = await store.fail(
        [id],
        { error: `boom ${attempt}`, retry: true, now },
        backoff,
      );
      expect(outcome).toMatchObject(attempt < 3 ? { retried: 1 } : { deadLettered: 1 });
      if (attempt < 3) {
        // Not ready before the backoff ends.
        expect(await store.claim(WORKER, { leaseMs: 30_000, limit: 1, now: now + 1 })).toEqual([]);
        now += backoff(attempt);
      }
    }

    expect(await store.getEntry(id)).toMatchObject({
      state: 'dead',
      reason: 'max_attempts',
      attempts: 3,
      lastError: 'boom 3',
    });
    expect(await store.stats()).toMatchObject({ failed: 3, retried: 2, deadLettered: 1 });
    await conserved(store, now);
  });

  it('counts a lapsed lease as a failed attempt, and dead-letters entries past their TTL', async () => {
    const store = await fresh();
    await store.enqueue([entry(1), entry(2, { ttlMs: 10_000 }), entry(3, { ttlMs: 10_000 })], NOW);
    const leased = await store.claim(WORKER, { leaseMs: 5_000, limit: 2, now: NOW });
    expect(payloads(leased)).toEqual([1, 2]);

    expect(await store.releaseExpiredLeases(NOW + 4_999, backoff, 100)).toBe(0);
    expect(await store.releaseExpiredLeases(NOW + 5_000, backoff, 100)).toBe(2);
    const first = await store.getEntry(leased[0]?.queueId as string);
    expect(first).toMatchObject({ state: 'pending', attempts: 1, lastError: 'lease expired' });

    // Entry 2 (pending again) and entry 3 (never leased) both pass their TTL.
    expect(await store.expireEntries(NOW + 10_000, 100)).toBe(2);
    expect((await store.getEntry(leased[1]?.queueId as string))?.reason).toBe('expired');
    expect(await store.stats()).toMatchObject({ expired: 2, deadLettered: 2 });
    await conserved(store, NOW + 10_000);
  });

  it('removes agents: their direct leases dead-lettered, spent ones too, the rest released', async () => {
    const store = await fresh();
    await store.upsertAgent(agent('a1'));
    await store.enqueue(
      [direct(1, 'a1'), entry(2), { ...entry(3), maxAttempts: 1 }, direct(4, 'a1')],
      NOW,
    );
    const leased = await store.claim(WORKER, { ...LEASE, limit: 3 });
    expect(payloads(leased).sort()).toEqual([1, 2, 3]);
    await store.subscribe('a1', 'jobs', NOW);

    const preview = await store.removalPreview(['a1']);
    expect(preview).toEqual({ released: 1, deadLettered: 3 });
    // A preview changes nothing.
    expect(await store.gauges(NOW)).toMatchObject({ inflight: 3, queued: 1 });

    const removed = await store.removeAgents(['a1', 'never-there'], 'target_pruned', NOW + 1);
    expect(removed).toEqual({ removed: ['a1'], released: 1, deadLettered: 2 });
    expect(await store.getAgent('a1')).toBeNull();
    expect(await store.subscribers('jobs')).toEqual([]);

    // Its pending direct entry goes with deadLetterUnroutable, unless the agent is back.
    expect(await store.deadLetterUnroutable(['a1'], 'target_pruned', NOW + 2, 100)).toBe(1);
    const reasons = (await store.deadLetters({ limit: 10 })).items.map((e) => e.reason).sort();
    expect(reasons).toEqual(['max_attempts', 'target_pruned', 'target_pruned']);
    expect(await store.gauges(NOW + 2)).toMatchObject({ inflight: 0, queued: 1, deadLettered: 3 });
    await conserved(store, NOW + 2);
  });

  it('leaves an agent that registered again its pending direct entries', async () => {
    const store = await fresh();
    await store.upsertAgent(agent('a1'));
    await store.enqueue([direct(1, 'a1')], NOW);
    await store.removeAgents(['a1'], 'target_pruned', NOW);
    await store.upsertAgent(agent('a1'));
    expect(await store.deadLetterUnroutable(['a1'], 'target_pruned', NOW, 100)).toBe(0);
    expect((await store.gauges(NOW)).queued).toBe(1);
  });

  it('requeues dead letters with a fresh budget and TTL, skipping those it cannot route', async () => {
    const store = await fresh();
    await store.upsertAgent(agent('a1'));
    await store.enqueue(
      [direct(0, 'ghost'), entry(1, { ttlMs: 1_000 }), entry(2), direct(3, 'a1')],
      NOW,
    );
    const leased = await store.claim(WORKER, { ...LEASE, limit: 3 });
    await store.fail(
      leased.map((d) => d.queueId),
      { error: 'bad', retry: false, now: NOW },
      backoff,
    );
    expect((await store.gauges(NOW)).deadLettered).toBe(4);

    const dry = await store.requeue({ filter: {}, limit: 2, dryRun: true, now: NOW + 100 });
    expect(dry.requeued).toHaveLength(2);
    expect(dry.skipped.map((s) => s.why)).toEqual(['target agent ghost is not registered']);
    expect(dry.remaining).toBe(2);
    expect((await store.gauges(NOW)).deadLettered).toBe(4);

    const real = await store.requeue({
      filter: { ids: [...dry.requeued, '424242'] },
      limit: 10,
      dryRun: false,
      now: NOW + 100,
    });
    expect(real.requeued).toEqual(dry.requeued);
    expect(real.skipped).toEqual([{ queueId: '424242', why: 'not_a_dead_letter' }]);
    expect(real.remaining).toBe(2);

    const back = await store.getEntry(real.requeued[0] as string);
    expect(back).toMatchObject({ state: 'pending', attempts: 0, availableAt: NOW + 100 });
    expect(back?.history).toEqual([
      { reason: 'rejected', deadLetteredAt: NOW, lastError: 'bad', attempts: 1 },
    ]);
    // The one with a TTL lives for its TTL again, from the requeue.
    const ttl = await store.getEntry(leased.find((d) => payloads([d])[0] === 1)?.queueId as string);
    expect(ttl?.state).toBe('pending');
    expect(await store.expireEntries(NOW + 1_099, 100)).toBe(0);
    expect(await store.expireEntries(NOW + 1_100, 100)).toBe(1);
    expect((await store.stats()).requeued).toBe(2);
    await conserved(store, NOW + 1_100);
  });

  it('requeues two dead letters of one message id together, and one that is live again', async () => {
    const store = await fresh();
    // m-1 dead-lettered twice: once, then again after it was sent anew.
    for (let round = 0; round < 2; round += 1) {
      await store.enqueue([keyed(round, 'm-1')], NOW);
      const [d] = await store.claim(WORKER, { ...LEASE, limit: 1 });
      await store.fail([d?.queueId as string], { error: 'x', retry: false, now: NOW }, backoff);
    }
    // And a third time it is live.
    const [live] = await store.enqueue([keyed(9, 'm-1')], NOW);

    const outcome = await store.requeue({ filter: {}, limit: 10, dryRun: false, now: NOW });
    expect(outcome.requeued).toHaveLength(2);
    expect((await store.gauges(NOW)).queued).toBe(3);
    // A resend still finds a live m-1 (any of the three) and is not queued a fourth time.
    const [again] = await store.enqueue([keyed(10, 'm-1')], NOW);
    expect(again?.duplicate).toBe(true);
    expect([live?.queueId, ...outcome.requeued]).toContain(again?.queueId);
    expect((await store.gauges(NOW)).queued).toBe(3);
    await conserved(store);
  });

  it('purges the dead letters a filter names, and a dry run only counts them', async () => {
    const store = await fresh();
    await store.enqueue(
      [entry(1, { topic: 'a' }), entry(2, { topic: 'b' }), entry(3, { topic: 'b' })],
      NOW,
    );
    const leased = await store.claim(WORKER, { ...LEASE, limit: 3 });
    await store.fail(
      leased.map((d) => d.queueId),
      { error: 'x', retry: false, now: NOW },
      backoff,
    );

    expect(await store.purge({ topic: 'b' }, true, NOW)).toEqual({ purged: 2, remaining: 1 });
    expect(await store.purge({ topic: 'b' }, false, NOW)).toEqual({ purged: 2, remaining: 1 });
    expect(await store.byTopic()).toEqual({ a: { queued: 0, inflight: 0, deadLettered: 1 } });
    expect((await store.stats()).purged).toBe(2);
    await conserved(store);
  });

  it('keeps per-topic and per-route gauges with the rows', async () => {
    const store = await fresh();
    await store.upsertAgent(agent('a1'));
    await store.enqueue(
      [entry(1, { topic: 't' }), entry(2, { topic: null }), direct(3, 'a1')],
      NOW,
    );
    await store.claim(WORKER, { ...LEASE, limit: 1 });

    expect(await store.byTopic()).toEqual({
      '': { queued: 1, inflight: 0, deadLettered: 0 },
      jobs: { queued: 1, inflight: 0, deadLettered: 0 },
      t: { queued: 0, inflight: 1, deadLettered: 0 },
    });
    const routes = (await store.routeCounts()).sort((x, y) => (x.key < y.key ? -1 : 1));
    expect(routes).toEqual([
      { kind: 'agent', key: 'a1', pending: 1, inflight: 0 },
      { kind: 'type', key: 'worker', pending: 1, inflight: 1 },
    ]);
    expect(await store.inflightOf('a1')).toBe(1);
    expect(await store.inflightByAgent()).toEqual(new Map([['a1', 1]]));
  });

  it('reports the routes that became ready in a span, for the wake-ups of parked polls', async () => {
    const store = await fresh();
    const start = Date.now();
    const e = (n: number, delayMs: number) => ({ ...entry(n), availableAt: start + delayMs });
    await store.enqueue([e(1, 1_000), e(2, 2_000), e(3, 5_000)], start);
    expect(await store.becameReady(start, start + 2_500)).toEqual([
      { kind: 'type', key: 'worker', count: 2 },
    ]);
  });

  it('keeps what it committed across a close and an open', async () => {
    const dir = tempDir();
    const store = await fresh(dir);
    await store.upsertAgent(agent('a1'));
    await store.enqueue([entry(1), entry(2), keyed(3)], NOW);
    const [leased] = await store.claim(WORKER, { ...LEASE, limit: 1 });
    await store.appendAudit({
      at: NOW,
      timestamp: new Date(NOW).toISOString(),
      scope: 'admin',
      tokenName: 'admin',
      action: 'test',
      parameters: { a: 1 },
      result: { ok: true },
    });
    await store.setMeta('k', 'v');
    await closeStore(store);

    const again = await fresh(dir);
    expect(await again.getAgent('a1')).toMatchObject({ id: 'a1', type: 'worker' });
    expect((await again.stats()).enqueued).toBe(3);
    expect(await again.getMeta('k')).toBe('v');
    expect((await again.listAudit(10)).items[0]).toMatchObject({
      action: 'test',
      result: { ok: true },
    });
    expect((await again.enqueue([keyed(9, 'm-3')], NOW))[0]?.duplicate).toBe(true);

    // SQLite keeps leases in memory, so a restart returns them to the queue; PostgreSQL keeps
    // them in rows, as coordinators that share it must, and they run out as usual.
    const lease = await again.getEntry(leased?.queueId as string);
    if (BACKEND === 'sqlite') expect(lease?.state).toBe('pending');
    else expect(lease).toMatchObject({ state: 'inflight', assignedTo: 'a1' });
    await conserved(again);
  });
});
