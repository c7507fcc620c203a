// The operator guide's drills (../shared/seed/swarm-operator-training.md), with its exact curl
// requests: the same headers and the same bodies, against the real engine and a real push
// endpoint on loopback.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type Harness, makeDeadLetter, startHarness, TOKENS } from './harness.ts';

let h: Harness;
let endpoint: Server;
let endpointUrl: string;
let endpointStatus = 500;
const pushed: string[] = [];

beforeAll(async () => {
  h = await startHarness();

  // A push agent's endpoint: it answers with whatever status the drill sets.
  endpoint = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      for (const d of JSON.parse(body).deliveries) pushed.push(d.message.id);
      res.writeHead(endpointStatus).end();
    });
  });
  await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
  endpointUrl = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/deliveries`;
});

afterAll(async () => {
  await h.close();
  await new Promise((resolve) => endpoint.close(resolve));
});

/** `curl -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" -d …` */
const curl = (url: string, data: string, token: string = TOKENS.trade) =>
  h.app.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    payload: data,
  });

const queue = async () =>
  (await call(h.app, { method: 'GET', url: '/swarm/queue', token: 'read' })).body;

const metrics = async () =>
  (await call(h.app, { method: 'GET', url: '/swarm/metrics', token: 'read' })).body;

describe('drill 1: dead-letter recovery', () => {
  it('requeues dead letters and dispatch delivers them, so dead letters and queue depth fall', async () => {
    await call(h.app, {
      method: 'POST',
      url: '/swarm/agents',
      token: 'agent',
      body: { id: 'executor-1', type: 'executor', endpoint: endpointUrl },
    });
    for (const id of ['order-1', 'order-2', 'order-3']) {
      await call(h.app, {
        method: 'POST',
        url: '/swarm/messages',
        token: 'agent',
        body: { message: { id, target: 'executor-1', topic: 'orders' }, maxAttempts: 1 },
      });
    }

    // The endpoint is down: one attempt each, and all three are dead letters.
    const failing = await curl('/swarm/dispatch', '{"limit":200}');
    expect(JSON.parse(failing.body)).toMatchObject({ failed: 3, deadLettered: 3 });

    // 1. Confirm dead letters are present via GET /swarm/queue or GET /swarm/metrics.
    expect((await queue()).deadLettered).toBe(3);
    expect((await metrics()).queue.deadLettered).toBe(3);

    // 2. The endpoint is back; requeue.
    endpointStatus = 200;
    const requeue = await curl('/swarm/recovery/requeue-dlq', '{"limit":50}');
    expect(requeue.statusCode).toBe(200);
    expect(JSON.parse(requeue.body)).toMatchObject({
      requeued: 3,
      remaining: 0,
      skipped: [],
      dryRun: false,
    });

    // 3. Trigger dispatch.
    const dispatch = await curl('/swarm/dispatch', '{"limit":200}');
    expect(dispatch.statusCode).toBe(200);
    expect(JSON.parse(dispatch.body)).toEqual({
      delivered: 3,
      failed: 0,
      deadLettered: 0,
      pending: 0,
      durationMs: expect.any(Number),
    });

    // 4. Confirm dead letters and queue depth decrease.
    const after = await queue();
    expect(after).toMatchObject({ deadLettered: 0, queued: 0, inflight: 0 });
    expect(after.stats).toMatchObject({ enqueued: 3, delivered: 3, requeued: 3 });
    expect(pushed.filter((id) => id === 'order-1')).toHaveLength(2);
  });

  it('previews a requeue with dryRun without moving anything', async () => {
    const queueId = await makeDeadLetter(h.app, 'scout-1');
    const before = await queue();

    const dry = await curl('/swarm/recovery/requeue-dlq', '{"limit":50,"dryRun":true}');

    expect(JSON.parse(dry.body)).toMatchObject({ requeued: 1, dryRun: true });
    expect(await queue()).toEqual(before);

    const shown = await call(h.app, {
      method: 'GET',
      url: `/swarm/queue/dead-letters/${queueId}`,
      token: 'read',
    });
    expect(shown.body).toMatchObject({ queueId, state: 'dead', reason: 'rejected' });
  });
});

