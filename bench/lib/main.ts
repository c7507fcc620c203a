// The benchmark from flags to exit code: start (or reach) a coordinator, warm up, measure the
// runs (with --backlog: on the empty store, then again at depth), clean up, then report,
// compare with the last recorded run, and record. Exit 0 when every message was delivered and
// none dead-lettered, 1 when not, 2 for a usage error, 3 when the server is unreachable or
// refuses the token: the same codes as swarmctl.

import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isSwarmClientError, SwarmClient } from '../../src/client/index.ts';
import { packageRoot } from '../../src/core/package-root.ts';
import { preloadBacklog } from './backlog.ts';
import { nowMs } from './clock.ts';
import type { Enqueuer } from './enqueue.ts';
import { FastEnqueue } from './fast-enqueue.ts';
import { LatencyHistogram, type LatencySummary } from './histogram.ts';
import { type BenchOptions, parseOptions } from './options.ts';
import { readMemory } from './proc.ts';
import { mainThreadProfile, summarizeProfile } from './profile.ts';
import { createProgress, type Progress } from './progress.ts';
import { renderReport } from './render.ts';
import {
  type BacklogInfo,
  type BenchReport,
  type ReportConfig,
  type RunRecord,
  reportPassed,
} from './report.ts';
import {
  compareWithRecorded,
  currentCommit,
  machineInfo,
  recordPath,
  type WorkloadConfig,
  writeRecord,
} from './results.ts';
import { drainRole, measureRun, type RunEnv, type RunResult } from './run.ts';
import { type OwnServer, startServer } from './server.ts';
import { serializableRun, summarize } from './summary.ts';
import { verdicts } from './verdicts.ts';

export const REPO_ROOT = packageRoot(import.meta.url);

export interface BenchIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_UNREACHABLE = 3;
/** Messages per timed warm-up run at most. */
const WARMUP_RUN_CAP = 5_000;

class Unreachable extends Error {}

export async function runBenchmark(argv: string[], io: BenchIo): Promise<number> {
  const parsed = parseOptions(argv, {
    env: io.env,
    stdout: io.stdout,
    stderr: io.stderr,
    isTTY: io.stderr.isTTY === true,
    defaultResultsDir: path.join(REPO_ROOT, 'bench', 'results'),
  });
  if (!parsed.ok) return parsed.exitCode;

  const options = parsed.options;
  const note = (text: string): void => {
    if (!options.json) io.stderr.write(`${text}\n`);
  };

  let server: OwnServer | null = null;
  let client: SwarmClient | null = null;
  let fast: FastEnqueue | null = null;
  let report: BenchReport;

  try {
    if (options.baseUrl === null) {
      note(
        options.databaseUrl === null
          ? 'Starting a coordinator on a temporary SQLite store...'
          : 'Starting a coordinator on a fresh schema of the PostgreSQL database...',
      );
      server = await startServer({
        databaseUrl: options.databaseUrl,
        nodeArgs: options.serverNodeArgs,
        env: options.serverEnv,
        keep: options.keep,
        fromSource: options.profileDir !== null,
      });
    }

    const baseUrl = server?.baseUrl ?? (options.baseUrl as string);
    const token = server?.tokens.trade ?? (options.token as string);
    // Every pull agent holds one socket in its long poll; senders and the sampler need theirs.
    // Open loop never waits for answers, so a stall must not queue requests in our pool.
    const connections = Math.max(
      32,
      options.agents + options.concurrency + 8,
      options.rate !== null ? 256 : 0,
    );
    client = new SwarmClient({ baseUrl, token, timeoutMs: 30_000, connections });
    fast = options.plainClient
      ? null
      : new FastEnqueue({ baseUrl, token, timeoutMs: 30_000, connections });

    await checkAccess(client, baseUrl);
    report = await measure(
      client,
      fast ?? client,
      options,
      server,
      baseUrl,
      createProgress(options.progress),
      note,
    );
  } catch (err) {
    const refused = isSwarmClientError(err) && (err.status === 401 || err.status === 403);
    const where = isSwarmClientError(err) ? `${err.method} ${err.path}: ` : '';
    const hint = refused ? ' (the benchmark needs a trade token)' : '';
    const died = server?.exited() === true;
    if (died) {
      io.stderr.write(
        `error: our own coordinator exited during the benchmark (${server?.exitReason()})\n`,
      );
    }
    io.stderr.write(`error: ${where}${(err as Error).message}${hint}\n`);
    if (died) io.stderr.write(`--- server output ---\n${server?.logTail()}\n`);

    const unreachable =
      err instanceof Unreachable || refused || (isSwarmClientError(err) && err.isNetworkError);
    return unreachable ? EXIT_UNREACHABLE : EXIT_FAILED;
  } finally {
    await client?.close();
    await fast?.close();
    await server?.stop();
    if (server && options.keep) note(`Kept the server's store in ${server.dataDir}`);
  }

  // The profile is written as the server exits, so it can only be read after stop().
  if (options.profileDir !== null && server !== null) {
    const file = mainThreadProfile(options.profileDir, server.pid);
    const spans = [...(report.empty?.runs ?? []), ...report.runs].map((r) => ({
      from: r.startedAt,
      to: r.finishedAt,
    }));
    report.profile = file
      ? summarizeProfile(file, REPO_ROOT, { processStartedAt: server.startedAt, spans })
      : null;
    if (!file) note(`No .cpuprofile appeared in ${options.profileDir}`);
  }

  return output(report, options, io);
}

