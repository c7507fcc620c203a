// Global setup of the "postgres" test project: one real PostgreSQL server, started once for
// the run (postgres-process.ts), whose URL every test reads with inject('postgresUrl'). Each
// test takes a schema of its own (stores.ts), which costs a few milliseconds where a
// database per test would cost a CREATE DATABASE.

import type { TestProject } from 'vitest/node';

import { startPostgres } from './postgres-process.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres();
  project.provide('postgresUrl', server.url);
  return () => server.close();
}
