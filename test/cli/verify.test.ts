// `swarmctl verify`, Drill 3's post-deploy validation: passes against a healthy server, fails
// naming the check when auth is misconfigured, and exits 3 when the server is down.

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VerifyResult } from '../../src/cli/verify.ts';
import {
  freePort,
  parseJson,
  startServer,
  swarmctl,
  type TestServer,
  TOKEN_ENV,
  TOKENS,
} from './harness.ts';
import { enqueue, registerPullAgent, rejectAll } from './swarm.ts';

let server: TestServer;
const reports = mkdtempSync(path.join(tmpdir(), 'swarmctl-verify-'));

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  await server?.stop();
});

const readEnv = () => ({ OWOKX_API_TOKEN_READONLY: TOKENS.read });

describe('verify', () => {
  it('passes every check against a healthy server and writes the report', async () => {
    const report = path.join(reports, 'healthy.json');

    const r = await swarmctl(['verify', '--url', server.url, '--report', report], {
      env: readEnv(),
    });

    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/CHECK\s+RESULT\s+TIME\s+DETAIL/);
    expect(r.stdout).toContain('PASS: all 7 checks passed');

    const result = JSON.parse(readFileSync(report, 'utf8')) as VerifyResult;
    expect(result.passed).toBe(true);
    expect(result.unreachable).toBe(false);
    expect(result.checks.map((c) => [c.name, c.status])).toEqual([
      ['health', 'PASS'],
      ['ready', 'PASS'],
      ['swarm-health', 'PASS'],
      ['metrics-shape', 'PASS'],
      ['auth-no-token', 'PASS'],
      ['auth-read-forbidden', 'PASS'],
      ['latency', 'PASS'],
    ]);
    for (const c of result.checks.filter((c) => c.name !== 'latency')) {
      expect(typeof c.ms).toBe('number');
    }
  });

  it('fails the auth check, exiting 1, when the "read" token can actually recover', async () => {
    const r = await swarmctl(['verify', '--url', server.url, '--json'], {
      env: { OWOKX_API_TOKEN_READONLY: TOKENS.trade },
    });
    const result = parseJson<VerifyResult>(r);

    expect(r.code).toBe(1);
    expect(result.passed).toBe(false);
    expect(result.failed).toEqual(['auth-read-forbidden']);
    expect(result.checks.find((c) => c.name === 'auth-read-forbidden')?.detail).toContain(
      'the read token was allowed to run requeue-dlq',
    );

    // It was a dry run: the misconfigured token changed nothing.
    const audit = await server.read.audit({ limit: 5 });
    for (const record of audit.items) expect(record.parameters.dryRun).toBe(true);
  });

  it('names the failing check in its table', async () => {
    const r = await swarmctl(['verify', '--url', server.url], {
      env: { OWOKX_API_TOKEN_READONLY: TOKENS.admin },
    });

    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/auth-read-forbidden\s+FAIL/);
    expect(r.stdout).toContain('FAIL: 1 of 7 checks failed: auth-read-forbidden');
  });

  it('fails the read checks when the token is refused', async () => {
    const r = await swarmctl(['verify', '--url', server.url, '--json'], {
      env: { OWOKX_API_TOKEN_READONLY: 'not-a-token' },
    });
    const result = parseJson<VerifyResult>(r);

    expect(r.code).toBe(1);
    expect(result.failed).toEqual(
      expect.arrayContaining(['swarm-health', 'metrics-shape', 'auth-read-forbidden']),
    );
  });

  it('skips the forbidden-scope check, saying why, when only a trade token is set', async () => {
    const r = await swarmctl(['verify', '--url', server.url, '--json'], {
      env: { OWOKX_API_TOKEN_TRADE: TOKENS.trade },
    });
    const result = parseJson<VerifyResult>(r);

    expect(r.code).toBe(0);
    expect(result.checks.find((c) => c.name === 'auth-read-forbidden')).toMatchObject({
      status: 'SKIP',
    });
  });

  it('fails the latency check when answers are slower than --max-latency-ms', async () => {
    const r = await swarmctl(['verify', '--url', server.url, '--max-latency-ms', '1', '--json'], {
      env: readEnv(),
    });
    const result = parseJson<VerifyResult>(r);

    // Loopback answers in well under a second but hardly ever under a millisecond each.
    const slow = result.checks.filter((c) => c.ms !== null && c.ms > 1);
    expect(result.failed.includes('latency')).toBe(slow.length > 0);
    expect(r.code).toBe(slow.length > 0 ? 1 : 0);
  });

  it('passes with a WARN when the swarm is degraded', async () => {
    await registerPullAgent(server.agent, 'verify-1', 'worker');
    await enqueue(server.agent, 'verify-1', 1);
    await rejectAll(server.agent, 'verify-1', 1);

    const r = await swarmctl(['verify', '--url', server.url], { env: readEnv() });

    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/swarm-health\s+PASS WARN/);
    expect(r.stdout).toContain('WARN swarm-health: degraded: dead_letters_present');
  });

  it('exits 3 and fails the health check when the server is down', async () => {
    const port = await freePort();
    const report = path.join(reports, 'down.json');

    const r = await swarmctl(['verify', '--url', `http://127.0.0.1:${port}`, '--report', report], {
      env: { ...TOKEN_ENV },
    });

    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(
      /health\s+FAIL\s+\S+\s+cannot reach http:\/\/127\.0\.0\.1:\d+: connection refused/,
    );
    expect(r.stdout).toContain('is unreachable');

    const result = JSON.parse(readFileSync(report, 'utf8')) as VerifyResult;
    expect(result).toMatchObject({ passed: false, unreachable: true, failed: ['health'] });
  });
});
