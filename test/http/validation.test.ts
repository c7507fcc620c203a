import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Call,
  call,
  type Harness,
  makeDeadLetter,
  snapshot,
  startHarness,
  type TokenKey,
} from './harness.ts';

let h: Harness;

beforeAll(async () => {
  h = await startHarness();

  // State every rejected request below could have changed, had it run: a dead letter to
  // requeue or purge, a stale agent to prune, a live one to poll for.
  await makeDeadLetter(h.app, 'scout-1');
  await call(h.app, {
    method: 'POST',
    url: '/swarm/agents',
    token: 'agent',
    body: { id: 'old-1', type: 'trader' },
  });
  h.clock.advance(20 * 60_000);
  await call(h.app, { method: 'POST', url: '/swarm/agents/scout-1/heartbeat', token: 'agent' });
});

afterAll(() => h.close());

interface Bad {
  method: Call['method'];
  url: string;
  token: TokenKey;
  body?: unknown;
  field: string;
  message: string;
}

const post = (
  url: string,
  token: TokenKey,
  body: unknown,
  field: string,
  message: string,
): Bad => ({
  method: 'POST',
  url,
  token,
  body,
  field,
  message,
});

const get = (url: string, field: string, message: string): Bad => ({
  method: 'GET',
  url,
  token: 'read',
  field,
  message,
});

const LIMIT_1000 = 'limit must be an integer from 1 to 1000';

