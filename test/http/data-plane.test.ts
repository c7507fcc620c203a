import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PollInput } from '../../src/engine/contract.ts';
import { call, type Harness, startHarness, TOKENS } from './harness.ts';

/** The polls the HTTP layer hands the engine, with the signal each one got. */
interface SeenPoll {
  signal: AbortSignal | undefined;
  settled: Promise<unknown>;
}

let h: Harness;
const polls: SeenPoll[] = [];
let pollStarted: (poll: SeenPoll) => void = () => {};

beforeAll(async () => {
  h = await startHarness({
    wrap: (engine) => {
      // The real engine, watched: which signal each poll gets and when it settles.
      const api = Object.create(engine);
      api.poll = (agentId: string, input: PollInput, signal?: AbortSignal) => {
        const settled = engine.poll(agentId, input, signal);
        const seen = { signal, settled };
        polls.push(seen);
        pollStarted(seen);
        return settled;
      };
      return api;
    },
  });
});

afterAll(() => h.close());

const register = (body: Record<string, unknown>) =>
  call(h.app, { method: 'POST', url: '/swarm/agents', token: 'agent', body });

const enqueue = (body: unknown) =>
  call(h.app, { method: 'POST', url: '/swarm/messages', token: 'agent', body });

const poll = (agentId: string, body?: unknown) =>
  call(h.app, { method: 'POST', url: `/swarm/agents/${agentId}/poll`, token: 'agent', body });

describe('agents', () => {
  it('registers an agent and answers with it, the heartbeat interval and the stale window', async () => {
    const res = await register({
      id: 'scout-1',
      type: 'scout',
      capabilities: ['market-data'],
      metadata: { region: 'eu' },
    });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      agent: expect.objectContaining({
        id: 'scout-1',
        type: 'scout',
        status: 'active',
        capabilities: ['market-data'],
        metadata: { region: 'eu' },
        stale: false,
        inflight: 0,
      }),
      heartbeatIntervalMs: h.config.heartbeatIntervalMs,
      staleAfterMs: h.config.staleAfterMs,
    });
  });

  it('registers an agent without an id and gives it one', async () => {
    const res = await register({ type: 'analyst' });

    expect(res.status).toBe(200);
    expect(res.body.agent.id).toMatch(/^[A-Za-z0-9._:-]+$/);
  });

  it('answers a heartbeat with ok, and a heartbeat from an unknown agent with 404', async () => {
    const known = await call(h.app, {
      method: 'POST',
      url: '/swarm/agents/scout-1/heartbeat',
      token: 'agent',
      body: { status: 'busy', metrics: { load: 0.5 } },
    });
    const unknown = await call(h.app, {
      method: 'POST',
      url: '/swarm/agents/ghost/heartbeat',
      token: 'agent',
      body: {},
    });

    expect(known.status).toBe(200);
    expect(known.body).toEqual({ ok: true });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
  });

  it('keeps the metrics of the last heartbeat that carried any, for the agent view', async () => {
    const beat = (body: unknown) =>
      call(h.app, { method: 'POST', url: '/swarm/agents/m-1/heartbeat', token: 'agent', body });
    const view = async () =>
      (await call(h.app, { method: 'GET', url: '/swarm/agents/m-1', token: 'read' })).body;
    await call(h.app, {
      method: 'POST',
      url: '/swarm/agents',
      token: 'agent',
      body: { id: 'm-1', type: 'scout' },
    });
    expect(await view()).toMatchObject({ lastMetrics: null, lastMetricsAt: null });

    h.clock.advance(1000);
    await beat({ metrics: { load: 0.5, queue: 3 } });
    const at = h.clock.now();
    expect(await view()).toMatchObject({ lastMetrics: { load: 0.5, queue: 3 }, lastMetricsAt: at });

    // A heartbeat without metrics keeps the last ones; one with metrics replaces them whole.
    h.clock.advance(1000);
    await beat({ status: 'busy' });
    expect(await view()).toMatchObject({ lastMetrics: { load: 0.5, queue: 3 }, lastMetricsAt: at });
    await beat({ metrics: { load: 0.9 } });
    expect(await view()).toMatchObject({
      lastMetrics: { load: 0.9 },
      lastMetricsAt: h.clock.now(),
    });

    // Gone with the agent: registered again, it starts without.
    await call(h.app, { method: 'DELETE', url: '/swarm/agents/m-1', token: 'agent' });
    await call(h.app, {
      method: 'POST',
      url: '/swarm/agents',
      token: 'agent',
      body: { id: 'm-1', type: 'scout' },
    });
    expect(await view()).toMatchObject({ lastMetrics: null });
    await call(h.app, { method: 'DELETE', url: '/swarm/agents/m-1', token: 'agent' });
  });

  it('shows one agent with its subscriptions and inflight count', async () => {
    await call(h.app, {
      method: 'PUT',
      url: '/swarm/agents/scout-1/subscriptions/market.tick',
      token: 'agent',
    });
    const res = await call(h.app, { method: 'GET', url: '/swarm/agents/scout-1', token: 'read' });

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: 'scout-1', subscriptions: ['market.tick'], inflight: 0 });
  });

  it('lists agents as {agents,total,nextCursor} in pages that neither overlap nor skip', async () => {
    for (const n of [1, 2, 3]) await register({ id: `trader-${n}`, type: 'trader' });

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
      const res = await call(h.app, {
        method: 'GET',
        url: `/swarm/agents?type=trader&limit=2${query}`,
        token: 'read',
      });

      expect(res.status).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual(['agents', 'nextCursor', 'total']);
      expect(res.body.total).toBe(3);
      seen.push(...res.body.agents.map((a: { id: string }) => a.id));
      cursor = res.body.nextCursor;
    } while (cursor !== null);

    expect(seen.sort()).toEqual(['trader-1', 'trader-2', 'trader-3']);
  });

  it('filters agents by stale=true and stale=false', async () => {
    const stale = await call(h.app, {
      method: 'GET',
      url: '/swarm/agents?stale=true',
      token: 'read',
    });
    const live = await call(h.app, {
      method: 'GET',
      url: '/swarm/agents?stale=false',
      token: 'read',
    });

    expect(stale.body.agents).toEqual([]);
    expect(live.body.total).toBeGreaterThan(0);
  });

  it('deregisters an agent at once, and answers 404 for one that is gone', async () => {
    await register({ id: 'temp-1', type: 'scout' });

    const gone = await call(h.app, {
      method: 'DELETE',
      url: '/swarm/agents/temp-1',
      token: 'agent',
    });
    const again = await call(h.app, {
      method: 'DELETE',
      url: '/swarm/agents/temp-1',
      token: 'agent',
    });
    const lookup = await call(h.app, { method: 'GET', url: '/swarm/agents/temp-1', token: 'read' });

    expect(gone.status).toBe(200);
    expect(gone.body).toEqual({ ok: true, released: 0, deadLettered: 0 });
    expect(again.status).toBe(404);
    expect(lookup.status).toBe(404);
  });

  it('subscribes and unsubscribes topics with percent-encoded names', async () => {
    const topic = 'alerts/risk limits';
    const url = `/swarm/agents/scout-1/subscriptions/${encodeURIComponent(topic)}`;

    const put = await call(h.app, { method: 'PUT', url, token: 'agent' });
    const listed = await call(h.app, {
      method: 'GET',
      url: `/swarm/subscriptions?topic=${encodeURIComponent(topic)}`,
      token: 'read',
    });
    const del = await call(h.app, { method: 'DELETE', url, token: 'agent' });

    expect(put.body).toEqual({ ok: true });
    expect(listed.body).toEqual({ subscriptions: { [topic]: ['scout-1'] } });
    expect(del.body).toEqual({ ok: true });
  });
});

