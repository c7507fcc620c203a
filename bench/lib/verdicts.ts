// The plain-language lines at the end of a report: what an operator should conclude from the
// numbers. Each line is one finding (delivery, dead letters, failures, speed, comparison,
// targets, and whether the benchmark itself was the bottleneck), worded to be read in a
// release checklist without knowing how the benchmark works. FAIL is kept for what fails a
// release (a message lost or dead-lettered); a missed performance target is a WARN, because
// it depends on the machine as much as on the code.

import type { LatencySummary } from './histogram.ts';
import type { Comparison, WorkloadConfig } from './results.ts';
import type { RunResult } from './run.ts';
import type { Summary } from './summary.ts';

export type VerdictLevel = 'ok' | 'warn' | 'fail' | 'info';

export interface Verdict {
  level: VerdictLevel;
  text: string;
}

export interface VerdictInput {
  config: WorkloadConfig;
  summary: Summary;
  runs: RunResult[];
  comparison: Comparison | null;
  /** With --backlog: the same workload measured on the empty store just before the preload. */
  empty: Summary | null;
  serverWarnings: number | null;
  /** With --backlog: GET /swarm/metrics with no load, on the empty store and at depth. */
  metricsAtRest: { empty: LatencySummary; atDepth: LatencySummary } | null;
}

const n = (value: number): string => Math.round(value).toLocaleString('en-US');
const ms = (us: number): string => `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const pct = (value: number): string => `${Math.abs(value).toFixed(0)}%`;

// A change smaller than this is run-to-run noise on a 2-core machine.
const NOISE_PERCENT = 5;
// The server's CPU per message over the client's varied by up to ±5% between runs of the same
// code over a day (docs/benchmarks.md), against ±20% for msg/s: a rise past this is the code.
const COST_NOISE_PERCENT = 10;
// The client is on the same cores as the server; past this it may be the limit, not the server.
const CLIENT_CPU_LIMIT = 85;
// Other load this large (a fifth of a core) visibly lowers throughput on two cores.
const OTHER_CPU_LIMIT = 20;
// The machine-wide busy time comes from /proc/stat in 10 ms ticks per core: over a run of
// 50 ms that is ±40% of a core (the guide's 1,000-message batch runs read 332%), over one of
// a second ±4%. Shorter runs say nothing about other load.
const OTHER_CPU_MIN_RUN_MS = 1000;

export function verdicts(input: VerdictInput): Verdict[] {
  const { summary, runs } = input;
  const out: Verdict[] = [];

  out.push(...deliveryVerdicts(runs, summary));

  out.push(
    summary.totalDeadLettered === 0
      ? { level: 'ok', text: 'No dead letters.' }
      : {
          level: 'fail',
          text:
            `${n(summary.totalDeadLettered)} messages dead-lettered: inspect them with ` +
            `GET /swarm/queue/dead-letters?topic=<agentType of the run>.`,
        },
  );

  const retried = runs.reduce((s, r) => s + r.statsDelta.retried, 0);
  if (summary.totalFailed + summary.totalRedelivered + retried === 0) {
    out.push({ level: 'ok', text: 'No delivery failures, retries or redeliveries.' });
  } else {
    out.push({
      level: 'warn',
      text:
        `${n(summary.totalFailed)} delivery failures, ${n(retried)} retries and ` +
        `${n(summary.totalRedelivered)} redeliveries (at least once: a lease ran out or a push ` +
        'failed). Throughput still counts each message once.',
    });
  }

  if (summary.totalClientErrors > 0) {
    const last = runs.find((r) => r.lastError)?.lastError ?? 'unknown';
    out.push({
      level: 'warn',
      text: `${n(summary.totalClientErrors)} requests failed on the client side; last: ${last}`,
    });
  }

  out.push(speedVerdict(summary));
  const cost = costVerdict(summary);
  if (cost) out.push(cost);
  const lag = sendLag(runs);
  if (lag) out.push(lag);
  if (input.comparison) out.push(comparisonVerdict(input.comparison));
  if (input.empty) out.push(...backlogVerdicts(summary, input.empty, input.config));
  out.push(...targetVerdicts(input.config, summary, input.metricsAtRest));

  if (summary.avgClientCpuPercent > CLIENT_CPU_LIMIT) {
    out.push({
      level: 'warn',
      text:
        `The benchmark client used ${pct(summary.avgClientCpuPercent)} of a core: on this machine ` +
        'it may be the limit rather than the server.',
    });
  }

  // A server measured with --base-url is not ours to tell apart: on this machine, it is "other".
  // So is PostgreSQL, whose processes do the store's work for our own server.
  const remote = input.serverWarnings === null;
  const postgres = input.config.store === 'postgres';
  const timeable = runs.every((r) => r.deliveryMs >= OTHER_CPU_MIN_RUN_MS);
  if (
    timeable &&
    summary.avgOtherCpuPercent !== null &&
    summary.avgOtherCpuPercent > OTHER_CPU_LIMIT
  ) {
    const used = `Other processes used ${pct(summary.avgOtherCpuPercent)} of a core during the runs`;
    out.push({
      level: remote || postgres ? 'info' : 'warn',
      text: remote
        ? `${used}; with --base-url that includes the server being measured when it runs on this machine.`
        : postgres
          ? `${used}; with --database-url that includes PostgreSQL when it runs on this machine.`
          : `${used}: the machine was not idle, so these numbers understate it. Rerun on a quiet machine.`,
    });
  }

  if (input.serverWarnings !== null && input.serverWarnings > 0) {
    out.push({
      level: 'warn',
      text: `The server logged ${n(input.serverWarnings)} warnings or errors (rerun with --keep).`,
    });
  }

  return out;
}

function deliveryVerdicts(runs: RunResult[], summary: Summary): Verdict[] {
  if (summary.allDelivered) {
    const each = runs[0]?.messages ?? 0;
    const every = runs.length === 1 ? 'in the run' : `in every run (${runs.length} runs)`;
    return [{ level: 'ok', text: `All ${n(each)} messages delivered and acked ${every}.` }];
  }

  return runs
    .filter((r) => r.delivered < r.messages)
    .map((r) => ({
      level: 'fail' as const,
      text:
        `Run ${r.label}: ${n(r.delivered)} of ${n(r.messages)} delivered; ` +
        `${n(r.queuedAfterDispatch)} still queued, ${n(r.inflightAfter)} in flight` +
        `${r.enqueueFailed > 0 ? `, ${n(r.enqueueFailed)} never enqueued` : ''}` +
        `${r.timedOut ? ' (the run hit its deadline, --timeout-ms)' : ''}.`,
    }));
}

function speedVerdict(summary: Summary): Verdict {
  const spread =
    summary.runs > 1 && summary.throughputSpreadPercent > 2 * NOISE_PERCENT
      ? `; runs vary by ${pct(summary.throughputSpreadPercent)}, so compare averages with care`
      : '';

  return {
    level: 'info',
    text:
      `End to end ${n(summary.avgThroughputPerSecond)} msg/s; latency p50 ` +
      `${ms(summary.endToEndUs.p50)}, p99 ${ms(summary.endToEndUs.p99)}${spread}.`,
  };
}

const us = (value: number): string => `${value.toFixed(0)} µs`;

/**
 * What one message cost our server, and what it cost the benchmark client meanwhile. The
 * client does the same work per message in every release, so its cost is the machine's speed
 * at that moment: a slow minute of a shared machine raises both, a slower server only its own.
 */
function costVerdict(s: Summary): Verdict | null {
  const server = s.avgServerUsPerMessage;
  const client = s.avgClientUsPerMessage;
  if (server === null || client === null || s.relativeServerCost === null) return null;

  const main =
    s.avgServerMainUsPerMessage === null
      ? ''
      : ` (${us(s.avgServerMainUsPerMessage)} on its main thread, which every request runs on)`;
  return {
    level: 'info',
    text:
      `Per message the server spent ${us(server)} of CPU${main} and this benchmark ` +
      `${us(client)}: ${s.relativeServerCost.toFixed(2)} times the benchmark's cost, the ` +
      'figure to compare across minutes of a shared machine.',
  };
}

