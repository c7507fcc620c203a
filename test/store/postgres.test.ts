// What only the PostgreSQL store does, so only the "postgres" test project runs it: news of
// ready entries between coordinators that share one database.

import pg from 'pg';
import { afterEach, expect, inject, it } from 'vitest';

import { testConfig } from '../../src/config.ts';
import { describeDatabase, openStore } from '../../src/server.ts';

import { PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import type { Store } from '../../src/store/store.ts';
import { until } from '../e2e/helpers.ts';
import { tempDir } from '../support/engine.ts';
import { agent, entry, NOW } from '../support/entries.ts';
import { openTestStore } from '../support/stores.ts';

const open: Store[] = [];

afterEach(async () => {
  for (const store of open.splice(0)) await store.close();
});

/** LISTEN runs on a connection of its own: wait until it is in place. */
const listening = (store: Store) => (store as PostgresStore).whenListening();

async function two(): Promise<[Store, Store]> {
  const dir = tempDir();
  const a = (await openTestStore(dir)).store;
  const b = (await openTestStore(dir)).store;
  open.push(a, b);
  return [a, b];
}

it('tells the other coordinators, not itself, of entries an enqueue or a requeue made ready', async () => {
  const [a, b] = await two();
  const heardByA: Map<string, number>[] = [];
  const heardByB: Map<string, number>[] = [];
  a.onReady?.((routes) => heardByA.push(routes));
  b.onReady?.((routes) => heardByB.push(routes));
  await Promise.all([listening(a), listening(b)]);

  await a.enqueue([entry(1), entry(2), { ...entry(3), availableAt: NOW + 60_000 }], NOW);
  await until(
    () => heardByB.length > 0,
    5_000,
    () => 'b heard nothing',
  );
  expect(heardByB[0]).toEqual(new Map([['type:worker', 2]]));

  // A requeue through b is news for a.
  const [leased] = await b.claim(
    { agentId: 'w1', type: 'worker', capabilities: [] },
    { limit: 1, leaseMs: 30_000, now: NOW },
  );
  await b.fail([leased?.queueId as string], { error: 'x', retry: false, now: NOW }, () => 0);
  await b.requeue({ filter: {}, limit: 10, dryRun: false, now: NOW });
  await until(
    () => heardByA.length > 0,
    5_000,
    () => 'a heard nothing',
  );
  expect(heardByA[0]).toEqual(new Map([['type:worker', 1]]));

  // Neither heard its own news.
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(heardByA).toHaveLength(1);
  expect(heardByB).toHaveLength(1);
});

it('keeps schemas apart: a coordinator on another schema hears nothing', async () => {
  const [a] = await two();
  const other = (await openTestStore(tempDir())).store;
  open.push(other);
  const heard: Map<string, number>[] = [];
  other.onReady?.((routes) => heard.push(routes));
  await listening(other);

  await a.enqueue([entry(1)], NOW);
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(heard).toEqual([]);
});

it('creates the schema its URL names when the database has none of that name', async () => {
  const schema = `fresh_${Date.now()}`;
  const url = `${inject('postgresUrl')}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  const store = new PostgresStore(url);
  open.push(store);
  await store.migrate();
  await store.enqueue([entry(1)], NOW);
  expect((await store.stats()).enqueued).toBe(1);
  expect(describeDatabase(url)).toMatch(new RegExp(`/owokx \\(schema ${schema}\\)$`));
});

it('says why it cannot open a database: the server’s reason, never the password', async () => {
  const url = new URL(inject('postgresUrl'));
  url.password = 'not-the-password';
  const wrong = openStore(testConfig({ databaseUrl: url.toString() }));
  await expect(wrong).rejects.toThrow(
    /cannot open postgres:\/\/postgres@127\.0\.0\.1:\d+\/owokx: password authentication failed/,
  );
  await expect(wrong).rejects.not.toThrow(/not-the-password/);

  const missing = new URL(inject('postgresUrl'));
  missing.pathname = '/no_such_db';
  await expect(openStore(testConfig({ databaseUrl: missing.toString() }))).rejects.toThrow(
    /database "no_such_db" does not exist/,
  );
});

it('pages agents in byte order on a database whose default collation is not C', async () => {
  const base = new URL(inject('postgresUrl'));
  const name = `icu_${Date.now()}`;
  const admin = new pg.Client({ connectionString: base.toString() });
  await admin.connect();
  await admin.query(
    `CREATE DATABASE ${name} LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C' TEMPLATE template0`,
  );
  try {
    base.pathname = `/${name}`;
    const store = new PostgresStore(base.toString());
    try {
      await store.migrate();
      const ids = ['a1', 'B1', 'c1', 'D1', 'e1', 'F1', 'a-2', 'a.3', 'z8', 'Z9', 'g1', 'H1', 'a_4'];
      for (const id of ids) await store.upsertAgent(agent(id));

      const seen: string[] = [];
      let afterId: string | undefined;
      for (;;) {
        const page = await store.listAgents({ limit: 2, staleBefore: 0, afterId });
        seen.push(...page.items.map((a) => a.id));
        if (page.items.length < 2) break;
        afterId = page.items[page.items.length - 1]?.id;
      }
      expect(seen).toEqual([...ids].sort());
    } finally {
      await store.close();
    }
  } finally {
    await admin.query(`DROP DATABASE ${name}`);
    await admin.end();
  }
});

it('holds the queue-depth limit exactly across coordinators enqueueing at once', async () => {
  const [a, b] = await two();
  const calls = await Promise.allSettled(
    Array.from({ length: 40 }, (_, i) =>
      (i % 2 === 0 ? a : b).enqueue([entry(i), entry(100 + i)], NOW, 21),
    ),
  );
  const accepted = calls.filter((c) => c.status === 'fulfilled').length;
  const refused = calls.filter(
    (c) => c.status === 'rejected' && (c.reason as { code: string }).code === 'rate_limited',
  ).length;

  expect(accepted + refused).toBe(40);
  // Two entries a call: ten calls fit under 21, the eleventh would not.
  expect(accepted).toBeLessThanOrEqual(10);
  expect(accepted).toBeGreaterThan(0);
  expect((await a.gauges(NOW)).queued).toBe(accepted * 2);
});