/** /health without a token, then an authorised read, so a bad URL or token fails in one line. */
async function checkAccess(client: SwarmClient, baseUrl: string): Promise<void> {
  try {
    await client.health();
    await client.metrics();
  } catch (err) {
    if (isSwarmClientError(err) && (err.isNetworkError || err.status === 401)) {
      throw new Unreachable(`${baseUrl}: ${err.message}`);
    }
    if (isSwarmClientError(err) && err.status === 404) {
      throw new Unreachable(
        `${baseUrl} does not answer like an owokx-swarm coordinator (${err.message})`,
      );
    }
    if (isSwarmClientError(err) && err.status === 403) {
      throw new Unreachable(`${baseUrl}: the token may not read /swarm/metrics (${err.message})`);
    }
    throw err;
  }
}

function workload(options: Readonly<BenchOptions>): WorkloadConfig {
  return {
    messages: options.messages,
    agents: options.agents,
    enqueue: options.enqueue,
    delivery: options.delivery,
    batchSize: options.batchSize,
    concurrency: options.concurrency,
    rate: options.rate,
    backlog: options.backlog,
    pollLimit: options.pollLimit,
    ownServer: options.baseUrl === null,
    dispatchLoop: options.dispatchLoop,
    // A profiled or re-tuned server, or the other enqueue client, is another workload: its
    // costs are not the default's, so it is never compared with the default's records.
    serverTuned: options.serverNodeArgs.length > 0 || Object.keys(options.serverEnv).length > 0,
    plainClient: options.plainClient,
    ...(options.databaseUrl === null ? {} : { store: 'postgres' as const }),
  };
}

async function measureRuns(
  env: RunEnv,
  options: Readonly<BenchOptions>,
  progress: Progress,
  phase: string,
): Promise<RunResult[]> {
  const runs: RunResult[] = [];

  for (let run = 1; run <= options.runs; run += 1) {
    // Labels are distinct per phase so each run has its own agent type on the server.
    const label = phase === '' ? String(run) : `${phase}${run}`;
    progress.start(`run ${run}/${options.runs}${phase ? ` (${phase})` : ''}`, options.messages);
    const result = await measureRun(env, label, options.messages);
    result.run = run;
    progress.stop();
    runs.push(result);
  }

  return runs;
}

