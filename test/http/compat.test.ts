// The original owokx worker's /registry/* paths, driven the way its clients drive them: an
// agent status object with its own lastHeartbeat and metrics, epoch-millisecond timestamps,
// and the one-step poll that hands messages out and acknowledges them.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type Harness, startHarness } from './harness.ts';

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(() => h.close());

const post = (url: string, body: unknown) =>
  call(h.app, { method: 'POST', url, token: 'agent', body });
const get = (url: string) => call(h.app, { method: 'GET', url, token: 'agent' });

describe('/registry/* compatibility', () => {
  it('registers an agent status object, ignoring lastHeartbeat, metrics and other extras', async () => {
    const res = await post('/registry/register', {
      id: 'trader-legacy',
      type: 'trader',
      status: 'active',
      capabilities: ['execute_orders'],
      lastHeartbeat: 1700000000000,
      metrics: { trades: 3 },
      version: '0.9',
    });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      ok: true,
      agent: expect.objectContaining({
        id: 'trader-legacy',
        type: 'trader',
        capabilities: ['execute_orders'],
        lastHeartbeat: h.clock.now(),
      }),
    });
  });

  it('still checks the fields it knows', async () => {
    const res = await post('/registry/register', { id: 'x', type: 'Trader' });

    expect(res.status).toBe(400);
    expect(res.body.error.details[0].field).toBe('type');
  });

  it('enqueues {message,delayMs,maxAttempts} with an epoch-ms timestamp and answers {ok,queueId}', async () => {
    const res = await post('/registry/queue/enqueue', {
      message: {
        id: 'legacy-1',
        source: 'analyst-1',
        target: 'trader-legacy',
        type: 'COMMAND',
        topic: 'execute',
        payload: { symbol: 'ETH' },
        timestamp: 1735689600000,
        unknownField: true,
      },
      delayMs: 0,
      maxAttempts: 3,
    });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, queueId: expect.any(String) });
  });

  it('hands out and acknowledges messages in one poll, answering {messages:[envelopes]}', async () => {
    const before = (await call(h.app, { method: 'GET', url: '/swarm/queue', token: 'read' })).body;

    const first = await get('/registry/queue/poll?agentId=trader-legacy&limit=10');
    const second = await get('/registry/queue/poll?agentId=trader-legacy');
    const after = (await call(h.app, { method: 'GET', url: '/swarm/queue', token: 'read' })).body;

    expect(first.status).toBe(200);
    expect(first.body).toEqual({
      messages: [
        expect.objectContaining({
          id: 'legacy-1',
          target: 'trader-legacy',
          topic: 'execute',
          payload: { symbol: 'ETH' },
          timestamp: '2025-01-01T00:00:00.000Z',
        }),
      ],
    });
    expect(second.body).toEqual({ messages: [] });
    expect(after.stats.delivered).toBe(before.stats.delivered + 1);
    expect(after.queued + after.inflight).toBe(0);
  });

  it('rejects a poll without an agentId, or with a limit that is not a number', async () => {
    const missing = await get('/registry/queue/poll');
    const bad = await get('/registry/queue/poll?agentId=trader-legacy&limit=lots');

    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toBe('agentId is required');
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toBe('limit must be an integer from 1 to 1000');
  });

  it('subscribes, publishes one copy per subscriber with {ok,enqueued,queueIds}, and unsubscribes', async () => {
    const sub = await post('/registry/subscriptions/subscribe', {
      agentId: 'trader-legacy',
      topic: 'market_update',
    });
    const published = await post('/registry/queue/publish', {
      source: 'scout-1',
      topic: 'market_update',
      payload: { px: 100 },
    });
    const unsub = await post('/registry/subscriptions/unsubscribe', {
      agentId: 'trader-legacy',
      topic: 'market_update',
    });
    const none = await post('/registry/queue/publish', { topic: 'market_update' });

    expect(sub.body).toEqual({ ok: true });
    expect(published.body).toEqual({ ok: true, enqueued: 1, queueIds: [expect.any(String)] });
    expect(unsub.body).toEqual({ ok: true });
    expect(none.body).toEqual({ ok: true, enqueued: 0, queueIds: [] });
  });

  it('rejects a subscription without a topic', async () => {
    const res = await post('/registry/subscriptions/subscribe', { agentId: 'trader-legacy' });

    expect(res.status).toBe(400);
    expect(res.body.error.message).toBe('topic is required');
  });

  it('lists every agent as {agents:[...]}', async () => {
    for (const n of [1, 2]) await post('/registry/register', { id: `scout-${n}`, type: 'scout' });
    const res = await get('/registry/agents');

    expect(res.status).toBe(200);
    expect(Object.keys(res.body)).toEqual(['agents']);
    expect(res.body.agents.map((a: { id: string }) => a.id).sort()).toEqual([
      'scout-1',
      'scout-2',
      'trader-legacy',
    ]);
  });

  it('answers /registry/health with the swarm health', async () => {
    const res = await get('/registry/health');

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: expect.stringMatching(/^(healthy|degraded|unhealthy)$/),
      totalAgents: 3,
    });
  });
});
