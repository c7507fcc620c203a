// Drill 3's post-deploy validation: is the deployed coordinator up, ready, not unhealthy,
// answering the metrics contract, refusing the wrong tokens, and quick? Every check is
// read-only: the one POST sends a dry run that a correctly scoped read token never gets to run.

import { performance } from 'node:perf_hooks';
import { isSwarmClientError, type RawResponse, type SwarmClient } from '../client/index.ts';
import type { HealthReason } from '../engine/contract.ts';
import { networkReason } from './exit.ts';
import { formatDuration } from './format.ts';

export type CheckStatus = 'PASS' | 'FAIL' | 'SKIP';

export interface VerifyCheck {
  name: string;
  status: CheckStatus;
  /** How long the check's request took; null when it sent none. */
  ms: number | null;
  detail: string;
  /** A passing check that an operator should still read (a degraded swarm). */
  warning?: string;
}

/** The documented --json and --report answer of `swarmctl verify` (docs/operations.md). */
export interface VerifyResult {
  url: string;
  passed: boolean;
  /** True when the server did not answer at all (exit 3 rather than 1). */
  unreachable: boolean;
  maxLatencyMs: number;
  checks: VerifyCheck[];
  failed: string[];
  warnings: string[];
  startedAt: string;
  durationMs: number;
}

export interface VerifyInput {
  url: string;
  /** A client with no token; each check passes the token it means to send. */
  client: SwarmClient;
  /** The token for read checks, and the one that must be refused on recovery endpoints. */
  readToken: string | undefined;
  /** Why the forbidden-scope check cannot run, when the read token is not read-only. */
  readTokenProblem?: string;
  maxLatencyMs: number;
}

/** Answered, or never answered (the server is down, or too slow). */
type Attempt = { res: RawResponse; ms: number } | { error: string; ms: number };

export async function verify(input: VerifyInput): Promise<VerifyResult> {
  const started = Date.now();
  const checks: VerifyCheck[] = [];
  const { client, readToken } = input;

  const call = async (
    method: 'GET' | 'POST',
    path: string,
    token: string | null,
    body?: unknown,
  ): Promise<Attempt> => {
    const t0 = performance.now();
    try {
      const res = await client.raw(method, path, body, { token });
      return { res, ms: performance.now() - t0 };
    } catch (err) {
      const ms = performance.now() - t0;
      if (isSwarmClientError(err) && err.code === 'timeout') {
        return { error: `no answer within ${formatDuration(client.timeoutMs)} (timeout)`, ms };
      }
      const reason = isSwarmClientError(err) ? networkReason(err.cause) : String(err);
      return { error: `cannot reach ${input.url}: ${reason}`, ms };
    }
  };

  // 1. Liveness first: if the process does not answer, nothing else can be judged.
  const live = await call('GET', '/health', null);
  checks.push(judgeLiveness(live));

  if ('error' in live) {
    for (const name of [
      'ready',
      'swarm-health',
      'metrics-shape',
      'auth-no-token',
      'auth-read-forbidden',
    ]) {
      checks.push({ name, status: 'SKIP', ms: null, detail: 'server unreachable' });
    }
    return finish(input, checks, started, true);
  }

  checks.push(judgeReady(await call('GET', '/ready', null)));
  checks.push(judgeSwarmHealth(await call('GET', '/swarm/health', readToken ?? null)));
  checks.push(judgeMetrics(await call('GET', '/swarm/metrics', readToken ?? null)));
  checks.push(judgeNoToken(await call('GET', '/swarm/metrics', null)));

  if (!readToken || input.readTokenProblem) {
    checks.push({
      name: 'auth-read-forbidden',
      status: 'SKIP',
      ms: null,
      detail:
        input.readTokenProblem ??
        'no read token: set OWOKX_API_TOKEN_READONLY (or --token) to check that it cannot recover',
    });
  } else {
    // dryRun and limit 1: even a wrongly scoped token that gets through changes nothing.
    const body = { dryRun: true, limit: 1 };
    checks.push(judgeForbidden(await call('POST', '/swarm/recovery/requeue-dlq', readToken, body)));
  }

  checks.push(judgeLatency(checks, input.maxLatencyMs));
  return finish(input, checks, started, false);
}

