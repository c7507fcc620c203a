// OWOKX_MAX_QUEUE_DEPTH: past the limit, new messages get 429 with Retry-After and change
// nothing; once consumers catch up, they are accepted again.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type Harness, startHarness } from './harness.ts';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ config: { maxQueueDepth: 3 } });
  await call(h.app, {
    method: 'POST',
    url: '/swarm/agents',
    token: 'agent',
    body: { id: 'w1', type: 'worker' },
  });
  await call(h.app, {
    method: 'PUT',
    url: '/swarm/agents/w1/subscriptions/jobs',
    token: 'agent',
  });
});

afterAll(() => h.close());

const enqueue = (body: unknown) =>
  call(h.app, { method: 'POST', url: '/swarm/messages', token: 'agent', body });
const publish = (payload: number) =>
  call(h.app, {
    method: 'POST',
    url: '/swarm/publish',
    token: 'agent',
    body: { topic: 'jobs', payload },
  });
const message = (n: number) => ({ message: { id: `m${n}`, target: 'type:worker', payload: n } });
const metrics = async () =>
  (await call(h.app, { method: 'GET', url: '/swarm/metrics', token: 'read' })).body as {
    queue: { queued: number; inflight: number; deadLettered: number };
    stats: { enqueued: number; delivered: number; purged: number };
  };

describe('a full queue', () => {
  it('refuses what would pass the limit, whole, with 429 and Retry-After', async () => {
    expect((await enqueue(message(1))).status).toBe(200);
    expect((await enqueue(message(2))).status).toBe(200);
    const before = await metrics();

    // Two more would make four: the whole batch is refused, not its first half.
    const batch = await enqueue({ messages: [message(3), message(4)] });
    expect(batch.status).toBe(429);
    expect(batch.headers['retry-after']).toBe('1');
    expect(batch.body).toMatchObject({
      error: {
        code: 'rate_limited',
        details: [{ field: 'queue', depth: 2, limit: 3, count: 2 }],
      },
    });
    expect((batch.body as { error: { message: string } }).error.message).toMatch(/queue is full/);

    expect((await publish(1)).status).toBe(200);
    expect((await enqueue(message(5))).status).toBe(429);
    expect((await publish(2)).status).toBe(429);

    const after = await metrics();
    expect(after.stats.enqueued).toBe(before.stats.enqueued + 1);
    expect(after.queue.queued).toBe(3);
  });

  it('takes messages again once consumers catch up, and conservation holds', async () => {
    const poll = await call(h.app, {
      method: 'POST',
      url: '/swarm/agents/w1/poll',
      token: 'agent',
      body: { limit: 10, waitMs: 0 },
    });
    const ids = (poll.body as { deliveries: { queueId: string }[] }).deliveries.map(
      (d) => d.queueId,
    );
    expect(ids).toHaveLength(3);

    // In flight still counts: the messages are not delivered until acknowledged.
    expect((await enqueue(message(6))).status).toBe(429);

    const ack = await call(h.app, {
      method: 'POST',
      url: '/swarm/ack',
      token: 'agent',
      body: { queueIds: ids, agentId: 'w1' },
    });
    expect(ack.body).toMatchObject({ acked: 3 });
    expect((await enqueue(message(6))).status).toBe(200);

    const { queue, stats } = await metrics();
    expect(stats.enqueued).toBe(
      stats.delivered + queue.queued + queue.inflight + queue.deadLettered + stats.purged,
    );
  });
});

describe('concurrent senders at the limit', () => {
  it('cannot all pass on the same reading: exactly the limit is accepted', async () => {
    const burst = await startHarness({ config: { maxQueueDepth: 5 } });
    try {
      // Twelve requests in one turn of the event loop: none of them is committed when the
      // others are checked.
      const answers = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          call(burst.app, {
            method: 'POST',
            url: '/swarm/messages',
            token: 'agent',
            body: { message: { target: 'type:worker', payload: i } },
          }),
        ),
      );
      const statuses = answers.map((a) => a.status);
      expect(statuses.filter((s) => s === 200)).toHaveLength(5);
      expect(statuses.filter((s) => s === 429)).toHaveLength(7);

      const queue = (await call(burst.app, { method: 'GET', url: '/swarm/queue', token: 'read' }))
        .body as { queued: number; stats: { enqueued: number } };
      expect(queue.queued).toBe(5);
      expect(queue.stats.enqueued).toBe(5);
    } finally {
      await burst.close();
    }
  });
});