const BAD: Bad[] = [
  // Operator bodies: mistyped, out of range, or misspelt, never coerced or clamped.
  post('/swarm/dispatch', 'trade', { limit: 'abc' }, 'limit', LIMIT_1000),
  post('/swarm/dispatch', 'trade', { limit: '200' }, 'limit', LIMIT_1000),
  post('/swarm/dispatch', 'trade', { limit: -5 }, 'limit', LIMIT_1000),
  post('/swarm/dispatch', 'trade', { limit: 0 }, 'limit', LIMIT_1000),
  post('/swarm/dispatch', 'trade', { limit: 100000 }, 'limit', LIMIT_1000),
  post('/swarm/dispatch', 'trade', { limit: 2.5 }, 'limit', LIMIT_1000),
  post('/swarm/dispatch', 'trade', { limit: null }, 'limit', LIMIT_1000),
  post('/swarm/dispatch', 'trade', { limt: 200 }, 'limt', 'limt is not a known field'),
  post('/swarm/recovery/requeue-dlq', 'trade', { limit: 5000 }, 'limit', LIMIT_1000),
  post('/swarm/recovery/requeue-dlq', 'trade', { limit: '50' }, 'limit', LIMIT_1000),
  post(
    '/swarm/recovery/requeue-dlq',
    'trade',
    { reason: 'bogus' },
    'reason',
    'reason must be one of max_attempts, expired, rejected, target_pruned, no_route',
  ),
  post(
    '/swarm/recovery/requeue-dlq',
    'trade',
    { dryRun: 'true' },
    'dryRun',
    'dryRun must be true or false',
  ),
  post(
    '/swarm/recovery/requeue-dlq',
    'trade',
    { ids: 'q1' },
    'ids',
    'ids must be an array of at most 1000 items',
  ),
  post(
    '/swarm/recovery/requeue-dlq',
    'trade',
    { ids: Array.from({ length: 1001 }, (_, i) => `${i}`) },
    'ids',
    'ids must be an array of at most 1000 items',
  ),
  post(
    '/swarm/recovery/requeue-dlq',
    'trade',
    { ids: [''] },
    'ids[0]',
    'ids[0] must be a string of 1 to 256 characters',
  ),
  post(
    '/swarm/recovery/requeue-dlq',
    'trade',
    { dry_run: true },
    'dry_run',
    'dry_run is not a known field',
  ),
  post(
    '/swarm/recovery/prune-stale',
    'trade',
    { staleMs: 1 },
    'staleMs',
    'staleMs must be an integer of at least 60000',
  ),
  post(
    '/swarm/recovery/prune-stale',
    'trade',
    { staleMs: '600000' },
    'staleMs',
    'staleMs must be an integer of at least 60000',
  ),
  post(
    '/swarm/recovery/prune-stale',
    'trade',
    { staleMS: 600000 },
    'staleMS',
    'staleMS is not a known field',
  ),
  post('/swarm/recovery/purge-dlq', 'admin', {}, 'body', 'purge-dlq needs at least one filter'),
  post(
    '/swarm/recovery/purge-dlq',
    'admin',
    { dryRun: true },
    'body',
    'purge-dlq needs at least one filter',
  ),
  post(
    '/swarm/recovery/purge-dlq',
    'admin',
    { olderThanMs: -1 },
    'olderThanMs',
    'olderThanMs must be an integer of at least 0',
  ),
  post(
    '/swarm/recovery/purge-dlq',
    'admin',
    { ids: [] },
    'ids',
    'ids must be an array of 1 to 1000 items',
  ),
  post(
    '/swarm/recovery/purge-dlq',
    'admin',
    { topic: '' },
    'topic',
    'topic must be a string of 1 to 256 characters',
  ),
  post('/swarm/recovery/purge-dlq', 'admin', { reason: 'old' }, 'reason', 'reason must be one of'),
  post(
    '/swarm/recovery/purge-dlq',
    'admin',
    { everything: true },
    'everything',
    'everything is not a known field',
  ),

  // The data plane.
  post('/swarm/agents/scout-1/poll', 'agent', { limit: 0 }, 'limit', LIMIT_1000),
  post(
    '/swarm/agents/scout-1/poll',
    'agent',
    { waitMs: 30001 },
    'waitMs',
    'waitMs must be an integer from 0 to 30000',
  ),
  post(
    '/swarm/agents/scout-1/poll',
    'agent',
    { leaseMs: 999 },
    'leaseMs',
    'leaseMs must be an integer from 1000 to 600000',
  ),
  post(
    '/swarm/agents/bad%20id/poll',
    'agent',
    {},
    'id',
    'id must be 1 to 128 characters of A-Za-z0-9._:-',
  ),
  post('/swarm/ack', 'agent', {}, 'queueIds', 'queueIds is required'),
  post(
    '/swarm/ack',
    'agent',
    { queueIds: [] },
    'queueIds',
    'queueIds must be an array of 1 to 1000 items',
  ),
  post(
    '/swarm/ack',
    'agent',
    { queueIds: '1' },
    'queueIds',
    'queueIds must be an array of 1 to 1000 items',
  ),
  post(
    '/swarm/nack',
    'agent',
    { queueIds: ['1'], retry: 'no' },
    'retry',
    'retry must be true or false',
  ),
  post(
    '/swarm/nack',
    'agent',
    { queueIds: ['1'], delayMs: -1 },
    'delayMs',
    'delayMs must be an integer from 0 to 604800000',
  ),
  post('/swarm/messages', 'agent', {}, 'message', 'message is required'),
  post('/swarm/messages', 'agent', { message: {} }, 'message.target', 'message.target is required'),
  post(
    '/swarm/messages',
    'agent',
    { message: { target: '' } },
    'message.target',
    'message.target must be a string of 1 to 256 characters',
  ),
  post(
    '/swarm/messages',
    'agent',
    { message: { target: 'scout-1', priority: 'urgent' } },
    'message.priority',
    'message.priority must be one of critical, high, normal, low',
  ),
  post(
    '/swarm/messages',
    'agent',
    { message: { target: 'scout-1', type: 'event' } },
    'message.type',
    'message.type must be one of COMMAND, EVENT, QUERY, RESPONSE',
  ),
  post(
    '/swarm/messages',
    'agent',
    { message: { target: 'scout-1', ttlMs: 0 } },
    'message.ttlMs',
    'message.ttlMs must be an integer of at least 1',
  ),
  post(
    '/swarm/messages',
    'agent',
    { message: { target: 'scout-1', timestamp: 'yesterday' } },
    'message.timestamp',
    'message.timestamp must be an ISO 8601 date-time',
  ),
  post(
    '/swarm/messages',
    'agent',
    { message: { target: 'scout-1', headers: { a: 1 } } },
    'message.headers.a',
    'message.headers.a must be a string of at most 4096 characters',
  ),
  post(
    '/swarm/messages',
    'agent',
    { message: { target: 'scout-1', tagret: 'x' } },
    'message.tagret',
    'message.tagret is not a known field',
  ),
  post(
    '/swarm/messages',
    'agent',
    { message: { target: 'scout-1' }, delayMs: 604800001 },
    'delayMs',
    'delayMs must be an integer from 0 to 604800000',
  ),
  post(
    '/swarm/messages',
    'agent',
    { message: { target: 'scout-1' }, maxAttempts: 0 },
    'maxAttempts',
    'maxAttempts must be an integer from 1 to 100',
  ),
  post(
    '/swarm/messages',
    'agent',
    { message: { target: 'scout-1' }, maxAttempts: 101 },
    'maxAttempts',
    'maxAttempts must be an integer from 1 to 100',
  ),
  post(
    '/swarm/messages',
    'agent',
    { message: { target: 'scout-1', payload: 'x'.repeat(300_000) } },
    'message.payload',
    'message.payload must be at most 262144 bytes',
  ),
  post(
    '/swarm/messages',
    'agent',
    { messages: [] },
    'messages',
    'messages must be an array of 1 to 1000 items',
  ),
  post(
    '/swarm/messages',
    'agent',
    { messages: Array.from({ length: 1001 }, () => ({ message: { target: 'scout-1' } })) },
    'messages',
    'messages must be an array of 1 to 1000 items',
  ),
  post(
    '/swarm/messages',
    'agent',
    {
      messages: [
        { message: { target: 'scout-1' } },
        { message: { target: 'scout-1', priority: 'asap' } },
      ],
    },
    'messages[1].message.priority',
    'messages[1].message.priority must be one of',
  ),
  post(
    '/swarm/messages',
    'agent',
    { message: { target: 'scout-1' }, messages: [{ message: { target: 'scout-1' } }] },
    'message',
    'message cannot be combined with messages',
  ),
  post('/swarm/publish', 'agent', { payload: 1 }, 'topic', 'topic is required'),
  post(
    '/swarm/agents',
    'agent',
    { id: 'a b', type: 'scout' },
    'id',
    'id must be 1 to 128 characters of A-Za-z0-9._:-',
  ),
  post(
    '/swarm/agents',
    'agent',
    { type: 'Scout' },
    'type',
    'type must be 1 to 64 characters of a-z0-9_-',
  ),
  post(
    '/swarm/agents',
    'agent',
    { type: 'scout', status: 'sleeping' },
    'status',
    'status must be one of active, busy, error, offline',
  ),
  post(
    '/swarm/agents',
    'agent',
    { type: 'scout', capabilities: Array.from({ length: 65 }, (_, i) => `c${i}`) },
    'capabilities',
    'capabilities must be an array of at most 64 items',
  ),
  post(
    '/swarm/agents',
    'agent',
    { type: 'scout', endpoint: 'ftp://example.com' },
    'endpoint',
    'endpoint must be an http:// or https:// URL',
  ),
  post(
    '/swarm/agents',
    'agent',
    { type: 'scout', maxInflight: 0 },
    'maxInflight',
    'maxInflight must be an integer from 1 to 10000',
  ),
  post(
    '/swarm/agents',
    'agent',
    { type: 'scout', maxInflight: 10001 },
    'maxInflight',
    'maxInflight must be an integer from 1 to 10000',
  ),
  post(
    '/swarm/agents',
    'agent',
    { type: 'scout', metadata: [] },
    'metadata',
    'metadata must be a JSON object',
  ),
  post(
    '/swarm/agents',
    'agent',
    { type: 'scout', metadata: { blob: 'x'.repeat(9000) } },
    'metadata',
    'metadata must be at most 8192 bytes',
  ),
  post(
    '/swarm/agents/scout-1/heartbeat',
    'agent',
    { status: 'asleep' },
    'status',
    'status must be one of active, busy, error, offline',
  ),

  // Queries: numbers and booleans are converted from strings strictly, never guessed.
  get('/swarm/agents?limit=abc', 'limit', LIMIT_1000),
  get('/swarm/agents?limit=0', 'limit', LIMIT_1000),
  get('/swarm/agents?limit=1001', 'limit', LIMIT_1000),
  get('/swarm/agents?limit=2.5', 'limit', LIMIT_1000),
  get('/swarm/agents?limit=1e3', 'limit', LIMIT_1000),
  get('/swarm/agents?limit=5&limit=6', 'limit', LIMIT_1000),
  get('/swarm/agents?stale=yes', 'stale', 'stale must be true or false'),
  get(
    '/swarm/agents?status=sleeping',
    'status',
    'status must be one of active, busy, error, offline',
  ),
  get('/swarm/agents?limt=5', 'limt', 'limt is not a known field'),
  get('/swarm/routing?count=21', 'count', 'count must be an integer from 1 to 20'),
  get('/swarm/routing?count=0', 'count', 'count must be an integer from 1 to 20'),
  get('/swarm/queue/dead-letters?reason=old', 'reason', 'reason must be one of'),
  get('/swarm/queue/dead-letters?limit=-1', 'limit', LIMIT_1000),
  get('/swarm/audit?limit=abc', 'limit', LIMIT_1000),
  get('/swarm/agents/bad%20id', 'id', 'id must be 1 to 128 characters of A-Za-z0-9._:-'),
];

