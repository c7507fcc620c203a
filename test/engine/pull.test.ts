import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { expectConservation, openSwarm, type TestSwarm, TRADE } from '../support/engine.ts';

const lease = { limit: 100, waitMs: 0, leaseMs: 30_000 };

describe('pull delivery', () => {
  let swarm: TestSwarm;

  beforeEach(async () => {
    swarm = await openSwarm();
    await swarm.engine.registerAgent({ id: 'analyst-1', type: 'analyst', capabilities: ['fx'] });
    await swarm.engine.registerAgent({ id: 'trader-1', type: 'trader' });
  });

  afterEach(async () => {
    await expectConservation(swarm.engine);
    await swarm.close();
  });

  it('hands an agent what is addressed to its id, its type and its capabilities', async () => {
    const { engine } = swarm;
    await engine.enqueue([
      { message: { target: 'analyst-1', payload: 1 } },
      { message: { target: 'type:analyst', payload: 2 } },
      { message: { target: 'role:analyst', payload: 3 } },
      { message: { target: 'capability:fx', payload: 4 } },
      { message: { target: 'type:trader', payload: 5 } },
    ]);

    const deliveries = await engine.poll('analyst-1', lease);
    expect(deliveries.map((d) => d.message.payload).sort()).toEqual([1, 2, 3, 4]);
    expect(deliveries.every((d) => d.attempt === 1)).toBe(true);

    const traderGets = await engine.poll('trader-1', lease);
    expect(traderGets.map((d) => d.message.payload)).toEqual([5]);
  });

  it('claims by priority, then availability, then enqueue order', async () => {
    const { engine, clock } = swarm;
    await engine.enqueue([
      { message: { target: 'analyst-1', payload: 'low', priority: 'low' } },
      { message: { target: 'analyst-1', payload: 'normal-1' } },
      { message: { target: 'analyst-1', payload: 'critical', priority: 'critical' } },
      {
        message: { target: 'analyst-1', payload: 'delayed-high', priority: 'high' },
        delayMs: 5000,
      },
      { message: { target: 'analyst-1', payload: 'normal-2' } },
    ]);

    const first = await engine.poll('analyst-1', lease);
    expect(first.map((d) => d.message.payload)).toEqual([
      'critical',
      'normal-1',
      'normal-2',
      'low',
    ]);

    clock.advance(5000);
    const later = await engine.poll('analyst-1', lease);
    expect(later.map((d) => d.message.payload)).toEqual(['delayed-high']);
    await engine.ack(
      [...first, ...later].map((d) => d.queueId),
      'analyst-1',
    );
  });

  it('keeps a delayed message back until its delay has passed', async () => {
    const { engine, clock } = swarm;
    await engine.enqueue([{ message: { target: 'analyst-1' }, delayMs: 10_000 }]);

    expect(await engine.poll('analyst-1', lease)).toEqual([]);
    expect((await engine.queueSummary()).delayed).toBe(1);

    clock.advance(10_000);
    expect(await engine.poll('analyst-1', lease)).toHaveLength(1);
  });

  it('does not enqueue a message id twice while it is pending or in flight', async () => {
    const { engine } = swarm;
    const [first] = await engine.enqueue([{ message: { id: 'order-7', target: 'type:analyst' } }]);
    const [again] = await engine.enqueue([{ message: { id: 'order-7', target: 'type:analyst' } }]);

    expect(again).toMatchObject({ duplicate: true, queueId: first?.queueId });
    expect((await engine.metrics()).stats).toMatchObject({ enqueued: 1, deduplicated: 1 });

    const [delivery] = await engine.poll('analyst-1', lease);
    const [whileLeased] = await engine.enqueue([
      { message: { id: 'order-7', target: 'type:analyst' } },
    ]);
    expect(whileLeased?.duplicate).toBe(true);

    await engine.ack([delivery?.queueId as string], 'analyst-1');
    const [afterAck] = await engine.enqueue([
      { message: { id: 'order-7', target: 'type:analyst' } },
    ]);
    expect(afterAck?.duplicate).toBe(false);
  });

  it('lets only the lease holder acknowledge', async () => {
    const { engine } = swarm;
    await engine.enqueue([{ message: { target: 'type:analyst' } }]);
    const [delivery] = await engine.poll('analyst-1', lease);
    const queueId = delivery?.queueId as string;

    expect((await engine.getAgent('analyst-1')).inflight).toBe(1);
    expect((await engine.listAgents({ limit: 10 })).items.map((a) => a.inflight)).toEqual([1, 0]);

    const wrong = await engine.ack([queueId, 'nope', '999999'], 'trader-1');
    expect(wrong.acked).toBe(0);
    expect(wrong.rejected.map((r) => r.why)).toEqual([
      'not_lease_holder',
      'unknown_queue_id',
      'unknown_queue_id',
    ]);

    expect((await engine.ack([queueId], 'analyst-1')).acked).toBe(1);
    expect((await engine.getAgent('analyst-1')).inflight).toBe(0);
    expect((await engine.ack([queueId], 'analyst-1')).rejected[0]?.why).toBe('unknown_queue_id');
  });

  it('retries a nacked message with backoff and dead-letters it when attempts run out', async () => {
    const { engine, clock } = swarm;
    await engine.enqueue([{ message: { target: 'analyst-1' }, maxAttempts: 2 }]);

    const [first] = await engine.poll('analyst-1', lease);
    expect(
      await engine.nack({ queueIds: [first?.queueId as string], error: 'boom' }),
    ).toMatchObject({
      retried: 1,
      deadLettered: 0,
    });

    // Backoff for the first retry is between half and all of the 1 s base.
    expect(await engine.poll('analyst-1', lease)).toEqual([]);
    clock.advance(1000);
    const [second] = await engine.poll('analyst-1', lease);
    expect(second?.attempt).toBe(2);

    expect(
      await engine.nack({ queueIds: [second?.queueId as string], error: 'boom again' }),
    ).toMatchObject({
      retried: 0,
      deadLettered: 1,
    });
    const entry = await engine.getEntry(second?.queueId as string);
    expect(entry).toMatchObject({
      state: 'dead',
      reason: 'max_attempts',
      lastError: 'boom again',
      attempts: 2,
    });
  });

  it('dead-letters at once as rejected when the agent says not to retry', async () => {
    const { engine } = swarm;
    await engine.enqueue([{ message: { target: 'analyst-1' } }]);
    const [delivery] = await engine.poll('analyst-1', lease);

    const result = await engine.nack({
      queueIds: [delivery?.queueId as string],
      retry: false,
      error: 'bad payload',
    });
    expect(result).toMatchObject({ retried: 0, deadLettered: 1 });
    expect((await engine.getEntry(delivery?.queueId as string)).reason).toBe('rejected');
  });

  it('counts an expired lease as an attempt and offers the message again', async () => {
    const { engine, clock } = swarm;
    await engine.enqueue([{ message: { target: 'type:analyst' }, maxAttempts: 2 }]);
    await engine.poll('analyst-1', { ...lease, leaseMs: 1000 });

    clock.advance(1000);
    await engine.sweep();
    clock.advance(2000);
    const [again] = await engine.poll('analyst-1', { ...lease, leaseMs: 1000 });
    expect(again?.attempt).toBe(2);

    clock.advance(1000);
    await engine.sweep();
    const entry = await engine.getEntry(again?.queueId as string);
    expect(entry).toMatchObject({
      state: 'dead',
      reason: 'max_attempts',
      lastError: 'lease expired',
    });
  });

  it('dead-letters a message past its TTL wherever it sits, and not again after', async () => {
    const { engine, clock } = swarm;
    const [pending] = await engine.enqueue([{ message: { target: 'trader-1', ttlMs: 500 } }]);
    const [delayed] = await engine.enqueue([
      { message: { target: 'trader-1', ttlMs: 500 }, delayMs: 60_000 },
    ]);
    await engine.enqueue([{ message: { target: 'analyst-1', ttlMs: 500 } }]);
    const [leased] = await engine.poll('analyst-1', lease);

    clock.advance(500);
    expect(await engine.sweep()).toMatchObject({ expired: 3 });
    for (const queueId of [pending?.queueId, delayed?.queueId, leased?.queueId]) {
      expect(await engine.getEntry(queueId as string)).toMatchObject({
        state: 'dead',
        reason: 'expired',
      });
    }
    expect((await engine.ack([leased?.queueId as string], 'analyst-1')).acked).toBe(0);

    clock.advance(60_000);
    expect(await engine.sweep()).toMatchObject({ expired: 0 });
    expect((await engine.metrics()).stats.expired).toBe(3);
  });

  it('gives nothing to an offline agent', async () => {
    const { engine } = swarm;
    await engine.enqueue([{ message: { target: 'type:analyst' } }]);
    await engine.heartbeat('analyst-1', { status: 'offline' });
    expect(await engine.poll('analyst-1', lease)).toEqual([]);

    await engine.heartbeat('analyst-1', { status: 'busy' });
    expect(await engine.poll('analyst-1', lease)).toHaveLength(1);
  });

  it('answers a long poll as soon as a message arrives', async () => {
    const { engine } = swarm;
    const started = Date.now();
    const waiting = engine.poll('analyst-1', { limit: 10, waitMs: 10_000, leaseMs: 30_000 });

    await new Promise((resolve) => setTimeout(resolve, 20));
    await engine.enqueue([{ message: { target: 'type:analyst', payload: 'wake' } }]);

    const deliveries = await waiting;
    expect(deliveries.map((d) => d.message.payload)).toEqual(['wake']);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('ends a long poll early when the caller goes away', async () => {
    const controller = new AbortController();
    const waiting = swarm.engine.poll(
      'analyst-1',
      { limit: 10, waitMs: 10_000, leaseMs: 30_000 },
      controller.signal,
    );
    controller.abort();
    expect(await waiting).toEqual([]);
  });

  it('hands out and acknowledges in one step for clients of the original worker', async () => {
    const { engine } = swarm;
    await engine.enqueue([
      { message: { target: 'analyst-1' } },
      { message: { target: 'analyst-1' } },
    ]);
    const deliveries = await engine.pollAndAck('analyst-1', 10);
    expect(deliveries).toHaveLength(2);
    expect((await engine.metrics()).stats.delivered).toBe(2);
    expect((await engine.queueSummary()).queued).toBe(0);
  });

  it('makes one copy per live agent for a broadcast', async () => {
    const { engine, clock } = swarm;
    clock.advance(200_000);
    await engine.heartbeat('trader-1', {});
    clock.advance(200_000);

    // analyst-1 last beat 400 s ago: stale, so it gets no copy.
    await engine.registerAgent({ id: 'scout-1', type: 'scout' });
    const [result] = await engine.enqueue([{ message: { target: 'broadcast', payload: 'hello' } }]);
    expect(result?.queueIds).toHaveLength(2);

    expect(await engine.poll('scout-1', lease)).toHaveLength(1);
    expect(await engine.poll('trader-1', lease)).toHaveLength(1);
    await expectConservation(engine);
    await engine.pruneStale({ staleMs: 300_000, dryRun: false }, TRADE);
  });

  it('copies a publish to every subscriber of the topic', async () => {
    const { engine } = swarm;
    await engine.subscribe('analyst-1', 'signals.fx');
    await engine.subscribe('trader-1', 'signals.fx');

    const published = await engine.publish({
      topic: 'signals.fx',
      payload: { px: 1.1 },
      source: 'scout',
    });
    expect(published.enqueued).toBe(2);
    expect((await engine.poll('trader-1', lease))[0]?.message).toMatchObject({
      topic: 'signals.fx',
      target: 'trader-1',
      payload: { px: 1.1 },
    });

    await engine.unsubscribe('trader-1', 'signals.fx');
    expect((await engine.publish({ topic: 'signals.fx' })).enqueued).toBe(1);
    expect((await engine.queueSummary()).byTopic['signals.fx']).toMatchObject({
      queued: 2,
      inflight: 1,
    });
  });

  it('dead-letters a message to an unregistered agent as no_route', async () => {
    const [result] = await swarm.engine.enqueue([{ message: { target: 'ghost-9' } }]);
    expect(await swarm.engine.getEntry(result?.queueId as string)).toMatchObject({
      state: 'dead',
      reason: 'no_route',
    });
  });
});
