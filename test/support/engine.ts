// A real engine on a real store (a SQLite file in a fresh temp directory, or a PostgreSQL
// schema of its own: see stores.ts), with a manual clock and the background loops off, so a
// test drives time and passes itself.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import pino from 'pino';
import { expect } from 'vitest';

import { type Config, testConfig } from '../../src/config.ts';
import { ManualClock } from '../../src/engine/clock.ts';
import type { Actor } from '../../src/engine/contract.ts';
import { SwarmEngine } from '../../src/engine/engine.ts';
import type { Store } from '../../src/store/store.ts';
import { openTestStore } from './stores.ts';

export const TRADE: Actor = { scope: 'trade', tokenName: 'trade' };
export const ADMIN: Actor = { scope: 'admin', tokenName: 'admin' };

export interface TestSwarm {
  engine: SwarmEngine;
  store: Store;
  clock: ManualClock;
  dir: string;
  file: string;
  close(): Promise<void>;
}

export function tempDir(prefix = 'owokx-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A swarm on `dir`'s store; `startAt` is when its clock starts (a restart comes later). */
export async function openSwarm(
  overrides: Partial<Config> = {},
  dir = tempDir(),
  startAt = Date.UTC(2026, 11, 3, 12, 0, 0),
): Promise<TestSwarm> {
  const file = path.join(dir, 'swarm.db');
  const { store, databaseUrl } = await openTestStore(dir);

  const clock = new ManualClock(startAt);
  const config = testConfig({ dataDir: dir, databaseUrl, ...overrides });
  const engine = new SwarmEngine({
    store,
    config,
    clock,
    log: pino({ level: 'silent' }),
    loops: false,
  });
  await engine.start();

  return {
    engine,
    store,
    clock,
    dir,
    file,
    async close() {
      await engine.stop();
      await store.close();
    },
  };
}

/** stats.enqueued = stats.delivered + queued + inflight + deadLettered + stats.purged */
export async function expectConservation(engine: SwarmEngine): Promise<void> {
  const { stats, queue } = await engine.metrics();
  expect(stats.enqueued).toBe(
    stats.delivered + queue.queued + queue.inflight + queue.deadLettered + stats.purged,
  );
  for (const value of Object.values(queue)) expect(value).toBeGreaterThanOrEqual(0);
}
