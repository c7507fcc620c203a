import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Call, call, type Harness, makeDeadLetter, startHarness, TOKENS } from './harness.ts';

let h: Harness;
let deadId: string;

beforeAll(async () => {
  h = await startHarness();
  deadId = await makeDeadLetter(h.app, 'scout-1');
});

afterAll(() => h.close());

type Route = Omit<Call, 'token'>;

/** Every GET a read token may make; each answers 200 with the fixtures above. */
const reads = (): Route[] => [
  { method: 'GET', url: '/swarm/health' },
  { method: 'GET', url: '/swarm/metrics' },
  { method: 'GET', url: '/metrics' },
  { method: 'GET', url: '/swarm/agents' },
  { method: 'GET', url: '/swarm/agents/scout-1' },
  { method: 'GET', url: '/swarm/routing' },
  { method: 'GET', url: '/swarm/routing?type=scout' },
  { method: 'GET', url: '/swarm/queue' },
  { method: 'GET', url: '/swarm/queue/dead-letters' },
  { method: 'GET', url: `/swarm/queue/dead-letters/${deadId}` },
  { method: 'GET', url: '/swarm/subscriptions' },
  { method: 'GET', url: '/swarm/audit' },
];

/** The agent data plane, /swarm/* and the original /registry/* paths. */
const agentRoutes = (): Route[] => [
  { method: 'POST', url: '/swarm/agents', body: { id: 'analyst-1', type: 'analyst' } },
  { method: 'POST', url: '/swarm/agents/analyst-1/heartbeat', body: { status: 'busy' } },
  { method: 'PUT', url: '/swarm/agents/analyst-1/subscriptions/market.tick' },
  { method: 'DELETE', url: '/swarm/agents/analyst-1/subscriptions/market.tick' },
  { method: 'POST', url: '/swarm/messages', body: { message: { target: 'analyst-1' } } },
  { method: 'POST', url: '/swarm/publish', body: { topic: 'market.tick', payload: 1 } },
  { method: 'POST', url: '/swarm/agents/analyst-1/poll', body: { limit: 1 } },
  { method: 'POST', url: '/swarm/ack', body: { queueIds: ['no-such-entry'] } },
  { method: 'POST', url: '/swarm/nack', body: { queueIds: ['no-such-entry'] } },
  { method: 'DELETE', url: '/swarm/agents/analyst-1' },
  { method: 'POST', url: '/registry/register', body: { id: 'old-1', type: 'trader' } },
  { method: 'POST', url: '/registry/queue/enqueue', body: { message: { target: 'old-1' } } },
  { method: 'POST', url: '/registry/queue/publish', body: { topic: 'news' } },
  { method: 'GET', url: '/registry/queue/poll?agentId=old-1' },
  {
    method: 'POST',
    url: '/registry/subscriptions/subscribe',
    body: { agentId: 'old-1', topic: 't' },
  },
  {
    method: 'POST',
    url: '/registry/subscriptions/unsubscribe',
    body: { agentId: 'old-1', topic: 't' },
  },
  { method: 'GET', url: '/registry/agents' },
  { method: 'GET', url: '/registry/health' },
];

const tradeRoutes = (): Route[] => [
  { method: 'POST', url: '/swarm/dispatch', body: { limit: 200 } },
  { method: 'POST', url: '/swarm/recovery/requeue-dlq', body: { limit: 50, dryRun: true } },
  { method: 'POST', url: '/swarm/recovery/prune-stale', body: { staleMs: 600000, dryRun: true } },
];

const adminRoutes = (): Route[] => [
  { method: 'POST', url: '/swarm/recovery/purge-dlq', body: { reason: 'expired', dryRun: true } },
];

const writes = () => [...agentRoutes(), ...tradeRoutes(), ...adminRoutes()];
const everyProtected = () => [...reads(), ...writes()];
const label = (r: Route) => `${r.method} ${r.url}`;

