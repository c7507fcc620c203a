import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  expectConservation,
  openSwarm,
  type TestSwarm,
  TRADE,
  tempDir,
} from '../support/engine.ts';

const lease = { limit: 100, waitMs: 0, leaseMs: 30_000 };

describe('swarm health', () => {
  let swarm: TestSwarm;

  beforeEach(async () => {
    swarm = await openSwarm();
    await swarm.engine.registerAgent({ id: 'analyst-1', type: 'analyst' });
    // The loops are off in these tests; a pass marks the dispatcher alive.
    await swarm.engine.dispatch(1, TRADE);
  });

  afterEach(async () => {
    await expectConservation(swarm.engine);
    await swarm.close();
  });

  const codes = async () => (await swarm.engine.swarmHealth()).reasons.map((r) => r.code);

  it('is healthy with live agents and an empty queue', async () => {
    const health = await swarm.engine.swarmHealth();
    expect(health).toMatchObject({
      healthy: true,
      degraded: false,
      status: 'healthy',
      reasons: [],
    });
    expect(health).toMatchObject({
      activeAgents: 1,
      totalAgents: 1,
      staleAgents: 0,
      queueDepth: 0,
    });
  });

  it('reports dead letters present and growing', async () => {
    const { engine } = swarm;
    await engine.enqueue([{ message: { target: 'analyst-1' } }]);
    const [d] = await engine.poll('analyst-1', lease);
    await engine.nack({ queueIds: [d?.queueId as string], retry: false });

    expect(await codes()).toEqual(['dead_letters_present', 'dead_letters_growing']);
    await engine.purgeDeadLetters({ reason: 'rejected', dryRun: false }, TRADE);
    expect(await codes()).toEqual([]);
  });

  it('reports stale agents and, with nobody live, stranded messages', async () => {
    const { engine, clock } = swarm;
    await engine.enqueue([{ message: { target: 'type:analyst' } }]);
    clock.advance(301_000);
    await engine.dispatch(1, TRADE);

    expect(await codes()).toEqual(['stale_agents', 'queue_pressure', 'no_live_agents']);
    const health = await engine.swarmHealth();
    expect(health.reasons.find((r) => r.code === 'queue_pressure')).toMatchObject({
      threshold: 60_000,
    });
  });

  it('reports elevated delivery failures above 5% of at least 20 attempts', async () => {
    const { engine } = swarm;
    await engine.enqueue(
      Array.from({ length: 20 }, () => ({ message: { target: 'analyst-1' }, maxAttempts: 5 })),
    );
    const deliveries = await engine.poll('analyst-1', lease);
    await engine.ack(
      deliveries.slice(2).map((d) => d.queueId),
      'analyst-1',
    );
    await engine.nack({ queueIds: deliveries.slice(0, 1).map((d) => d.queueId), delayMs: 0 });
    // 1 failure in 20 attempts is 5%: not above the threshold.
    expect(await codes()).toEqual([]);

    await engine.nack({ queueIds: deliveries.slice(1, 2).map((d) => d.queueId), delayMs: 0 });
    expect(await codes()).toEqual(['delivery_failures_elevated']);
    const retried = await engine.poll('analyst-1', lease);
    await engine.ack(
      retried.map((d) => d.queueId),
      'analyst-1',
    );
  });

  it('reports a stalled dispatcher', async () => {
    swarm.clock.advance(31_000);
    await swarm.engine.heartbeat('analyst-1', {});
    expect(await codes()).toEqual(['dispatcher_stalled']);
  });

  it('escalates when dead letters keep rising through two recovery cycles, and clears after', async () => {
    const { engine } = swarm;
    const failOne = async () => {
      await engine.enqueue([{ message: { target: 'analyst-1' } }]);
      const deliveries = await engine.poll('analyst-1', lease);
      await engine.nack({ queueIds: deliveries.map((d) => d.queueId), retry: false });
    };

    await failOne();
    await engine.requeueDeadLetters({ limit: 50, dryRun: false }, TRADE);
    expect((await engine.swarmHealth()).escalate).toBe(false);

    await failOne();
    await engine.requeueDeadLetters({ limit: 50, dryRun: false }, TRADE);
    await failOne();

    const health = await engine.swarmHealth();
    expect(health.recoveryCycles).toBe(2);
    expect(health.escalate).toBe(true);
    expect(health.escalations.map((e) => e.condition)).toContain('dead_letters_rising');

    await engine.purgeDeadLetters({ reason: 'rejected', dryRun: false }, TRADE);
    const pending = await engine.poll('analyst-1', lease);
    await engine.ack(
      pending.map((d) => d.queueId),
      'analyst-1',
    );
    const after = await engine.swarmHealth();
    expect(after.escalations.map((e) => e.condition)).not.toContain('dead_letters_rising');
  });

  it('keeps its durable stats across a restart on the same file', async () => {
    const { engine, dir } = swarm;
    await engine.enqueue([
      { message: { target: 'analyst-1' } },
      { message: { target: 'analyst-1' } },
    ]);
    const [d] = await engine.poll('analyst-1', { ...lease, limit: 1 });
    await engine.ack([d?.queueId as string], 'analyst-1');
    await swarm.close();

    const { openSwarm: reopen } = await import('../support/engine.ts');
    swarm = await reopen({}, dir);
    const metrics = await swarm.engine.metrics();
    expect(metrics.stats).toMatchObject({ enqueued: 2, delivered: 1 });
    expect(metrics.queue.queued).toBe(1);
  });
});

describe('per-second rates', () => {
  it('stay true across a restart, whose store remembers the minute before it', async () => {
    const dir = tempDir();
    const noon = Date.UTC(2026, 11, 3, 12, 0, 0);
    let swarm = await openSwarm({}, dir, noon);
    swarm.clock.advance(1_000);
    await swarm.engine.enqueue(
      Array.from({ length: 100 }, () => ({ message: { target: 'type:analyst' } })),
    );
    // One second of rates so far (the store is that young): 100 a second.
    expect((await swarm.engine.metrics()).rates.enqueuedPerSec).toBe(100);
    await swarm.close();

    // Thirty seconds later a new process starts on the same store. Its own uptime is zero,
    // but the rates it reads span the 31 s since the store's first: 100 / 31.
    swarm = await openSwarm({}, dir, noon + 31_000);
    try {
      expect((await swarm.engine.metrics()).rates.enqueuedPerSec).toBe(3.23);

      // Once the window has moved past them, they are gone.
      swarm.clock.advance(70_000);
      expect((await swarm.engine.metrics()).rates.enqueuedPerSec).toBe(0);
    } finally {
      await swarm.close();
    }
  });
});