/** Open loop: did the sender keep its schedule? Late sends are counted in the latency. */
function sendLag(runs: RunResult[]): Verdict | null {
  const lags = runs.map((r) => r.sendLagUs).filter((l) => l !== null && l.count > 0);
  if (lags.length === 0) return null;

  const p99 = Math.max(...lags.map((l) => l?.p99 ?? 0));
  const max = Math.max(...lags.map((l) => l?.max ?? 0));
  const late = p99 > 2000;

  return {
    level: late ? 'warn' : 'info',
    text: late
      ? `The sender fell behind its schedule (send lag p99 ${ms(p99)}, max ${ms(max)}): the ` +
        'benchmark process was too busy to offer the load on time; latency includes the lag.'
      : `Messages left on schedule (send lag p99 ${ms(p99)}, max ${ms(max)}).`,
  };
}

export function comparisonVerdict(c: Comparison): Verdict {
  const change = c.throughputChangePercent;
  const where = `the last recorded run in ${c.file} (${n(c.throughputPerSecond)} msg/s, ${c.generatedAt.slice(0, 10)})`;
  const machine = c.sameMachine ? '' : ' It ran on another machine, so this is indicative only.';

  // With both costs known the level follows the server's cost relative to the benchmark's,
  // not msg/s: a run 25% down in a minute when the benchmark's own work cost 30% more is no
  // regression, and a server that got dearer shows even when the machine got faster.
  const cost = c.relativeServerCost;
  if (cost !== null) {
    const rise = cost.changePercent;
    const raw =
      Math.abs(change) < NOISE_PERCENT
        ? `Throughput within ${NOISE_PERCENT}% of ${where}`
        : `Throughput ${pct(change)} ${change < 0 ? 'below' : 'above'} ${where}`;
    const ratio = `${cost.ours.toFixed(2)} times the benchmark's cost per message, against ${cost.theirs.toFixed(2)} then`;
    const reading =
      Math.abs(rise) < COST_NOISE_PERCENT
        ? `the same within ${COST_NOISE_PERCENT}%, so any difference in msg/s is the machine's speed`
        : `${pct(rise)} ${rise > 0 ? 'dearer' : 'cheaper'} per message than then`;

    return {
      level: rise >= COST_NOISE_PERCENT ? 'warn' : 'ok',
      text: `${raw}. The server spent ${ratio}: ${reading}.${machine}`,
    };
  }

  if (Math.abs(change) < NOISE_PERCENT) {
    return { level: 'ok', text: `Throughput within ${NOISE_PERCENT}% of ${where}.${machine}` };
  }

  return change < 0
    ? { level: 'warn', text: `Throughput ${pct(change)} below ${where}.${machine}` }
    : { level: 'ok', text: `Throughput ${pct(change)} above ${where}.${machine}` };
}