describe('validation', () => {
  it.each(
    BAD.map((bad) => [
      `${bad.method} ${bad.url} ${JSON.stringify(bad.body ?? '').slice(0, 80)}`,
      bad,
    ]),
  )('rejects %s with 400 naming the field, and changes nothing', async (_name, bad) => {
    const before = await snapshot(h.app);
    const res = await call(h.app, {
      method: bad.method,
      url: bad.url,
      token: bad.token,
      body: bad.body,
    });

    expect(res.status, res.text).toBe(400);
    expect(res.body.error.code).toBe('invalid_request');
    expect(res.body.error.message).toContain(bad.message);
    expect(res.body.error.details).toContainEqual(
      expect.objectContaining({ field: bad.field, message: expect.stringContaining(bad.message) }),
    );
    expect(await snapshot(h.app)).toEqual(before);
  });

  it('names every problem of a request in details, and the first in the message', async () => {
    const res = await call(h.app, {
      method: 'POST',
      url: '/swarm/recovery/requeue-dlq',
      token: 'trade',
      body: { limit: 0, reason: 'x', extra: 1 },
    });

    expect(res.status).toBe(400);
    expect(res.body.error.details.map((d: { field: string }) => d.field).sort()).toEqual([
      'extra',
      'limit',
      'reason',
    ]);
    expect(res.body.error.message).toMatch(/\(and 2 more problems\)$/);
  });

  it('rejects a whole batch when one message in it is bad', async () => {
    const before = await snapshot(h.app);
    const res = await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      token: 'agent',
      body: {
        messages: [
          { message: { target: 'scout-1' } },
          { message: { target: 'scout-1', payload: 'y'.repeat(270_000) } },
        ],
      },
    });

    expect(res.status).toBe(400);
    expect(res.body.error.details[0].field).toBe('messages[1].message.payload');
    expect(await snapshot(h.app)).toEqual(before);
  });

  it('answers malformed JSON with 400', async () => {
    for (const raw of ['{"limit":', '{limit: 5}', "{'limit':5}", '{"limit":5}}']) {
      const res = await call(h.app, {
        method: 'POST',
        url: '/swarm/dispatch',
        token: 'trade',
        raw,
      });

      expect(res.status, raw).toBe(400);
      expect(res.body.error).toEqual({
        code: 'invalid_request',
        message: 'request body is not valid JSON',
        details: [{ field: 'body', message: 'not valid JSON' }],
      });
    }
  });

  it('answers a body that is JSON but not an object with 400', async () => {
    for (const raw of ['null', '[]', '5', '"limit"']) {
      const res = await call(h.app, {
        method: 'POST',
        url: '/swarm/dispatch',
        token: 'trade',
        raw,
      });

      expect(res.status, raw).toBe(400);
      expect(res.body.error.message).toBe('body must be a JSON object');
    }
  });

  it('answers a body without Content-Type: application/json with 415', async () => {
    const before = await snapshot(h.app);

    const cases: Record<string, string>[] = [
      { 'content-type': 'text/plain' },
      { 'content-type': 'application/x-www-form-urlencoded' },
      { 'content-type': 'application/xml' },
    ];
    for (const headers of cases) {
      const res = await call(h.app, {
        method: 'POST',
        url: '/swarm/recovery/requeue-dlq',
        token: 'trade',
        raw: '{"limit":50}',
        headers,
      });

      expect(res.status, headers['content-type']).toBe(415);
      expect(res.body.error.code).toBe('unsupported_media_type');
    }

    // A body with no Content-Type at all.
    const bare = await h.app.inject({
      method: 'POST',
      url: '/swarm/recovery/requeue-dlq',
      headers: { authorization: 'Bearer trade-token-0123456789abcdef' },
      payload: '{"limit":50}',
    });
    expect(bare.statusCode).toBe(415);
    expect(JSON.parse(bare.body).error.code).toBe('unsupported_media_type');

    expect(await snapshot(h.app)).toEqual(before);
  });

  it('accepts application/json with a charset parameter', async () => {
    const res = await call(h.app, {
      method: 'POST',
      url: '/swarm/dispatch',
      token: 'trade',
      raw: '{"limit":10}',
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });

    expect(res.status).toBe(200);
  });

  it('answers a body over 1 MiB with 413 and changes nothing', async () => {
    const before = await snapshot(h.app);
    const res = await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      token: 'agent',
      body: { message: { target: 'scout-1', payload: 'z'.repeat(1024 * 1024) } },
    });

    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
    expect(res.body.error.message).toBe('request body must be at most 1048576 bytes');
    expect(await snapshot(h.app)).toEqual(before);
  });

  it('accepts a payload of exactly 256 KiB', async () => {
    // A JSON string of n characters serializes to n + 2 bytes.
    const res = await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      token: 'agent',
      body: { message: { target: 'old-1', payload: 'p'.repeat(256 * 1024 - 2) } },
    });

    expect(res.status, res.text).toBe(200);
  });

  it('takes an empty body on every POST whose fields are all optional, with or without a Content-Type', async () => {
    const optional = [
      { url: '/swarm/dispatch', token: 'trade' },
      { url: '/swarm/recovery/requeue-dlq', token: 'trade' },
      { url: '/swarm/recovery/prune-stale', token: 'trade' },
      { url: '/swarm/agents/scout-1/poll', token: 'agent' },
      { url: '/swarm/agents/scout-1/heartbeat', token: 'agent' },
    ] as const;

    for (const { url, token } of optional) {
      const bare = await call(h.app, { method: 'POST', url, token });
      const typed = await call(h.app, { method: 'POST', url, token, raw: '' });

      expect(bare.status, `${url} without a body: ${bare.text}`).toBe(200);
      expect(typed.status, `${url} with an empty JSON body: ${typed.text}`).toBe(200);
    }
  });

  it('fills the documented defaults into an empty body', async () => {
    const prune = await call(h.app, {
      method: 'POST',
      url: '/swarm/recovery/prune-stale',
      token: 'trade',
    });
    const audit = await call(h.app, { method: 'GET', url: '/swarm/audit?limit=1', token: 'read' });

    expect(prune.status).toBe(200);
    expect(audit.body.items[0]).toMatchObject({
      action: 'prune-stale',
      parameters: { staleMs: 600000, dryRun: false },
    });
  });

  it('answers a URL the router cannot match with 400 in the error shape', async () => {
    for (const url of ['/swarm/agents/%E0%A4%A', `/swarm/agents/${'a'.repeat(1100)}`]) {
      const res = await call(h.app, { method: 'GET', url, token: 'read' });

      expect(res.status, url.slice(0, 30)).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_request', details: [] });
    }
  });

  it('answers unknown routes with 404 in the error shape', async () => {
    for (const url of ['/nope', '/swarm/nope', '/swarm/recovery/requeue']) {
      const res = await call(h.app, { method: 'POST', url, token: 'admin', body: {} });

      expect(res.status, url).toBe(404);
      expect(res.body.error).toMatchObject({ code: 'not_found', details: [] });
    }
  });
});

describe('validation against the configured prune floor', () => {
  it('builds the staleMs minimum from config.pruneMinStaleMs', async () => {
    const strict = await startHarness({ config: { pruneMinStaleMs: 900_000 } });

    try {
      const low = await call(strict.app, {
        method: 'POST',
        url: '/swarm/recovery/prune-stale',
        token: 'trade',
        body: { staleMs: 600000 },
      });
      const empty = await call(strict.app, {
        method: 'POST',
        url: '/swarm/recovery/prune-stale',
        token: 'trade',
      });

      expect(low.status).toBe(400);
      expect(low.body.error.message).toBe('staleMs must be an integer of at least 900000');
      // The default never falls under the floor.
      expect(empty.status).toBe(200);
    } finally {
      await strict.close();
    }
  });
});
