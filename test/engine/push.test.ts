import http from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { Delivery } from '../../src/core/types.ts';
import { expectConservation, openSwarm, type TestSwarm, TRADE } from '../support/engine.ts';

/** A real push endpoint on loopback that records what it receives and answers `status`. */
async function endpoint(status: () => number, delayMs = 0) {
  const received: Delivery[][] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      received.push((JSON.parse(body) as { deliveries: Delivery[] }).deliveries);
      setTimeout(() => {
        res.statusCode = status();
        res.end();
      }, delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/deliveries`;
  return {
    url,
    received,
    count: () => received.flat().length,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('push delivery', () => {
  let swarm: TestSwarm;
  const closers: (() => Promise<void>)[] = [];

  beforeEach(async () => {
    swarm = await openSwarm({ pushTimeoutMs: 300 });
  });

  afterEach(async () => {
    await expectConservation(swarm.engine);
    await swarm.close();
    for (const close of closers.splice(0)) await close();
  });

  it('posts deliveries to the endpoint and a 2xx acknowledges them', async () => {
    const { engine } = swarm;
    const trader = await endpoint(() => 200);
    closers.push(trader.close);
    await engine.registerAgent({ id: 'trader-1', type: 'trader', endpoint: trader.url });
    await engine.enqueue([{ message: { target: 'type:trader', payload: 'buy' } }]);

    const result = await engine.dispatch(200, TRADE);
    expect(result).toMatchObject({ delivered: 1, failed: 0, deadLettered: 0, pending: 0 });
    expect(trader.received[0]?.[0]).toMatchObject({ attempt: 1, message: { payload: 'buy' } });
    expect((await engine.metrics()).stats.delivered).toBe(1);
    expect((await engine.metrics()).dispatch.lastDelivered).toBe(1);
  });

  it('balances a role across live agents by fewest in flight, round robin on ties', async () => {
    const { engine } = swarm;
    const a = await endpoint(() => 200);
    const b = await endpoint(() => 200);
    closers.push(a.close, b.close);
    await engine.registerAgent({
      id: 'analyst-a',
      type: 'analyst',
      endpoint: a.url,
      maxInflight: 5,
    });
    await engine.registerAgent({
      id: 'analyst-b',
      type: 'analyst',
      endpoint: b.url,
      maxInflight: 5,
    });

    await engine.enqueue(
      Array.from({ length: 10 }, (_, i) => ({ message: { target: 'type:analyst', payload: i } })),
    );
    const result = await engine.dispatch(200, TRADE);

    expect(result.delivered).toBe(10);
    expect(a.count()).toBe(5);
    expect(b.count()).toBe(5);
  });

  it('never pushes to a stale or offline agent', async () => {
    const { engine, clock } = swarm;
    const stale = await endpoint(() => 200);
    const offline = await endpoint(() => 200);
    closers.push(stale.close, offline.close);
    await engine.registerAgent({ id: 'stale-1', type: 'analyst', endpoint: stale.url });
    clock.advance(400_000);
    await engine.registerAgent({
      id: 'off-1',
      type: 'analyst',
      endpoint: offline.url,
      status: 'offline',
    });
    await engine.enqueue([{ message: { target: 'type:analyst' } }]);

    const result = await engine.dispatch(200, TRADE);
    expect(result).toMatchObject({ delivered: 0, pending: 1 });
    expect(stale.count() + offline.count()).toBe(0);

    const routing = await engine.routing(undefined, 3);
    expect('anomalies' in routing && routing.anomalies.map((a) => a.kind)).toEqual([
      'no_live_agents',
    ]);
    await engine.pruneStale({ staleMs: 300_000, dryRun: false }, TRADE);
  });

  it('fails the whole batch on a non-2xx answer or a timeout, then dead-letters after maxAttempts', async () => {
    const { engine, clock } = swarm;
    const broken = await endpoint(() => 503);
    const slow = await endpoint(() => 200, 1000);
    closers.push(broken.close, slow.close);
    await engine.registerAgent({ id: 'risk-1', type: 'risk', endpoint: broken.url });
    await engine.registerAgent({ id: 'slow-1', type: 'slow', endpoint: slow.url });
    await engine.enqueue([
      { message: { target: 'risk-1' }, maxAttempts: 2 },
      { message: { target: 'risk-1' }, maxAttempts: 2 },
      { message: { target: 'slow-1' }, maxAttempts: 1 },
    ]);

    const first = await engine.dispatch(200, TRADE);
    expect(first).toMatchObject({ delivered: 0, failed: 3, deadLettered: 1 });

    clock.advance(30_000);
    const second = await engine.dispatch(200, TRADE);
    expect(second).toMatchObject({ delivered: 0, failed: 2, deadLettered: 2 });

    const dead = await engine.listDeadLetters({ limit: 10 });
    expect(dead.items.map((e) => e.reason)).toEqual([
      'max_attempts',
      'max_attempts',
      'max_attempts',
    ]);
    expect(dead.items.find((e) => e.message.target === 'risk-1')?.lastError).toMatch(/HTTP 503/);
    expect(dead.items.find((e) => e.message.target === 'slow-1')?.lastError).toMatch(/push failed/);
  });

  it('keeps at most maxInflight unacknowledged pushes per agent', async () => {
    const { engine } = swarm;
    const trader = await endpoint(() => 200);
    closers.push(trader.close);
    await engine.registerAgent({
      id: 'trader-1',
      type: 'trader',
      endpoint: trader.url,
      maxInflight: 3,
    });
    await engine.enqueue(Array.from({ length: 5 }, () => ({ message: { target: 'trader-1' } })));

    const result = await engine.dispatch(200, TRADE);
    expect(trader.received.every((batch) => batch.length <= 3)).toBe(true);
    expect(result.delivered).toBe(5);
  });
});
