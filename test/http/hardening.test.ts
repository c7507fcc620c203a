// Defects a break-it session found, kept fixed.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { ConfigError, loadConfig } from '../../src/config.ts';
import { call, type Harness, startHarness } from './harness.ts';

describe('hardening', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await startHarness({ config: { defaultLeaseMs: 5000 } });
    await call(h.app, {
      method: 'POST',
      url: '/swarm/agents',
      body: { id: 'a1', type: 'analyst' },
    });
  });

  afterEach(async () => {
    await h.close();
  });

  it('refuses text that is not well-formed Unicode, which a store would merge with U+FFFD', async () => {
    // The escapes travel as written: JSON.stringify would keep a lone surrogate escaped too.
    for (const raw of [
      '{"message":{"id":"x\\ud800","target":"a1"}}',
      '{"message":{"target":"a1","topic":"t\\udfff"}}',
      '{"message":{"target":"a1","payload":{"k\\udbff":1}}}',
    ]) {
      const res = await call(h.app, { method: 'POST', url: '/swarm/messages', raw });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: { code: 'invalid_request' } });
    }
    const bad = await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      raw: '{"message":{"id":"x\\ud800","target":"a1"}}',
    });
    expect(bad.body).toMatchObject({ error: { details: [{ field: 'body.message.id' }] } });
    expect((await call(h.app, { method: 'GET', url: '/swarm/queue' })).body).toMatchObject({
      stats: { enqueued: 0 },
    });

    // A surrogate pair is one character, and welcome.
    const ok = await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      raw: '{"message":{"id":"smile-\\ud83d\\ude00","target":"a1","payload":"\\ud83d\\ude00"}}',
    });
    expect(ok.status).toBe(200);
  });

  it('refuses JSON nested deeper than 64 levels with a 400, failing no other request', async () => {
    const deep = `{"message":{"target":"a1","payload":${'['.repeat(5000)}1${']'.repeat(5000)}}}`;
    const [bad, good] = await Promise.all([
      call(h.app, { method: 'POST', url: '/swarm/messages', raw: deep }),
      call(h.app, { method: 'POST', url: '/swarm/messages', body: { message: { target: 'a1' } } }),
    ]);

    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/deeper than 64 levels/);
    expect(good.status).toBe(200);
    expect((await h.engine.metrics()).stats.enqueued).toBe(1);
  });

  it('leases for OWOKX_LEASE_MS when a poll names no leaseMs', async () => {
    await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      body: { message: { target: 'a1' } },
    });
    const res = await call(h.app, { method: 'POST', url: '/swarm/agents/a1/poll', body: {} });
    expect(res.body.deliveries[0].leaseExpiresAt - h.clock.now()).toBe(5000);
  });

  it('refuses a forged cursor instead of reading it as the end of the list', async () => {
    const forged = Buffer.from(JSON.stringify({ deadLetteredAt: 'x', queueId: 'y' })).toString(
      'base64url',
    );
    const dead = await call(h.app, {
      method: 'GET',
      url: `/swarm/queue/dead-letters?cursor=${forged}`,
    });
    expect(dead.status).toBe(400);

    // Numbers no store's integer column holds: 400 too, not the database's 500.
    for (const deadLetteredAt of [1e300, 1.5, -1e20, 2 ** 63]) {
      const odd = Buffer.from(JSON.stringify({ deadLetteredAt, queueId: '1' })).toString(
        'base64url',
      );
      const res = await call(h.app, {
        method: 'GET',
        url: `/swarm/queue/dead-letters?cursor=${odd}`,
      });
      expect(res.status).toBe(400);
    }

    const audit = Buffer.from(JSON.stringify({ id: 'abc' })).toString('base64url');
    expect((await call(h.app, { method: 'GET', url: `/swarm/audit?cursor=${audit}` })).status).toBe(
      400,
    );
  });

  it('answers 400, not 500, for a legacy timestamp no date can hold', async () => {
    const res = await call(h.app, {
      method: 'POST',
      url: '/registry/queue/enqueue',
      body: { message: { target: 'a1', timestamp: 8_640_000_000_000_001 } },
    });
    expect(res.status).toBe(400);
  });

  it('gives a broadcast copy to every live agent even when a chosen id looks like a copy key', async () => {
    await call(h.app, {
      method: 'POST',
      url: '/swarm/agents',
      body: { id: 'a2', type: 'analyst' },
    });
    await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      body: { message: { id: 'X@a1', target: 'a1' } },
    });
    const res = await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      body: { message: { id: 'X', target: 'broadcast' } },
    });
    expect(res.body.queueIds).toHaveLength(2);
  });
});