function finish(
  input: VerifyInput,
  checks: VerifyCheck[],
  started: number,
  unreachable: boolean,
): VerifyResult {
  const failed = checks.filter((c) => c.status === 'FAIL').map((c) => c.name);
  const warnings = checks.flatMap((c) => (c.warning ? [`${c.name}: ${c.warning}`] : []));

  return {
    url: input.url,
    passed: failed.length === 0,
    unreachable,
    maxLatencyMs: input.maxLatencyMs,
    checks,
    failed,
    warnings,
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
  };
}

const ms = (a: Attempt): number => Math.round(a.ms * 10) / 10;

function pass(name: string, a: Attempt, detail: string, warning?: string): VerifyCheck {
  return warning === undefined
    ? { name, status: 'PASS', ms: ms(a), detail }
    : { name, status: 'PASS', ms: ms(a), detail, warning };
}

function fail(name: string, a: Attempt, detail: string): VerifyCheck {
  return { name, status: 'FAIL', ms: ms(a), detail };
}

/** The server's own error message, when it sent the contract's error shape. */
function serverSaid(res: RawResponse): string {
  const e = (res.body as { error?: { code?: string; message?: string } })?.error;
  return e?.message
    ? `${res.status} ${e.code ?? ''}: ${e.message}`.replace(' :', ':')
    : `${res.status}`;
}

function judgeLiveness(a: Attempt): VerifyCheck {
  if ('error' in a) return fail('health', a, a.error);

  const body = a.res.body as { status?: string; version?: string; uptimeMs?: number };
  if (a.res.status !== 200 || body?.status !== 'ok') {
    return fail(
      'health',
      a,
      `GET /health answered ${serverSaid(a.res)}, expected 200 {"status":"ok"}`,
    );
  }
  return pass(
    'health',
    a,
    `ok, version ${body.version ?? '?'}, up ${formatDuration(body.uptimeMs)}`,
  );
}

function judgeReady(a: Attempt): VerifyCheck {
  if ('error' in a) return fail('ready', a, a.error);
  if (a.res.status === 503) return fail('ready', a, 'not ready: the store is unreachable (503)');

  const ready = (a.res.body as { ready?: boolean })?.ready;
  if (a.res.status !== 200 || ready !== true) {
    return fail(
      'ready',
      a,
      `GET /ready answered ${serverSaid(a.res)}, expected 200 {"ready":true}`,
    );
  }
  return pass('ready', a, 'ready');
}

function judgeSwarmHealth(a: Attempt): VerifyCheck {
  const name = 'swarm-health';
  if ('error' in a) return fail(name, a, a.error);
  if (a.res.status === 401 || a.res.status === 403) return fail(name, a, tokenRefused(a.res));

  const body = a.res.body as { status?: string; reasons?: HealthReason[] };
  const reasons = (body?.reasons ?? []).map((r) => r.code).join(', ');

  if (body?.status === 'unhealthy' || a.res.status === 503) {
    return fail(name, a, `unhealthy${reasons ? `: ${reasons}` : ''}`);
  }
  if (a.res.status !== 200 || (body?.status !== 'healthy' && body?.status !== 'degraded')) {
    return fail(name, a, `GET /swarm/health answered ${serverSaid(a.res)}`);
  }
  if (body.status === 'degraded') {
    return pass(name, a, 'degraded', `degraded: ${reasons || 'no reasons given'}`);
  }
  return pass(name, a, 'healthy');
}

function judgeMetrics(a: Attempt): VerifyCheck {
  const name = 'metrics-shape';
  if ('error' in a) return fail(name, a, a.error);
  if (a.res.status === 401 || a.res.status === 403) return fail(name, a, tokenRefused(a.res));
  if (a.res.status !== 200)
    return fail(name, a, `GET /swarm/metrics answered ${serverSaid(a.res)}`);

  const problems = shapeProblems(a.res.body, METRICS_SHAPE, '');
  if (problems.length > 0) {
    const shown = problems.slice(0, 5).join('; ');
    const more = problems.length > 5 ? ` (and ${problems.length - 5} more)` : '';
    return fail(name, a, `${shown}${more}`);
  }
  return pass(name, a, `all ${countFields(METRICS_SHAPE)} fields present and typed`);
}

function judgeNoToken(a: Attempt): VerifyCheck {
  const name = 'auth-no-token';
  if ('error' in a) return fail(name, a, a.error);

  const challenge = String(a.res.headers['www-authenticate'] ?? '');
  if (a.res.status !== 401) {
    return fail(
      name,
      a,
      `GET /swarm/metrics without a token answered ${a.res.status}, expected 401`,
    );
  }
  if (!/^bearer\b/i.test(challenge)) {
    return fail(name, a, '401 without a WWW-Authenticate: Bearer header');
  }
  return pass(name, a, '401 with WWW-Authenticate: Bearer');
}