describe('messages', () => {
  it('enqueues one message and answers queueId, duplicate, queueIds and messageId', async () => {
    const res = await enqueue({
      message: { id: 'order-1', target: 'scout-1', topic: 'scan', payload: { symbol: 'BTC' } },
      delayMs: 0,
      maxAttempts: 5,
    });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      queueId: expect.any(String),
      duplicate: false,
      queueIds: [res.body.queueId],
      messageId: 'order-1',
    });
  });

  it('answers a message id already pending with duplicate: true and the same queueId', async () => {
    const first = await enqueue({ message: { id: 'order-2', target: 'scout-1' } });
    const second = await enqueue({ message: { id: 'order-2', target: 'scout-1' } });

    expect(second.body).toMatchObject({ duplicate: true, queueId: first.body.queueId });
  });

  it('enqueues a batch and answers one result per message, in order', async () => {
    const res = await enqueue({
      messages: [
        { message: { id: 'b-1', target: 'scout-1' } },
        { message: { id: 'b-2', target: 'type:scout', priority: 'high' }, delayMs: 60_000 },
        { message: { id: 'b-1', target: 'scout-1' } },
      ],
    });

    expect(res.status).toBe(200);
    expect(res.body.results.map((r: { messageId: string }) => r.messageId)).toEqual([
      'b-1',
      'b-2',
      'b-1',
    ]);
    expect(res.body.results[2]).toMatchObject({
      duplicate: true,
      queueId: res.body.results[0].queueId,
    });
  });

  it('publishes one copy per subscriber', async () => {
    const res = await call(h.app, {
      method: 'POST',
      url: '/swarm/publish',
      token: 'agent',
      body: { topic: 'market.tick', payload: { px: 1 }, source: 'feed', priority: 'low' },
    });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ enqueued: 1, queueIds: [expect.any(String)] });
  });
});