describe('drill 2: stale agent cleanup', () => {
  it('prunes agents silent for staleMs, so the stale count and routing anomalies fall', async () => {
    await call(h.app, {
      method: 'POST',
      url: '/swarm/agents',
      token: 'agent',
      body: { id: 'old-analyst', type: 'analyst' },
    });
    await call(h.app, {
      method: 'PUT',
      url: '/swarm/agents/old-analyst/subscriptions/signals',
      token: 'agent',
    });
    await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      token: 'agent',
      body: { message: { id: 'for-old', target: 'old-analyst' } },
    });

    // Eleven quiet minutes for old-analyst; every other agent keeps heartbeating.
    h.clock.advance(11 * 60_000);
    const agents = (await call(h.app, { method: 'GET', url: '/swarm/agents', token: 'read' })).body;
    for (const agent of agents.agents) {
      if (agent.id === 'old-analyst') continue;
      await call(h.app, {
        method: 'POST',
        url: `/swarm/agents/${agent.id}/heartbeat`,
        token: 'agent',
      });
    }

    // 1. Check the stale count in GET /swarm/metrics.
    expect((await metrics()).agents.stale).toBe(1);
    const routingBefore = await call(h.app, {
      method: 'GET',
      url: '/swarm/routing',
      token: 'read',
    });
    expect(routingBefore.body.anomalies.length).toBeGreaterThan(0);

    // 2. Prune stale records.
    const prune = await curl('/swarm/recovery/prune-stale', '{"staleMs":600000}');
    expect(prune.statusCode).toBe(200);
    expect(JSON.parse(prune.body)).toMatchObject({
      removed: 1,
      removedIds: ['old-analyst'],
      deadLettered: 1,
    });

    // 3. Confirm stale count and routing anomalies are reduced.
    expect((await metrics()).agents.stale).toBe(0);
    const routingAfter = await call(h.app, { method: 'GET', url: '/swarm/routing', token: 'read' });
    expect(routingAfter.body.anomalies.length).toBeLessThan(routingBefore.body.anomalies.length);

    const pruned = await call(h.app, {
      method: 'GET',
      url: '/swarm/queue/dead-letters?reason=target_pruned',
      token: 'read',
    });
    expect(pruned.body.items.map((e: { message: { id: string } }) => e.message.id)).toEqual([
      'for-old',
    ]);
  });
});

describe('dead letters and the audit log', () => {
  it('pages dead letters oldest first, without overlap, with a total', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let total = 0;

    do {
      const query = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
      const page = await call(h.app, {
        method: 'GET',
        url: `/swarm/queue/dead-letters?limit=1${query}`,
        token: 'read',
      });
      expect(Object.keys(page.body).sort()).toEqual(['items', 'nextCursor', 'total']);
      total = page.body.total;
      seen.push(...page.body.items.map((e: { queueId: string }) => e.queueId));
      cursor = page.body.nextCursor;
    } while (cursor !== null);

    expect(seen.length).toBe(total);
    expect(new Set(seen).size).toBe(total);
  });

  it('answers 404 for a dead letter that does not exist or is not dead', async () => {
    const missing = await call(h.app, {
      method: 'GET',
      url: '/swarm/queue/dead-letters/999999',
      token: 'read',
    });
    const live = await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      token: 'agent',
      body: { message: { target: 'scout-1' } },
    });
    const notDead = await call(h.app, {
      method: 'GET',
      url: `/swarm/queue/dead-letters/${live.body.queueId}`,
      token: 'read',
    });

    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('not_found');
    expect(notDead.status).toBe(404);
  });

  it('purges dead letters for admin only, and audits who did it', async () => {
    const before = (await queue()).deadLettered;

    const byTrade = await curl('/swarm/recovery/purge-dlq', '{"reason":"rejected"}');
    const byAdmin = await curl('/swarm/recovery/purge-dlq', '{"reason":"rejected"}', TOKENS.admin);

    expect(byTrade.statusCode).toBe(403);
    expect(byAdmin.statusCode).toBe(200);
    expect(JSON.parse(byAdmin.body)).toEqual({ purged: 1, remaining: before - 1, dryRun: false });

    const audit = await call(h.app, { method: 'GET', url: '/swarm/audit?limit=1', token: 'read' });
    expect(audit.body.items[0]).toMatchObject({
      action: 'purge-dlq',
      scope: 'admin',
      tokenName: 'admin',
      parameters: expect.objectContaining({ reason: 'rejected' }),
      result: expect.objectContaining({ purged: 1 }),
    });
  });

  it('lists recovery and admin actions newest first in pages', async () => {
    const first = await call(h.app, { method: 'GET', url: '/swarm/audit?limit=2', token: 'read' });
    const second = await call(h.app, {
      method: 'GET',
      url: `/swarm/audit?limit=2&cursor=${encodeURIComponent(first.body.nextCursor)}`,
      token: 'read',
    });

    expect(first.body.items).toHaveLength(2);
    expect(first.body.total).toBeGreaterThanOrEqual(4);
    const ids = [...first.body.items, ...second.body.items].map((r: { id: string }) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('swarm health', () => {
  it('reports a swarm with dead letters as degraded, still with 200', async () => {
    await makeDeadLetter(h.app, 'scout-2');
    const res = await call(h.app, { method: 'GET', url: '/swarm/health', token: 'read' });

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'degraded', degraded: true, healthy: true });
    expect(res.body.reasons.map((r: { code: string }) => r.code)).toContain('dead_letters_present');
  });
});