function backlogVerdicts(withBacklog: Summary, empty: Summary, config: WorkloadConfig): Verdict[] {
  const ratio = (a: number, b: number): number => (b > 0 ? (a / b) * 100 : 0);
  const enq = ratio(withBacklog.avgEnqueuePerSecond, empty.avgEnqueuePerSecond);
  const del = ratio(withBacklog.avgThroughputPerSecond, empty.avgThroughputPerSecond);
  const ok = enq >= 80 && del >= 80;

  return [
    {
      level: ok ? 'ok' : 'warn',
      text:
        `With ${n(config.backlog)} messages queued for another role, enqueue runs at ` +
        `${enq.toFixed(0)}% and delivery at ${del.toFixed(0)}% of the empty store ` +
        `(target: at least 80%).`,
    },
  ];
}

/**
 * The release targets of issue 3, where this workload is one of the ones they name. They
 * are set for the embedded SQLite store; a PostgreSQL run is measured, not judged by them.
 */
function targetVerdicts(
  c: WorkloadConfig,
  s: Summary,
  atRest: VerdictInput['metricsAtRest'],
): Verdict[] {
  if (!c.ownServer) return [];
  if (c.store === 'postgres') {
    return [
      {
        level: 'info',
        text: 'The release targets are set for the embedded SQLite store; this run on PostgreSQL is not held to them.',
      },
    ];
  }

  const plain = c.rate === null && c.backlog === 0 && c.delivery === 'pull' && c.agents === 5;
  const guideSingle = c.enqueue === 'single' && c.concurrency === 16;
  const out: Verdict[] = [];

  const throughput = (min: number, what: string): void => {
    const ok = s.avgThroughputPerSecond >= min;
    out.push({
      level: ok ? 'ok' : 'warn',
      text: `Target ${what}: at least ${n(min)} msg/s end to end; ${ok ? 'met' : 'missed'} (${n(s.avgThroughputPerSecond)}).`,
    });
  };

  if (plain && c.messages === 1000) {
    if (c.enqueue === 'batch') throughput(15_000, 'for the guide run, batch enqueue');
    if (guideSingle) throughput(5_000, 'for the guide run, single enqueue');
  }

  if (plain && c.messages === 100_000) {
    if (c.enqueue === 'batch') throughput(20_000, 'at 100,000 messages, batch enqueue');
    if (guideSingle) throughput(8_000, 'at 100,000 messages, single enqueue');

    if (s.serverPeakRssBytes !== null && (c.enqueue === 'batch' || guideSingle)) {
      const ok = s.serverPeakRssBytes <= 200 * 1024 * 1024;
      out.push({
        level: ok ? 'ok' : 'warn',
        text: `Target server peak RSS at most 200 MB; ${ok ? 'met' : 'missed'} (${mb(s.serverPeakRssBytes)}).`,
      });
    }
  }

  if (c.rate === 1000 && c.backlog === 0) {
    const ok = s.endToEndUs.p50 <= 2000 && s.endToEndUs.p99 <= 10_000;
    out.push({
      level: ok ? 'ok' : 'warn',
      text: `Target at 1,000 msg/s offered: p50 at most 2 ms and p99 at most 10 ms; ${ok ? 'met' : 'missed'} (p50 ${ms(s.endToEndUs.p50)}, p99 ${ms(s.endToEndUs.p99)}).`,
    });
  }

  if (c.backlog >= 1_000_000 && s.metricsRequestUs.count > 0) {
    const m = s.metricsRequestUs;
    const ok = m.p99 <= 50_000;
    out.push({
      level: ok ? 'ok' : 'warn',
      text:
        `Target GET /swarm/metrics within 50 ms at depth; ${ok ? 'met' : 'missed'} under load ` +
        `(p99 ${ms(m.p99)}, max ${ms(m.max)}, ${n(m.count)} samples)` +
        (atRest
          ? `; with no load ${ms(atRest.atDepth.p50)} at depth, ${ms(atRest.empty.p50)} empty.`
          : '.'),
    });
  }

  return out;
}
