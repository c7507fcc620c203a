// `npm run demo` bounded: it starts the server and its agents, the swarm's numbers move while
// it runs, and it stops everything by itself when --duration is over.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import {
  freePort,
  generateTokens,
  ManagedProcess,
  portInUse,
  REPO_ROOT,
  tokenEnv,
} from '../../demo/processes.ts';
import { SwarmClient } from '../../src/client/index.ts';
import type { SwarmMetrics } from '../../src/engine/contract.ts';
import { until } from './helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'owokx-demo-'));
let demo: ManagedProcess | undefined;

afterAll(async () => {
  await demo?.stop(5000);
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

it('runs bounded, with health and metrics that change, and stops its processes', async () => {
  const port = await freePort();
  const tokens = generateTokens();

  demo = new ManagedProcess(
    'demo',
    spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'demo/run.ts',
        '--port',
        String(port),
        '--duration',
        '8',
        '--data-dir',
        dir,
        '--interval',
        '1',
      ],
      {
        cwd: REPO_ROOT,
        // CI=true turns picocolors on even without a terminal; the checks below read plain text.
        env: { ...process.env, ...tokenEnv(tokens), NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    ),
  );

  const client = new SwarmClient({
    baseUrl: `http://127.0.0.1:${port}`,
    token: tokens.readonly,
    timeoutMs: 2000,
  });
  const samples: SwarmMetrics[] = [];

  try {
    await until(
      async () => {
        try {
          samples.push(await client.metrics());
        } catch {
          // Not up yet.
        }
        const first = samples[0];
        const last = samples[samples.length - 1];
        return !!first && !!last && last.stats.enqueued > first.stats.enqueued + 5;
      },
      90_000,
      () => `metrics never moved:\n${demo?.recentOutput()}`,
    );

    const health = await client.swarmHealth();
    expect(['healthy', 'degraded', 'unhealthy']).toContain(health.status);
    expect(health.totalAgents).toBeGreaterThanOrEqual(6);
  } finally {
    await client.close();
  }

  const { code } = await demo.exited;
  expect(code, demo.recentOutput()).toBe(0);

  const output = demo.recentOutput(200);
  expect(output).toContain('/swarm/recovery/requeue-dlq');
  expect(output).toContain('/swarm/recovery/prune-stale');
  expect(output).toContain(tokens.trade);
  expect(output).toMatch(/\]\s+(healthy|degraded|unhealthy)/);

  expect(await portInUse(port)).toBe(false);
}, 150_000);
