// What operators see: the Prometheus exposition, request ids, log lines (no payloads, no
// tokens), and 500s that tell the client nothing about our internals.

import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND } from '../support/stores.ts';
import { call, type Harness, makeDeadLetter, startHarness, TOKENS } from './harness.ts';

const lines: Record<string, unknown>[] = [];
const logger = pino(
  { level: 'debug' },
  {
    write(line: string) {
      lines.push(JSON.parse(line));
    },
  },
);

let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    logger,
    wrap: (engine) => {
      const api = Object.create(engine);
      // The store "fails" on this one read, with a message that must not reach the client.
      api.subscriptions = async () => {
        throw new Error('SQLITE_IOERR at /var/lib/owokx/secret.db');
      };
      return api;
    },
  });
});

afterAll(() => h.close());

describe('GET /metrics', () => {
  it('exposes the swarm in Prometheus text format, with process metrics and request durations', async () => {
    await makeDeadLetter(h.app, 'scout-1');
    const res = await call(h.app, { method: 'GET', url: '/metrics', token: 'read' });

    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.text).toContain('# TYPE owokx_messages_total counter');
    expect(res.text).toContain('owokx_messages_total{event="enqueued"} 1');
    expect(res.text).toContain('owokx_messages_total{event="dead_lettered"} 1');
    expect(res.text).toContain('# TYPE owokx_queue_depth gauge');
    expect(res.text).toContain('owokx_queue_depth{state="dead"} 1');
    expect(res.text).toContain('owokx_queue_depth{state="ready"} 0');
    expect(res.text).toContain('owokx_agents{state="active"} 1');
    expect(res.text).toContain('owokx_agents_by_type{type="scout"} 1');
    expect(res.text).toMatch(/^owokx_queue_oldest_ready_age_seconds \d/m);
    expect(res.text).toMatch(/^owokx_delivery_failure_rate [\d.]+$/m);
    expect(res.text).toContain('owokx_swarm_health_status{status="degraded"} 1');
    expect(res.text).toContain('process_cpu_user_seconds_total');
    // The store's files: a database of some pages, and the WAL that the writes went to. A
    // PostgreSQL store has no files of its own to show; its server reports its disk.
    if (BACKEND === 'sqlite') {
      expect(res.text).toMatch(/^owokx_store_bytes\{file="database"\} [1-9]\d*$/m);
      expect(res.text).toMatch(/^owokx_store_bytes\{file="wal"\} [1-9]\d*$/m);
    } else {
      expect(res.text).not.toMatch(/^owokx_store_bytes\{/m);
    }
    expect(res.text).toMatch(
      /owokx_http_request_duration_seconds_count\{route="\/swarm\/agents\/:id\/poll",method="POST",status="200"\} 1/,
    );
  });

  it('keeps a registry per app, so two apps in one process count apart', async () => {
    const other = await startHarness();
    try {
      const res = await call(other.app, { method: 'GET', url: '/metrics', token: 'read' });
      expect(res.text).toContain('owokx_messages_total{event="enqueued"} 0');
    } finally {
      await other.close();
    }
  });
});

describe('request ids', () => {
  it('echoes a sane x-request-id and generates one otherwise', async () => {
    const given = await call(h.app, {
      method: 'GET',
      url: '/health',
      token: null,
      headers: { 'x-request-id': 'lb-7f3a.42' },
    });
    const insane = await call(h.app, {
      method: 'GET',
      url: '/health',
      token: null,
      headers: { 'x-request-id': 'has spaces and {braces}' },
    });
    const missing = await call(h.app, { method: 'GET', url: '/nowhere', token: null });

    expect(given.headers['x-request-id']).toBe('lb-7f3a.42');
    expect(insane.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(missing.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('logs', () => {
  it('log a completed request at debug, a 4xx at info, with the request id and no payload or token', async () => {
    lines.length = 0;
    await call(h.app, {
      method: 'POST',
      url: '/swarm/messages',
      token: 'agent',
      body: { message: { target: 'scout-1', payload: { secret: 'PAYLOAD-MARKER-42' } } },
      headers: { 'x-request-id': 'req-ok' },
    });
    await call(h.app, {
      method: 'POST',
      url: '/swarm/dispatch',
      token: 'agent',
      body: { limit: 1 },
      headers: { 'x-request-id': 'req-denied' },
    });

    const ok = lines.find((l) => l.reqId === 'req-ok' && l.msg === 'request completed');
    const denied = lines.find((l) => l.reqId === 'req-denied' && l.msg === 'request completed');
    expect(ok).toMatchObject({ level: 20, statusCode: 200, method: 'POST' });
    expect(denied).toMatchObject({ level: 30, statusCode: 403 });

    const text = JSON.stringify(lines);
    expect(text).not.toContain('PAYLOAD-MARKER-42');
    for (const token of Object.values(TOKENS)) expect(text).not.toContain(token);
  });

  it('logs a request refused before routing (a bad URL) like any other 4xx', async () => {
    lines.length = 0;
    const res = await call(h.app, {
      method: 'GET',
      url: '/swarm/agents/%zz',
      token: 'read',
      headers: { 'x-request-id': 'req-bad-url' },
    });
    expect(res.status).toBe(400);

    const logged = lines.filter((l) => l.reqId === 'req-bad-url' && l.msg === 'request completed');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 30, statusCode: 400, method: 'GET' });
  });

  it('answers an unexpected failure with a bare 500 and logs the cause with the request id', async () => {
    lines.length = 0;
    const res = await call(h.app, {
      method: 'GET',
      url: '/swarm/subscriptions',
      token: 'read',
      headers: { 'x-request-id': 'req-boom' },
    });

    expect(res.status).toBe(500);
    expect(res.body).toEqual({
      error: { code: 'internal', message: 'internal error', details: [] },
    });
    expect(res.text).not.toContain('SQLITE');

    const logged = lines.find((l) => l.reqId === 'req-boom' && l.level === 50 && l.err);
    expect(JSON.stringify(logged)).toContain('SQLITE_IOERR');
  });
});