describe('pull delivery', () => {
  it('polls deliveries with queueId, attempt, leaseExpiresAt and the message envelope', async () => {
    await register({ id: 'worker-1', type: 'worker' });
    await enqueue({
      message: {
        id: 'job-1',
        target: 'worker-1',
        topic: 'jobs',
        payload: { n: 1 },
        correlationId: 'c-1',
        headers: { trace: 't-1' },
      },
    });

    const res = await poll('worker-1', { limit: 10, leaseMs: 5000 });

    expect(res.status).toBe(200);
    expect(res.body.deliveries).toEqual([
      {
        queueId: expect.any(String),
        attempt: 1,
        leaseExpiresAt: h.clock.now() + 5000,
        message: expect.objectContaining({
          id: 'job-1',
          target: 'worker-1',
          topic: 'jobs',
          payload: { n: 1 },
          correlationId: 'c-1',
          headers: { trace: 't-1' },
          priority: 'normal',
          timestamp: expect.any(String),
        }),
      },
    ]);
  });

  it('acks only for the lease holder, and nacks into a retry or a dead letter', async () => {
    await enqueue({ message: { id: 'job-2', target: 'worker-1' } });
    await enqueue({ message: { id: 'job-3', target: 'worker-1' } });
    const [a, b] = (await poll('worker-1', { limit: 2 })).body.deliveries;

    const stranger = await call(h.app, {
      method: 'POST',
      url: '/swarm/ack',
      token: 'agent',
      body: { queueIds: [a.queueId], agentId: 'scout-1' },
    });
    const holder = await call(h.app, {
      method: 'POST',
      url: '/swarm/ack',
      token: 'agent',
      body: { queueIds: [a.queueId], agentId: 'worker-1' },
    });
    const nack = await call(h.app, {
      method: 'POST',
      url: '/swarm/nack',
      token: 'agent',
      body: { queueIds: [b.queueId], error: 'boom', retry: false, agentId: 'worker-1' },
    });

    expect(stranger.body).toEqual({
      acked: 0,
      rejected: [{ queueId: a.queueId, why: expect.any(String) }],
    });
    expect(holder.body).toEqual({ acked: 1, rejected: [] });
    expect(nack.body).toEqual({ retried: 0, deadLettered: 1, rejected: [] });
  });

  it('retries a nacked delivery by default', async () => {
    await enqueue({ message: { id: 'job-4', target: 'worker-1' } });
    const [d] = (await poll('worker-1')).body.deliveries;

    const nack = await call(h.app, {
      method: 'POST',
      url: '/swarm/nack',
      token: 'agent',
      body: { queueIds: [d.queueId], delayMs: 0 },
    });

    expect(nack.body).toEqual({ retried: 1, deadLettered: 0, rejected: [] });
  });

  it('answers a long poll as soon as a message arrives', async () => {
    await register({ id: 'waiter-1', type: 'waiter' });
    const started = new Promise<SeenPoll>((resolve) => {
      pollStarted = resolve;
    });

    const pending = poll('waiter-1', { waitMs: 20_000 });
    await started;
    await enqueue({ message: { id: 'wake-1', target: 'waiter-1' } });
    const res = await pending;

    expect(res.status).toBe(200);
    expect(res.body.deliveries.map((d: { message: { id: string } }) => d.message.id)).toEqual([
      'wake-1',
    ]);
  });

  it('stops a long poll when its client hangs up, so it takes no lease', async () => {
    await register({ id: 'leaver-1', type: 'leaver' });
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = h.app.server.address() as AddressInfo;

    const started = new Promise<SeenPoll>((resolve) => {
      pollStarted = resolve;
    });
    const body = JSON.stringify({ waitMs: 30_000 });
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/swarm/agents/leaver-1/poll',
      headers: {
        authorization: `Bearer ${TOKENS.agent}`,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      },
    });
    req.on('error', () => {});
    req.end(body);

    const seen = await started;
    req.destroy();

    // The engine's wait ends because the signal fired, not because 30 s went by.
    expect(await seen.settled).toEqual([]);
    expect(seen.signal?.aborted).toBe(true);

    await enqueue({ message: { id: 'after-leave', target: 'leaver-1' } });
    const next = await poll('leaver-1');
    expect(next.body.deliveries.map((d: { message: { id: string } }) => d.message.id)).toEqual([
      'after-leave',
    ]);
  });

  it('gives a short poll no abort signal at all', async () => {
    const before = polls.length;
    await poll('worker-1', { waitMs: 0 });

    expect(polls.length).toBe(before + 1);
    expect(polls.at(-1)?.signal).toBeUndefined();
  });
});