async function measure(
  client: SwarmClient,
  enqueuer: Enqueuer,
  options: Readonly<BenchOptions>,
  server: OwnServer | null,
  baseUrl: string,
  progress: Progress,
  note: (text: string) => void,
): Promise<BenchReport> {
  const benchId = randomBytes(4).toString('hex');
  const pid = server?.pid ?? null;
  let peakRss: number | null = null;
  const seeRss = (bytes: number | null): void => {
    if (bytes !== null) peakRss = Math.max(peakRss ?? 0, bytes);
  };

  const env: RunEnv = {
    client,
    enqueuer,
    options,
    benchId,
    serverPid: pid,
    ownServer: server !== null,
    serverGone: server === null ? undefined : () => server.exited(),
    onProgress: (acked, expected) => progress.update(acked, expected),
  };

  let warmup: BenchReport['warmup'] = null;
  if (options.warmup > 0 || options.warmupMs > 0) {
    const started = nowMs();
    let messages = 0;
    let runs = 0;
    let last: RunResult | null = null;
    const warm = async (count: number): Promise<void> => {
      progress.start('warmup', count);
      last = await measureRun(env, `w${runs + 1}`, count);
      progress.stop();
      seeRss(last.serverPeakRssBytes);
      messages += count;
      runs += 1;
    };

    if (options.warmup > 0) await warm(options.warmup);
    // Runs of the workload itself (capped, so a 100,000-message workload warms in
    // seconds, not minutes), each with its own agents, as the measured runs will be.
    const size = Math.min(options.messages, WARMUP_RUN_CAP);
    while (nowMs() - started < options.warmupMs) await warm(size);

    const done = last as RunResult | null;
    warmup = {
      messages,
      runs,
      ms: Math.round(nowMs() - started),
      deliveryPerSecond: done?.deliveryPerSecond ?? 0,
    };
  }

  let empty: RunResult[] | null = null;
  let backlog: BacklogInfo | null = null;

  if (options.backlog > 0) {
    empty = await measureRuns(env, options, progress, 'e');
    for (const r of empty) seeRss(r.serverPeakRssBytes);
    const metricsEmpty = await metricsAtRest(client);

    note(`Preloading ${options.backlog.toLocaleString('en-US')} messages for another role...`);
    progress.start('backlog', options.backlog);
    const pre = await preloadBacklog(enqueuer, benchId, options.backlog, (sent) =>
      progress.update(sent),
    );
    progress.stop();

    const memory = pid !== null ? readMemory(pid) : null;
    seeRss(memory?.peakRssBytes ?? null);
    backlog = {
      // The same request with nothing else running: what depth alone costs, apart from load.
      metricsAtRestUs: { empty: metricsEmpty, atDepth: await metricsAtRest(client) },
      messages: options.backlog,
      agentType: pre.agentType,
      preloadMs: pre.preloadMs,
      perSecond: pre.perSecond,
      serverPeakRssBytes: memory?.peakRssBytes ?? null,
      leftAfterCleanup: null,
    };
  }

  const runs = await measureRuns(env, options, progress, '');
  for (const r of runs) seeRss(r.serverPeakRssBytes);
  if (pid !== null) seeRss(readMemory(pid)?.peakRssBytes ?? null);

  // A measured server is left as found; our own store is deleted with its directory.
  if (backlog && server === null) {
    note('Draining the backlog from the measured server...');
    backlog.leftAfterCleanup = (await drainRole(client, backlog.agentType)).left;
  }

  const config: ReportConfig = {
    baseUrl,
    ...workload(options),
    runs: options.runs,
    dispatchLimit: options.batchSize,
    waitMs: options.waitMs,
    warmup: options.warmup,
    warmupMs: options.warmupMs,
    metricsIntervalMs: options.metricsIntervalMs,
    timeoutMs: options.timeoutMs,
    serverNodeArgs: options.serverNodeArgs,
    serverEnv: options.serverEnv,
  };
  const summary = summarize(runs, options.agents);
  const emptySummary = empty ? summarize(empty, options.agents) : null;
  const comparison = compareWithRecorded(
    options.resultsDir,
    workload(options),
    {
      throughputPerSecond: summary.avgThroughputPerSecond,
      p99Us: summary.endToEndUs.p99,
      relativeServerCost: summary.relativeServerCost,
    },
    REPO_ROOT,
  );

  return {
    config,
    summary,
    runs: runs.map(serializableRun),
    generatedAt: new Date().toISOString(),
    deliveryRequest: options.delivery === 'push' ? 'dispatch' : 'poll',
    empty:
      empty && emptySummary
        ? { summary: emptySummary, runs: empty.map(serializableRun) as RunRecord[] }
        : null,
    backlog,
    warmup,
    server: {
      own: server !== null,
      pid,
      peakRssBytes: peakRss,
      warnings: server ? server.warnings() : null,
      dataDir: server && options.keep ? server.dataDir : null,
    },
    comparison,
    verdicts: verdicts({
      config: workload(options),
      summary,
      runs,
      comparison,
      empty: emptySummary,
      serverWarnings: server ? server.warnings() : null,
      metricsAtRest: backlog?.metricsAtRestUs ?? null,
    }),
    machine: machineInfo(),
    commit: currentCommit(REPO_ROOT),
    profile: null,
    recordedAs: null,
  };
}

const AT_REST_SAMPLES = 20;

/** GET /swarm/metrics timed back to back with no other traffic from us. */
async function metricsAtRest(client: SwarmClient): Promise<LatencySummary> {
  const hist = new LatencyHistogram();

  for (let i = 0; i < AT_REST_SAMPLES; i += 1) {
    const started = nowMs();
    await client.metrics();
    hist.recordMs(nowMs() - started);
  }
  return hist.summary();
}

function output(report: BenchReport, options: Readonly<BenchOptions>, io: BenchIo): number {
  if (options.record) {
    const file = recordPath(options.resultsDir, workload(options));
    report.recordedAs = path.relative(REPO_ROOT, file);
    writeRecord(file, report);
  }

  const json = `${JSON.stringify(report, null, 2)}\n`;
  if (options.out) {
    mkdirSync(path.dirname(path.resolve(options.out)), { recursive: true });
    writeFileSync(options.out, json, 'utf8');
  }

  if (options.json) {
    io.stdout.write(json);
  } else {
    const colour = io.stdout.isTTY === true && !io.env.NO_COLOR;
    io.stdout.write(renderReport(report, colour));
    if (report.recordedAs) io.stdout.write(`Recorded as ${report.recordedAs}\n`);
  }

  return reportPassed(report) ? EXIT_OK : EXIT_FAILED;
}
