// A PostgreSQL that goes away and comes back, under a running store ("postgres" test project
// only). It needs a server of its own to stop, so it starts one rather than the shared one.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';

import { freePort, generateTokens, spawnServer, waitReady } from '../../demo/processes.ts';
import { testConfig } from '../../src/config.ts';
import { SwarmEngine } from '../../src/engine/engine.ts';
import { PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { swarmctl } from '../cli/harness.ts';
import { until } from '../e2e/helpers.ts';
import { agent, entry, NOW } from '../support/entries.ts';
import { startPostgres, type TestPostgres } from '../support/postgres-process.ts';

let server: TestPostgres;
let url: string;

beforeAll(async () => {
  server = await startPostgres();
  url = server.url;
}, 60_000);

afterAll(async () => {
  await server?.close();
}, 60_000);

it('answers unavailable while the database is down, and serves again once it is back', async () => {
  const warnings: string[] = [];
  const a = new PostgresStore(url, { warn: (line) => warnings.push(line) });
  const b = new PostgresStore(url, { warn: (line) => warnings.push(line) });
  try {
    await a.migrate();
    const heard: Map<string, number>[] = [];
    b.onReady((routes) => heard.push(routes));
    await b.whenListening();
    await a.enqueue([entry(1)], NOW);
    await until(
      () => heard.length === 1,
      5_000,
      () => 'b heard nothing before the outage',
    );

    await server.stop();
    await expect(a.enqueue([entry(2)], NOW)).rejects.toMatchObject({ code: 'unavailable' });
    await expect(a.stats()).rejects.toMatchObject({ code: 'unavailable' });
    expect(await a.ping()).toBe(false);

    await server.start();
    // The same store, no restart: pooled connections are replaced as they are needed.
    await until(
      () => a.ping(),
      10_000,
      () => 'a never reconnected',
    );
    await a.enqueue([entry(3)], NOW);
    expect((await a.stats()).enqueued).toBe(2);
    expect((await a.gauges(NOW)).queued).toBe(2);

    // b's LISTEN connection is opened again, and it hears the next enqueue.
    await until(
      async () => {
        await a.enqueue([entry(4)], NOW);
        return heard.length > 1;
      },
      15_000,
      () => `b heard nothing after the outage; warnings: ${warnings.join(' | ')}`,
    );
    expect(warnings.some((w) => /notification connection lost/.test(w))).toBe(true);
  } finally {
    await a.close();
    await b.close();
  }
}, 90_000);

it('logs an outage once per background loop, not at every pass, and says when it is over', async () => {
  const lines: { level: number; msg: string }[] = [];
  const log = pino(
    { level: 'info' },
    { write: (line: string) => lines.push(JSON.parse(line) as { level: number; msg: string }) },
  );
  const store = new PostgresStore(url, { warn: () => {} });
  await store.migrate();
  const engine = new SwarmEngine({
    store,
    log,
    config: testConfig({ databaseUrl: url, sweepIntervalMs: 20, dispatchIntervalMs: 20 }),
  });
  await engine.start();
  try {
    await server.stop();
    // Some fifty sweeps and fifty dispatch passes fail meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const outage = lines.filter((l) => l.msg.startsWith('the store is unavailable'));
    expect(outage.length).toBeGreaterThanOrEqual(1);
    expect(outage.length).toBeLessThanOrEqual(2);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);

    await server.start();
    await until(
      () => lines.some((l) => l.msg.startsWith('the store answers again')),
      15_000,
      () => 'no recovery line',
    );
  } finally {
    await engine.stop();
    await store.close();
  }
}, 90_000);

it('keeps serving through an outage: 503s and an unhealthy swarm while it lasts, no restart', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'owokx-outage-'));
  const tokens = generateTokens();
  // A schema of its own, which the server creates: the tests above left messages in public.
  const databaseUrl = `${url}?options=${encodeURIComponent('-c search_path=outage_cli')}`;
  const coordinator = spawnServer({ port: await freePort(), dataDir: dir, databaseUrl, tokens });
  try {
    await waitReady(coordinator.url, 30_000, coordinator);
    const env = { OWOKX_URL: coordinator.url, OWOKX_TOKEN: tokens.admin };

    await server.stop();
    const down = await swarmctl(['health'], { env });
    expect(down.code).toBe(1);
    expect(down.stdout).toContain('store_unreachable');
    expect(down.stdout).toContain('counts unavailable: the server cannot read its store');
    expect(down.stdout).not.toMatch(/queue\s+depth 0/);
    const ready = await fetch(`${coordinator.url}/ready`);
    expect(ready.status).toBe(503);

    await server.start();
    await waitReady(coordinator.url, 30_000, coordinator);
    const up = await swarmctl(['health'], { env });
    expect(up.code).toBe(0);
    expect(coordinator.running).toBe(true);
  } finally {
    await coordinator.stop(5000);
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

it('survives its connections being cut mid-transaction, answering unavailable meanwhile', async () => {
  const store = new PostgresStore(url, { warn: () => {} });
  await store.migrate();
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const codes = new Set<string>();
  try {
    await store.upsertAgent(agent('a1'));
    const deadline = Date.now() + 2_000;
    const killer = (async () => {
      while (Date.now() < deadline) {
        await admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE application_name = 'owokx-swarm' AND pid <> pg_backend_pid()`,
        );
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    let done = 0;
    while (Date.now() < deadline) {
      const calls = [
        store.heartbeat('a1', Date.now()),
        store.enqueue([entry(done)], NOW),
        store.stats(),
      ];
      for (const result of await Promise.allSettled(calls)) {
        if (result.status === 'rejected') codes.add((result.reason as { code: string }).code);
        else done += 1;
      }
    }
    await killer;

    // Still here: this process did not die of an unhandled 'error', and what failed failed
    // as the store being away.
    expect(done).toBeGreaterThan(0);
    expect([...codes].filter((code) => code !== 'unavailable')).toEqual([]);
    expect(await store.ping()).toBe(true);
  } finally {
    await admin.end();
    await store.close();
  }
}, 60_000);