function judgeForbidden(a: Attempt): VerifyCheck {
  const name = 'auth-read-forbidden';
  if ('error' in a) return fail(name, a, a.error);
  if (a.res.status === 403) return pass(name, a, 'read token refused on requeue-dlq (403)');

  if (a.res.status >= 200 && a.res.status < 300) {
    return fail(
      name,
      a,
      `the read token was allowed to run requeue-dlq (${a.res.status}; a dry run, nothing changed): it carries the trade scope or more — check OWOKX_API_TOKEN_READONLY`,
    );
  }
  if (a.res.status === 401) return fail(name, a, tokenRefused(a.res));
  return fail(
    name,
    a,
    `POST /swarm/recovery/requeue-dlq answered ${serverSaid(a.res)}, expected 403`,
  );
}

function judgeLatency(checks: VerifyCheck[], maxMs: number): VerifyCheck {
  const timed = checks.filter((c) => c.ms !== null);
  const slow = timed.filter((c) => (c.ms as number) > maxMs);
  const slowest = Math.max(0, ...timed.map((c) => c.ms as number));
  const base = { name: 'latency', ms: null };

  if (slow.length > 0) {
    const list = slow.map((c) => `${c.name} ${formatDuration(c.ms)}`).join(', ');
    return { ...base, status: 'FAIL', detail: `over ${maxMs}ms: ${list}` };
  }
  return {
    ...base,
    status: 'PASS',
    detail: `every check under ${maxMs}ms (slowest ${formatDuration(slowest)})`,
  };
}

function tokenRefused(res: RawResponse): string {
  if (res.status === 401) {
    return '401 unauthorized: no valid read token — set OWOKX_API_TOKEN_READONLY, OWOKX_TOKEN or --token';
  }
  return '403 forbidden: the token lacks the read scope';
}

// ---- the /swarm/metrics contract (../shared/spec/api.md), field by field ----

type FieldType = 'number' | 'string' | 'map' | 'number|null';
interface Shape {
  [field: string]: FieldType | Shape;
}

const n = 'number' as const;

const METRICS_SHAPE: Shape = {
  timestamp: 'string',
  staleAfterMs: n,
  agents: { total: n, active: n, stale: n, byType: 'map', byStatus: 'map' },
  queue: { queued: n, ready: n, delayed: n, inflight: n, deadLettered: n, oldestReadyAgeMs: n },
  stats: {
    enqueued: n,
    delivered: n,
    failed: n,
    retried: n,
    deadLettered: n,
    expired: n,
    requeued: n,
    deduplicated: n,
    purged: n,
  },
  rates: {
    windowMs: n,
    deliveryAttempts: n,
    deliveryFailures: n,
    deliveryFailureRate: n,
    deadLetteredInWindow: n,
    enqueuedPerSec: n,
    deliveredPerSec: n,
  },
  dispatch: { lastRunAt: 'number|null', lastDelivered: n, lastFailed: n },
};

/** Every missing or mistyped field, as `queue.deadLettered: missing`. Gauges must be ≥ 0. */
export function shapeProblems(value: unknown, shape: Shape, prefix: string): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return [`${prefix || 'body'}: expected an object`];
  }

  const problems: string[] = [];
  const obj = value as Record<string, unknown>;

  for (const [field, type] of Object.entries(shape)) {
    const path = prefix ? `${prefix}.${field}` : field;
    const v = obj[field];

    if (!(field in obj)) problems.push(`${path}: missing`);
    else if (typeof type === 'object') problems.push(...shapeProblems(v, type, path));
    else if (!fits(v, type)) problems.push(`${path}: expected ${type}, got ${describe(v)}`);
  }

  return problems;
}

function fits(v: unknown, type: FieldType): boolean {
  if (type === 'string') return typeof v === 'string';
  if (type === 'map') {
    return (
      typeof v === 'object' &&
      v !== null &&
      !Array.isArray(v) &&
      Object.values(v).every((x) => typeof x === 'number')
    );
  }
  if (type === 'number|null' && v === null) return true;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number' && v < 0) return `a negative number (${v})`;
  return typeof v;
}

function countFields(shape: Shape): number {
  return Object.values(shape).reduce<number>(
    (sum, t) => sum + (typeof t === 'object' ? countFields(t) : 1),
    0,
  );
}
