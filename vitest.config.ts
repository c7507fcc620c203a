import { defineConfig } from 'vitest/config';

// Two projects. "sqlite" runs every test on the embedded default. "postgres" runs the tests
// that are about what a store does (the engine, the HTTP layer, the store conformance
// suite, the crash and delivery end-to-end runs) again on a real PostgreSQL, which its
// global setup starts; test/support/stores.ts picks the store from OWOKX_TEST_STORE.
const POSTGRES_TESTS = [
  'test/engine/**/*.test.ts',
  'test/http/**/*.test.ts',
  'test/store/conformance.test.ts',
  'test/store/postgres.test.ts',
  'test/store/postgres-outage.test.ts',
  'test/e2e/crash-recovery.test.ts',
  'test/e2e/delivery.test.ts',
  'test/e2e/coordinators.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'sqlite',
          include: ['test/**/*.test.ts'],
          // Several coordinators on one database is what PostgreSQL is for.
          exclude: [
            'test/e2e/coordinators.test.ts',
            'test/store/postgres.test.ts',
            'test/store/postgres-outage.test.ts',
          ],
        },
      },
      {
        extends: true,
        test: {
          name: 'postgres',
          include: POSTGRES_TESTS,
          env: { OWOKX_TEST_STORE: 'postgres' },
          globalSetup: ['test/support/postgres-global.ts'],
        },
      },
    ],
  },
});