describe('batch results', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await startHarness();
  });

  afterEach(async () => {
    await h.close();
  });

  it('give a broadcast that reached no agent a null queueId, not the next message id', async () => {
    // No agent is registered: the broadcasts make no entry, the role message makes one.
    const res = await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      body: {
        messages: [
          { message: { target: 'broadcast', payload: 1 } },
          { message: { target: 'broadcast', payload: 2 } },
          { message: { id: 'r', target: 'type:analyst', payload: 3 } },
          { message: { id: 'r', target: 'type:analyst', payload: 4 } },
          { message: { target: 'broadcast', payload: 5 } },
        ],
      },
    });
    expect(res.status).toBe(200);

    const results = (res.body as { results: { queueId: string | null; queueIds: string[] }[] })
      .results;
    expect(results.map((r) => r.queueId)).toEqual([
      null,
      null,
      results[2]?.queueId,
      results[2]?.queueId,
      null,
    ]);
    expect(results[2]?.queueId).not.toBeNull();
    expect(results.map((r) => r.queueIds.length)).toEqual([0, 0, 1, 0, 0]);
  });

  it('name the message in the field of an error the engine finds, as schema errors do', async () => {
    const res = await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      body: { messages: [{ message: { target: 'a1' } }, { message: { target: 'type:' } }] },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/^messages\[1\]: /);
    expect(res.body.error.details[0].field).toBe('messages[1].message.target');
  });

  it('name the message of a batch of one too, and not that of a single enqueue', async () => {
    const batch = await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      body: { messages: [{ message: { target: 'type:' } }] },
    });
    expect(batch.status).toBe(400);
    expect(batch.body.error.message).toMatch(/^messages\[0\]: /);
    expect(batch.body.error.details[0].field).toBe('messages[0].message.target');

    const single = await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      body: { message: { target: 'type:' } },
    });
    expect(single.status).toBe(400);
    expect(single.body.error.details[0].field).toBe('message.target');
  });
});

describe('settings that cannot work refuse to start, naming the variable', () => {
  it('bounds heap growth by default, and 0 leaves it to V8', () => {
    expect(loadConfig({}).heapGrowthPercent).toBe(50);
    expect(loadConfig({ OWOKX_HEAP_GROWTH_PERCENT: '0' }).heapGrowthPercent).toBe(0);
  });

  it.each([
    [{ OWOKX_AUTO_PRUNE_AFTER_MS: '1' }, /OWOKX_AUTO_PRUNE_AFTER_MS/],
    [{ OWOKX_HEARTBEAT_INTERVAL_MS: '999999999' }, /OWOKX_HEARTBEAT_INTERVAL_MS/],
    [{ OWOKX_DATABASE_URL: 'sqlite:' }, /OWOKX_DATABASE_URL/],
    [{ OWOKX_PORT: 'abc' }, /OWOKX_PORT/],
    [{ OWOKX_LEASE_MS: '999999999' }, /OWOKX_LEASE_MS/],
    [{ OWOKX_HEAP_GROWTH_PERCENT: '-5' }, /OWOKX_HEAP_GROWTH_PERCENT/],
    [{ OWOKX_HEAP_GROWTH_PERCENT: '1000' }, /OWOKX_HEAP_GROWTH_PERCENT/],
  ])('%o', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
