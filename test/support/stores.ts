// The store a test runs on: a SQLite file in the test's temp directory, or, in the
// "postgres" test project (OWOKX_TEST_STORE=postgres, see vitest.config.ts), a schema of
// its own in the PostgreSQL server that project's global setup started. The same
// directory names the same store, so a test can close it and open it again as a restart.

import { createHash } from 'node:crypto';
import path from 'node:path';

import pg from 'pg';
import { inject } from 'vitest';

import { PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';

export type Backend = 'sqlite' | 'postgres';

export const BACKEND: Backend = process.env.OWOKX_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite';

/** The database URL of the store that `dir` names, its schema created when needed. */
export async function testDatabaseUrl(dir: string): Promise<string> {
  if (BACKEND === 'sqlite') return `sqlite:${path.join(dir, 'swarm.db')}`;

  const schema = `t_${createHash('sha1').update(path.resolve(dir)).digest('hex').slice(0, 20)}`;
  const base = inject('postgresUrl');
  const client = new pg.Client({ connectionString: base });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  } finally {
    await client.end();
  }
  return `${base}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
}

/** Opens and migrates the store of `dir`. */
export async function openTestStore(dir: string): Promise<{ store: Store; databaseUrl: string }> {
  const databaseUrl = await testDatabaseUrl(dir);
  const store: Store =
    BACKEND === 'sqlite'
      ? new SqliteStore(path.join(dir, 'swarm.db'))
      : new PostgresStore(databaseUrl, { poolSize: 4 });
  await store.migrate();
  return { store, databaseUrl };
}
