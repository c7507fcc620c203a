// Recorded runs in bench/results/: one JSON report per file, named by date and workload, with
// the machine it ran on. A new run is compared with the newest recorded run of the same
// workload, so "12% slower" always means "than the same benchmark, last time".

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RATIO_MIN_SERVER_CPU_MS } from './summary.ts';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryBytes: number;
  os: string;
  node: string;
}

/** The workload: what must match for two reports to be compared. */
export interface WorkloadConfig {
  messages: number;
  agents: number;
  enqueue: string;
  delivery: string;
  batchSize: number;
  concurrency: number;
  rate: number | null;
  backlog: number;
  pollLimit: number;
  ownServer: boolean;
  /** Push only; absent in older records, where it was always on. */
  dispatchLoop?: boolean;
  /** Our own server ran with extra node flags or settings (--profile among them). */
  serverTuned?: boolean;
  /** Enqueues went through SwarmClient (--plain-client), a dearer client. */
  plainClient?: boolean;
  /** Our own server's store; absent in older records, which were all on SQLite. */
  store?: 'sqlite' | 'postgres';
}

export interface RecordedReport {
  config: WorkloadConfig & { runs: number };
  summary: {
    avgThroughputPerSecond: number;
    avgEnqueuePerSecond?: number;
    avgDeliveryPerSecond?: number;
    endToEndUs?: { p50: number; p99: number };
    /** Absent in records made before 2026-12-04; their CPU shares give the same ratio. */
    relativeServerCost?: number | null;
    avgServerCpuPercent?: number | null;
    avgClientCpuPercent?: number;
  };
  runs?: { serverCpuPercent?: number | null; deliveryMs?: number }[];
  generatedAt: string;
  machine?: MachineInfo;
  commit?: string | null;
}

export interface Comparison {
  file: string;
  generatedAt: string;
  throughputPerSecond: number;
  /** Ours relative to theirs, in percent: -12 means 12% below. */
  throughputChangePercent: number;
  p99Us: number | null;
  p99ChangePercent: number | null;
  sameMachine: boolean;
  /**
   * The server's CPU per message over the benchmark client's (see Summary), in both runs;
   * `changePercent` 12 means the server costs 12% more per message than then. Null unless
   * both runs measured our own server's CPU.
   */
  relativeServerCost: { ours: number; theirs: number; changePercent: number } | null;
}

/**
 * A record's server-to-client CPU ratio. Both shares are over the same span and the same
 * messages, so their quotient is the ratio of CPU per message, which older records did not
 * store.
 */
function recordedRelativeCost(report: RecordedReport): number | null {
  const { summary, runs } = report;
  if ('relativeServerCost' in summary) return positive(summary.relativeServerCost);

  // The same rule as summarize(): every run long enough for /proc's ticks.
  if (!Array.isArray(runs) || runs.length === 0) return null;
  const serverMs = (r: unknown): number =>
    isObject(r) ? ((positive(r.serverCpuPercent) ?? 0) / 100) * (positive(r.deliveryMs) ?? 0) : 0;
  if (!runs.every((r) => serverMs(r) >= RATIO_MIN_SERVER_CPU_MS)) return null;

  const server = positive(summary.avgServerCpuPercent);
  const client = positive(summary.avgClientCpuPercent);
  return server !== null && client !== null ? server / client : null;
}

/**
 * Beyond this factor either way, two ratios do not measure the same thing (a hand-edited
 * record, a server measured elsewhere): the comparison falls back to msg/s.
 */
const COMPARABLE_COST_FACTOR = 4;

export function machineInfo(): MachineInfo {
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

/** The commit measured, with "+dirty" when the tree has uncommitted changes. */
export function currentCommit(cwd: string): string | null {
  try {
    const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd, stdio: 'pipe' })
      .toString()
      .trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd,
      stdio: 'pipe',
    })
      .toString()
      .trim();
    return dirty === '' ? head : `${head}+dirty`;
  } catch {
    return null;
  }
}

/** A short, stable name for a workload: `pull-batch-m1000-a5`, `-rate1000`, `-backlog1000000`. */
export function workloadSlug(c: WorkloadConfig): string {
  const parts = [c.delivery, c.enqueue, `m${c.messages}`, `a${c.agents}`];
  if (c.enqueue === 'batch' && c.batchSize !== 500) parts.push(`b${c.batchSize}`);
  if (c.rate === null && c.concurrency !== (c.enqueue === 'single' ? 16 : 1)) {
    parts.push(`c${c.concurrency}`);
  }
  if (c.rate !== null) parts.push(`rate${c.rate}`);
  if (c.backlog > 0) parts.push(`backlog${c.backlog}`);
  if (c.pollLimit !== 250) parts.push(`l${c.pollLimit}`);
  if (c.delivery === 'push' && c.dispatchLoop === false) parts.push('nodispatch');
  if (!c.ownServer) parts.push('remote');
  if (c.serverTuned === true) parts.push('tuned');
  if (c.plainClient === true) parts.push('plain');
  if (c.store === 'postgres') parts.push('postgres');
  return parts.join('-');
}

