// `swarmctl bench` is the release benchmark of bench/swarm.ts: the same flags, the same report,
// with swarmctl's global --json and --url handed on as the benchmark's --json and --base-url.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEnv, parseJson, startServer, swarmctl, type TestServer } from './harness.ts';

interface BenchJson {
  config: Record<string, unknown>;
  summary: { avgThroughputPerSecond: number; avgBatchLatencyP50: number };
  runs: { delivered: number; deadLettered: number; queuedAfterDispatch: number }[];
}

let server: TestServer;

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  await server?.stop();
});

describe('bench', () => {
  it('runs on its own coordinator and prints the report as JSON with --json', async () => {
    const r = await swarmctl(
      ['--json', 'bench', '--messages', '100', '--agents', '2', '--runs', '1', '--warmup', '0'],
      { timeoutMs: 90_000 },
    );
    const report = parseJson<BenchJson>(r);

    expect(r.code).toBe(0);
    expect(report.summary.avgThroughputPerSecond).toBeGreaterThan(0);
    expect(report.runs).toHaveLength(1);
    expect(report.runs[0]).toMatchObject({
      delivered: 100,
      deadLettered: 0,
      queuedAfterDispatch: 0,
    });
  }, 120_000);

  it('measures the server named by --url with the trade token, and leaves it clean', async () => {
    const r = await swarmctl(
      ['--url', server.url, 'bench', '--messages', '50', '--agents', '1', '--runs', '1', '--json'],
      { env: cliEnv(server), timeoutMs: 90_000 },
    );
    const report = parseJson<BenchJson>(r);

    expect(r.code).toBe(0);
    expect(report.runs[0]?.delivered).toBe(50);

    const agents = await server.read.listAgents();
    expect(agents.total).toBe(0);
  }, 120_000);

  it('passes usage errors through as exit 2', async () => {
    const r = await swarmctl(['bench', '--messages', 'lots']);

    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--messages');
  });

  it('takes only a postgres:// URL for --database-url, and not with --base-url', async () => {
    const bad = await swarmctl(['bench', '--database-url', 'sqlite:/tmp/x.db']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--database-url must be a postgres:// URL');

    const both = await swarmctl(
      ['bench', '--base-url', 'http://127.0.0.1:1', '--database-url', 'postgres://h/db'],
      { env: { OWOKX_API_TOKEN_TRADE: 'x' } },
    );
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('apply to our own server, not --base-url');
  });
});
