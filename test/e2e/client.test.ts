// The typed client against the real server: every failure arrives as a SwarmClientError with
// the contract's code, and a server that is not there is told apart from one that said no.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../demo/processes.ts';
import { isSwarmClientError, SwarmClient, type SwarmClientError } from '../../src/client/index.ts';
import { type Swarm, startSwarm } from './helpers.ts';

let swarm: Swarm;

beforeAll(async () => {
  swarm = await startSwarm();
}, 60_000);

afterAll(async () => {
  await swarm?.close();
}, 60_000);

async function failure(call: Promise<unknown>): Promise<SwarmClientError> {
  try {
    await call;
  } catch (err) {
    if (isSwarmClientError(err)) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

const clientWith = (token: string | undefined): SwarmClient =>
  new SwarmClient({ baseUrl: swarm.url, token, timeoutMs: 5000 });

describe('SwarmClient', () => {
  it('answers liveness and readiness without a token', async () => {
    const anonymous = clientWith(undefined);

    const health = await anonymous.health();
    expect(health.status).toBe('ok');
    expect(await anonymous.ready()).toBe(true);

    const err = await failure(anonymous.metrics());
    expect(err.code).toBe('unauthorized');
    expect(err.status).toBe(401);
    expect(err.isNetworkError).toBe(false);

    await anonymous.close();
  });

  it('maps a missing scope to forbidden and a bad value to invalid_request with details', async () => {
    const reader = clientWith(swarm.tokens.readonly);

    expect((await reader.metrics()).stats.enqueued).toBeGreaterThanOrEqual(0);
    const forbidden = await failure(reader.dispatch({ limit: 10 }));
    expect(forbidden.code).toBe('forbidden');
    expect(forbidden.status).toBe(403);
    await reader.close();

    const invalid = await failure(swarm.client.dispatch({ limit: 5000 }));
    expect(invalid.code).toBe('invalid_request');
    expect(invalid.message).toMatch(/limit/);

    const unknown = await failure(swarm.client.getAgent('nobody-here'));
    expect(unknown.code).toBe('not_found');
    const heartbeat = await failure(swarm.client.heartbeat('nobody-here'));
    expect(heartbeat.code).toBe('not_found');
  });

  it('round-trips the data plane: register, subscribe, publish, poll, ack, deregister', async () => {
    const agent = swarm.client;
    const reg = await agent.registerAgent({ id: 'client-1', type: 'probe' });
    expect(reg.agent.id).toBe('client-1');
    expect(reg.heartbeatIntervalMs).toBeGreaterThan(0);

    await agent.subscribe('client-1', 'probe.topic/with slash');
    expect(await agent.subscriptions('probe.topic/with slash')).toEqual({
      'probe.topic/with slash': ['client-1'],
    });

    const published = await agent.publish({ topic: 'probe.topic/with slash', payload: { a: 1 } });
    expect(published.enqueued).toBe(1);

    const first = await agent.enqueue({ message: { id: 'probe-msg-1', target: 'client-1' } });
    const again = await agent.enqueue({ message: { id: 'probe-msg-1', target: 'client-1' } });
    expect(again.duplicate).toBe(true);
    expect(again.queueId).toBe(first.queueId);

    const deliveries = await agent.poll('client-1', { limit: 10, waitMs: 1000, leaseMs: 5000 });
    expect(deliveries.map((d) => d.queueId).sort()).toEqual(
      [first.queueId, ...published.queueIds].sort(),
    );

    const acked = await agent.ack(
      deliveries.map((d) => d.queueId),
      { agentId: 'client-1' },
    );
    expect(acked.acked).toBe(2);
    expect(acked.rejected).toEqual([]);

    await agent.unsubscribe('client-1', 'probe.topic/with slash');
    await agent.deregister('client-1');
    expect((await failure(agent.getAgent('client-1'))).code).toBe('not_found');
  });

  it('serves Prometheus text and raw responses without throwing', async () => {
    const text = await swarm.client.prometheus();
    expect(text).toMatch(/^# (HELP|TYPE) /m);

    const noAuth = await swarm.client.raw('GET', '/swarm/metrics', undefined, { token: null });
    expect(noAuth.status).toBe(401);
    expect(noAuth.headers['www-authenticate']).toMatch(/^Bearer/);

    const malformed = await swarm.client.raw('POST', '/swarm/dispatch', undefined, {
      bodyText: '{"limit":',
    });
    expect(malformed.status).toBe(400);
    expect((malformed.body as { error: { code: string } }).error.code).toBe('invalid_request');
  });

  it('reports a server that is not listening as unreachable, not as an HTTP error', async () => {
    const nowhere = new SwarmClient({ baseUrl: `http://127.0.0.1:${await freePort()}` });

    const err = await failure(nowhere.health());
    expect(err.code).toBe('unreachable');
    expect(err.status).toBe(0);
    expect(err.isNetworkError).toBe(true);

    await nowhere.close();
  });

  it('times out a long poll that outlives timeoutMs plus its waitMs', async () => {
    await swarm.client.registerAgent({ id: 'client-2', type: 'probe' });
    const impatient = new SwarmClient({
      baseUrl: swarm.url,
      token: swarm.tokens.agent,
      timeoutMs: 200,
    });

    // waitMs is added to the timeout, so an empty long poll ends normally...
    expect(await impatient.poll('client-2', { waitMs: 500 })).toEqual([]);
    // ...while a call whose timeout does not allow for the wait fails as a timeout.
    const err = await failure(
      impatient.raw('POST', '/swarm/agents/client-2/poll', { waitMs: 1500 }, { timeoutMs: 200 }),
    );
    expect(err.code).toBe('timeout');
    expect(err.isNetworkError).toBe(true);

    await impatient.close();
    await swarm.client.deregister('client-2');
  });
});
