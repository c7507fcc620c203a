import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { ADMIN, expectConservation, openSwarm, type TestSwarm, TRADE } from '../support/engine.ts';

const lease = { limit: 100, waitMs: 0, leaseMs: 30_000 };

describe('recovery', () => {
  let swarm: TestSwarm;

  beforeEach(async () => {
    swarm = await openSwarm();
    await swarm.engine.registerAgent({ id: 'analyst-1', type: 'analyst' });
  });

  afterEach(async () => {
    await expectConservation(swarm.engine);
    await swarm.close();
  });

  async function deadLetter(target: string, count = 1): Promise<string[]> {
    const { engine } = swarm;
    const results = await engine.enqueue(
      Array.from({ length: count }, (_, i) => ({ message: { target, payload: i } })),
    );
    const agentId = target.startsWith('type:') ? 'analyst-1' : target;
    const deliveries = await engine.poll(agentId, lease);
    await engine.nack({
      queueIds: deliveries.map((d) => d.queueId),
      retry: false,
      error: 'handler crashed',
    });
    return results.map((r) => r.queueId as string);
  }

  it('requeues the oldest dead letters first with a fresh budget and the original target', async () => {
    const { engine, clock } = swarm;
    const older = await deadLetter('type:analyst');
    clock.advance(1000);
    const newer = await deadLetter('analyst-1');

    const result = await engine.requeueDeadLetters({ limit: 1, dryRun: false }, TRADE);
    expect(result).toMatchObject({ requeued: 1, remaining: 1, skipped: [], queueIds: older });

    const entry = await engine.getEntry(older[0] as string);
    expect(entry).toMatchObject({ state: 'pending', attempts: 0, reason: null });
    expect(entry.message.target).toBe('type:analyst');
    expect(entry.history).toEqual([
      expect.objectContaining({ reason: 'rejected', lastError: 'handler crashed', attempts: 1 }),
    ]);
    expect((await engine.getEntry(newer[0] as string)).state).toBe('dead');
    expect((await engine.metrics()).stats.requeued).toBe(1);
  });

  it('changes nothing on a dry run', async () => {
    const { engine } = swarm;
    await deadLetter('type:analyst', 3);
    const before = await engine.metrics();

    const result = await engine.requeueDeadLetters({ limit: 50, dryRun: true }, TRADE);
    // `remaining` is what would stay, as the real call would answer.
    expect(result).toMatchObject({ requeued: 3, remaining: 0, dryRun: true });
    expect((await engine.metrics()).queue).toEqual(before.queue);
    expect((await engine.swarmHealth()).recoveryCycles).toBe(0);
  });

  it('filters requeue by ids, topic, target and reason', async () => {
    const { engine } = swarm;
    const ids = await deadLetter('type:analyst', 3);
    const byId = await engine.requeueDeadLetters(
      { limit: 50, ids: [ids[1] as string, '424242'], dryRun: false },
      TRADE,
    );
    expect(byId.requeued).toBe(1);
    expect(byId.skipped).toEqual([{ queueId: '424242', why: 'not_a_dead_letter' }]);

    const byReason = await engine.requeueDeadLetters(
      { limit: 50, reason: 'expired', dryRun: false },
      TRADE,
    );
    expect(byReason.requeued).toBe(0);
    const byTarget = await engine.requeueDeadLetters(
      { limit: 50, target: 'type:analyst', dryRun: false },
      TRADE,
    );
    expect(byTarget.requeued).toBe(2);
  });

  it('leaves a dead letter whose direct target is not registered where it was', async () => {
    const { engine } = swarm;
    await engine.registerAgent({ id: 'worker-2', type: 'analyst' });
    const [queueId] = await deadLetter('worker-2');
    await engine.deregisterAgent('worker-2');

    const result = await engine.requeueDeadLetters({ limit: 50, dryRun: false }, TRADE);
    expect(result.requeued).toBe(0);
    expect(result.skipped).toEqual([{ queueId, why: 'target agent worker-2 is not registered' }]);
    expect((await engine.getEntry(queueId as string)).state).toBe('dead');
  });

  it('is not held back by older dead letters that cannot be routed', async () => {
    const { engine, clock } = swarm;
    await engine.registerAgent({ id: 'gone-1', type: 'worker' });
    await deadLetter('gone-1', 3);
    await engine.deregisterAgent('gone-1');
    clock.advance(1000);
    const routable = await deadLetter('type:analyst', 2);

    const result = await engine.requeueDeadLetters({ limit: 2, dryRun: false }, TRADE);
    expect(result.queueIds).toEqual(routable);
    expect(result.skipped).toHaveLength(3);
    expect(result.remaining).toBe(3);
  });

  it('prunes stale agents: releases their leases and dead-letters their direct messages', async () => {
    const { engine, clock } = swarm;
    await engine.registerAgent({ id: 'analyst-2', type: 'analyst' });
    await engine.subscribe('analyst-2', 'signals');
    await engine.enqueue([{ message: { target: 'type:analyst', payload: 'role' } }]);
    await engine.enqueue([{ message: { target: 'analyst-2', payload: 'direct' } }]);
    const leased = await engine.poll('analyst-2', lease);
    expect(leased).toHaveLength(2);
    await engine.enqueue([{ message: { target: 'analyst-2', payload: 'direct-pending' } }]);

    clock.advance(700_000);
    await engine.heartbeat('analyst-1', {});

    // The dry run foretells the real one's numbers, and changes nothing.
    const before = await engine.metrics();
    const dry = await engine.pruneStale({ staleMs: 600_000, dryRun: true }, TRADE);
    expect(dry).toMatchObject({
      removed: 1,
      removedIds: ['analyst-2'],
      released: 1,
      deadLettered: 2,
      dryRun: true,
    });
    const after = await engine.metrics();
    expect(after.agents.stale).toBe(1);
    expect(after.queue).toEqual(before.queue);

    const result = await engine.pruneStale({ staleMs: 600_000, dryRun: false }, TRADE);
    expect(result).toMatchObject({
      removed: 1,
      remaining: 1,
      removedIds: ['analyst-2'],
      released: 1,
      deadLettered: 2,
    });
    expect(await engine.subscriptions()).toEqual({});

    // The role message goes to the other analyst at once.
    const [rerouted] = await engine.poll('analyst-1', lease);
    expect(rerouted?.message.payload).toBe('role');
    const dead = await engine.listDeadLetters({ limit: 10 });
    expect(dead.items.map((e) => [e.message.payload, e.reason])).toEqual([
      ['direct', 'target_pruned'],
      ['direct-pending', 'target_pruned'],
    ]);
  });

  it('refuses a prune window below the configured floor', async () => {
    await expect(swarm.engine.pruneStale({ staleMs: 1, dryRun: false }, TRADE)).rejects.toThrow(
      /at least 60000/,
    );
  });

  it('purges dead letters by filter and counts them as purged', async () => {
    const { engine, clock } = swarm;
    await deadLetter('type:analyst', 2);
    clock.advance(10_000);
    await deadLetter('analyst-1', 1);

    expect(await engine.purgeDeadLetters({ olderThanMs: 5000, dryRun: true }, ADMIN)).toEqual({
      purged: 2,
      remaining: 1,
      dryRun: true,
    });
    expect(await engine.purgeDeadLetters({ olderThanMs: 5000, dryRun: false }, ADMIN)).toEqual({
      purged: 2,
      remaining: 1,
      dryRun: false,
    });
    expect((await engine.metrics()).stats.purged).toBe(2);
  });

  it('counts only the named dead letters when ids match none of them', async () => {
    await deadLetter('type:analyst', 2);
    const dry = await swarm.engine.purgeDeadLetters(
      { ids: ['nope', '999999'], dryRun: true },
      ADMIN,
    );
    expect(dry).toEqual({ purged: 0, remaining: 2, dryRun: true });
  });

  it('records every recovery and admin call in the audit log, newest first', async () => {
    const { engine } = swarm;
    await engine.dispatch(10, TRADE);
    await engine.requeueDeadLetters({ limit: 5, dryRun: true }, TRADE);
    await engine.pruneStale({ staleMs: 600_000, dryRun: false }, { ...TRADE, requestId: 'req-1' });
    await engine.purgeDeadLetters({ reason: 'expired', dryRun: false }, ADMIN);

    const audit = await engine.listAudit(10);
    expect(audit.items.map((r) => r.action)).toEqual([
      'purge-dlq',
      'prune-stale',
      'requeue-dlq',
      'dispatch',
    ]);
    expect(audit.items[1]).toMatchObject({
      scope: 'trade',
      tokenName: 'trade',
      parameters: { staleMs: 600_000, dryRun: false, requestId: 'req-1' },
      result: { removed: 0 },
    });
    expect(audit.items[0]?.scope).toBe('admin');
  });

  it('pages dead letters oldest first without overlap or gaps', async () => {
    const { engine, clock } = swarm;
    for (let i = 0; i < 7; i++) {
      await deadLetter('analyst-1');
      if (i % 2 === 0) clock.advance(1);
    }

    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await engine.listDeadLetters({ limit: 3, cursor });
      expect(page.total).toBe(7);
      seen.push(...page.items.map((e) => e.queueId));
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);

    expect(seen).toHaveLength(7);
    expect(new Set(seen).size).toBe(7);
    expect(seen).toEqual([...seen].sort((a, b) => Number(a) - Number(b)));
    await expect(engine.listDeadLetters({ limit: 3, cursor: 'garbage' })).rejects.toThrow(/cursor/);
  });
});