describe('auth', () => {
  it('refuses every protected route without a token: 401, a Bearer challenge, the error shape', async () => {
    for (const route of everyProtected()) {
      const res = await call(h.app, { ...route, token: null });

      expect(res.status, label(route)).toBe(401);
      expect(res.headers['www-authenticate'], label(route)).toMatch(/^Bearer\b/);
      expect(res.body, label(route)).toEqual({
        error: { code: 'unauthorized', message: expect.any(String), details: [] },
      });
    }
  });

  it('refuses an unknown token, and a non-Bearer scheme, with 401', async () => {
    for (const route of everyProtected()) {
      const wrong = await call(h.app, {
        ...route,
        token: null,
        headers: { authorization: `Bearer ${TOKENS.admin}x` },
      });
      expect(wrong.status, label(route)).toBe(401);
      expect(wrong.headers['www-authenticate'], label(route)).toMatch(/^Bearer\b/);
    }

    const basic = await call(h.app, {
      method: 'GET',
      url: '/swarm/queue',
      token: null,
      headers: { authorization: `Basic ${TOKENS.admin}` },
    });
    expect(basic.status).toBe(401);
  });

  it('accepts the scheme name in any case', async () => {
    const res = await call(h.app, {
      method: 'GET',
      url: '/swarm/queue',
      token: null,
      headers: { authorization: `bearer ${TOKENS.read}` },
    });

    expect(res.status).toBe(200);
  });

  it('serves /health and /ready without a token', async () => {
    const health = await call(h.app, { method: 'GET', url: '/health', token: null });
    const ready = await call(h.app, { method: 'GET', url: '/ready', token: null });

    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'ok', version: expect.any(String) });
    expect(health.body.uptimeMs).toBeTypeOf('number');
    expect(health.body.startedAt).toBeTypeOf('number');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ ready: true });
  });

  it('lets the read token GET everything under /swarm and /metrics', async () => {
    for (const route of reads()) {
      const res = await call(h.app, { ...route, token: 'read' });
      expect(res.status, label(route)).toBe(200);
    }
  });

  it('refuses the read token with 403 on every POST, PUT and DELETE and on /registry/*', async () => {
    for (const route of writes()) {
      const res = await call(h.app, { ...route, token: 'read' });

      expect(res.status, label(route)).toBe(403);
      expect(res.body.error.code, label(route)).toBe('forbidden');
      expect(res.headers['www-authenticate'], label(route)).toBeUndefined();
    }
  });

  it('lets the agent token work the data plane and the /registry/* paths', async () => {
    for (const route of agentRoutes()) {
      const res = await call(h.app, { ...route, token: 'agent' });
      expect(res.status, `${label(route)}: ${res.text}`).toBe(200);
    }
  });

  it('refuses the agent token on dispatch, recovery and purge', async () => {
    for (const route of [...tradeRoutes(), ...adminRoutes()]) {
      const res = await call(h.app, { ...route, token: 'agent' });

      expect(res.status, label(route)).toBe(403);
      expect(res.body.error.message, label(route)).toMatch(/needs the (trade|admin) scope/);
    }
  });

  it('lets the trade token dispatch and run recovery, but not purge', async () => {
    for (const route of tradeRoutes()) {
      const res = await call(h.app, { ...route, token: 'trade' });
      expect(res.status, label(route)).toBe(200);
    }

    const purge = await call(h.app, { ...adminRoutes()[0], token: 'trade' } as Call);
    expect(purge.status).toBe(403);
  });

  it('lets the admin token and the legacy OWOKX_API_TOKEN purge', async () => {
    const queue = await call(h.app, { method: 'GET', url: '/swarm/queue', token: 'read' });

    for (const token of ['admin', 'legacy'] as const) {
      const res = await call(h.app, { ...(adminRoutes()[0] as Route), token });

      expect(res.status, token).toBe(200);
      expect(res.body).toEqual({ purged: 0, remaining: queue.body.deadLettered, dryRun: true });
    }
  });

  it('records the scope and token name of an operator action in the audit log, never the token', async () => {
    await call(h.app, {
      method: 'POST',
      url: '/swarm/recovery/requeue-dlq',
      token: 'trade',
      body: { dryRun: true },
      headers: { 'x-request-id': 'audit-check-1' },
    });
    const audit = await call(h.app, { method: 'GET', url: '/swarm/audit?limit=1', token: 'read' });

    expect(audit.body.items[0]).toMatchObject({
      action: 'requeue-dlq',
      scope: 'trade',
      tokenName: 'trade',
    });
    expect(JSON.stringify(audit.body.items[0])).toContain('audit-check-1');
    expect(audit.text).not.toContain(TOKENS.trade);
  });
});