export function sameWorkload(a: WorkloadConfig, b: WorkloadConfig): boolean {
  return workloadSlug(a) === workloadSlug(b);
}

/** A day of clock skew between machines is allowed; a record from further ahead is not. */
const FUTURE_SLACK_MS = 24 * 60 * 60 * 1000;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * A record fit to compare with: ours in shape, with a date that parses and is not in the
 * future (the newest record wins, so one dated 2099 would be the baseline for ever) and a
 * throughput that is a number. Anything else in it is checked where it is read.
 */
function usableRecord(report: unknown): report is RecordedReport {
  if (!isObject(report) || !isObject(report.config) || !isObject(report.summary)) return false;
  if (typeof report.generatedAt !== 'string') return false;

  const at = Date.parse(report.generatedAt);
  const throughput = report.summary.avgThroughputPerSecond;
  return (
    Number.isFinite(at) &&
    at <= Date.now() + FUTURE_SLACK_MS &&
    typeof throughput === 'number' &&
    Number.isFinite(throughput) &&
    throughput >= 0
  );
}

/** A positive finite number, or null. */
const positive = (value: unknown): number | null =>
  typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : null;

function readReports(dir: string): { file: string; report: RecordedReport }[] {
  if (!existsSync(dir)) return [];

  const out: { file: string; report: RecordedReport }[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.json')) continue;

    try {
      const report = JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as RecordedReport;
      if (usableRecord(report)) out.push({ file: path.join(dir, name), report });
    } catch {
      // Not one of ours, or hand-edited into invalid JSON: not a baseline.
    }
  }
  return out;
}

/** The newest recorded report of the same workload, compared with `ours`. */
export function compareWithRecorded(
  dir: string,
  config: WorkloadConfig,
  ours: { throughputPerSecond: number; p99Us: number; relativeServerCost: number | null },
  repoRoot: string,
): Comparison | null {
  const matching = readReports(dir)
    .filter(({ report }) => sameWorkload(report.config, config))
    .sort((a, b) => Date.parse(b.report.generatedAt) - Date.parse(a.report.generatedAt));
  const newest = matching[0];
  if (!newest) return null;

  const theirs = newest.report.summary;
  const theirP99 = isObject(theirs.endToEndUs) ? positive(theirs.endToEndUs.p99) : null;
  const theirCost = recordedRelativeCost(newest.report);
  const me = machineInfo();

  return {
    file: path.relative(repoRoot, newest.file),
    generatedAt: newest.report.generatedAt,
    throughputPerSecond: theirs.avgThroughputPerSecond,
    throughputChangePercent:
      theirs.avgThroughputPerSecond > 0
        ? (ours.throughputPerSecond / theirs.avgThroughputPerSecond - 1) * 100
        : 0,
    p99Us: theirP99,
    p99ChangePercent: theirP99 ? (ours.p99Us / theirP99 - 1) * 100 : null,
    sameMachine: newest.report.machine?.cpu === me.cpu && newest.report.machine?.cores === me.cores,
    relativeServerCost:
      ours.relativeServerCost !== null &&
      theirCost !== null &&
      ours.relativeServerCost / theirCost <= COMPARABLE_COST_FACTOR &&
      theirCost / ours.relativeServerCost <= COMPARABLE_COST_FACTOR
        ? {
            ours: ours.relativeServerCost,
            theirs: theirCost,
            changePercent: (ours.relativeServerCost / theirCost - 1) * 100,
          }
        : null,
  };
}

/** bench/results/<YYYY-MM-DD>-<workload>.json, or `-2`, `-3`…: never an earlier record's name. */
export function recordPath(dir: string, config: WorkloadConfig): string {
  const date = new Date().toISOString().slice(0, 10);
  const base = `${date}-${workloadSlug(config)}`;

  let file = path.join(dir, `${base}.json`);
  for (let n = 2; existsSync(file); n += 1) file = path.join(dir, `${base}-${n}.json`);
  return file;
}

export function writeRecord(file: string, report: unknown): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`, 'utf8');
}
