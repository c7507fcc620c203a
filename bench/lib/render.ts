// The human report: a header saying what was measured and where, a throughput table, a
// latency table, and the verdict lines. Colour only on a terminal; the numbers are the same
// ones the JSON report carries, formatted for reading.

import Table from 'cli-table3';
import pc from 'picocolors';
import { BORDERLESS } from '../../src/cli/output.ts';
import type { ProfileLine, ProfileSummary } from './profile.ts';
import type { BenchReport, RunRecord } from './report.ts';
import type { Summary } from './summary.ts';
import type { VerdictLevel } from './verdicts.ts';

type Colors = ReturnType<typeof pc.createColors>;

const int = (v: number): string => Math.round(v).toLocaleString('en-US');
const msFromUs = (us: number): string => (us / 1000).toFixed(us < 10_000 ? 2 : 1);
const msFixed = (ms: number): string => ms.toFixed(ms < 100 ? 1 : 0);
const mb = (bytes: number | null): string =>
  bytes === null ? 'n/a' : `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const pct = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(0)}%`);
// Percent of one core each: the server, this benchmark process, and everything else.
const cpu = (server: number | null, bench: number, other: number | null): string =>
  `${pct(server)} / ${pct(bench)} / ${pct(other)}`;

function table(c: Colors, head: string[], rows: string[][], leftColumns = 1): string {
  const t = new Table({
    head: head.map((h) => c.bold(h)),
    chars: BORDERLESS,
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0, compact: true },
    colAligns: head.map((_, i) => (i < leftColumns ? 'left' : 'right')),
  });
  for (const row of rows) t.push(row);
  return t
    .toString()
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n');
}

function throughputRow(label: string, r: RunRecord | null, s: Summary | null): string[] {
  if (r) {
    return [
      label,
      msFixed(r.enqueueMs),
      int(r.enqueuePerSecond),
      msFixed(r.deliveryMs),
      int(r.throughputPerSecond),
      `${int(r.delivered)}/${int(r.messages)}`,
      int(r.failed),
      int(r.deadLettered),
      int(r.queuedAfterDispatch),
      mb(r.serverPeakRssBytes),
      cpu(r.serverCpuPercent, r.clientCpuPercent, r.otherCpuPercent),
    ];
  }

  const a = s as Summary;
  return [
    label,
    msFixed(a.avgEnqueueMs),
    int(a.avgEnqueuePerSecond),
    msFixed(a.avgDeliveryMs),
    int(a.avgThroughputPerSecond),
    `${int(a.totalDelivered)}/${int(a.totalMessages)}`,
    int(a.totalFailed),
    int(a.totalDeadLettered),
    int(a.avgQueuedAfterDispatch),
    mb(a.serverPeakRssBytes),
    cpu(a.avgServerCpuPercent, a.avgClientCpuPercent, a.avgOtherCpuPercent),
  ];
}

function latencyRow(
  label: string,
  e2e: RunRecord['endToEndUs'],
  enq: RunRecord['enqueueRequestUs'],
  del: RunRecord['deliveryRequestUs'],
  metrics: RunRecord['metricsRequestUs'],
): string[] {
  const three = (x: RunRecord['endToEndUs']): string =>
    x.count === 0 ? '-' : `${msFromUs(x.p50)} / ${msFromUs(x.p95)} / ${msFromUs(x.p99)}`;

  return [
    label,
    e2e.count === 0 ? '-' : msFromUs(e2e.p50),
    e2e.count === 0 ? '-' : msFromUs(e2e.p95),
    e2e.count === 0 ? '-' : msFromUs(e2e.p99),
    e2e.count === 0 ? '-' : msFromUs(e2e.max),
    three(enq),
    three(del),
    metrics.count === 0 ? '-' : msFromUs(metrics.p99),
  ];
}

function tables(c: Colors, runs: RunRecord[], s: Summary, request: string): string[] {
  const throughput = table(
    c,
    [
      'run',
      'enqueue ms',
      'enqueue msg/s',
      'delivery ms',
      'end-to-end msg/s',
      'delivered',
      'failed',
      'dead',
      'queued after',
      'server RSS',
      'CPU server/bench/other',
    ],
    [...runs.map((r) => throughputRow(r.label, r, null)), throughputRow('avg', null, s)],
  );

  const latency = table(
    c,
    [
      'run',
      'e2e p50',
      'e2e p95',
      'e2e p99',
      'e2e max',
      'enqueue req p50/p95/p99',
      `${request} req p50/p95/p99`,
      'metrics p99',
    ],
    [
      ...runs.map((r) =>
        latencyRow(
          r.label,
          r.endToEndUs,
          r.enqueueRequestUs,
          r.deliveryRequestUs,
          r.metricsRequestUs,
        ),
      ),
      latencyRow('all', s.endToEndUs, s.enqueueRequestUs, s.deliveryRequestUs, s.metricsRequestUs),
    ],
  );

  return [
    throughput,
    '',
    c.dim('Latency in milliseconds ("all" pools every run\'s samples)'),
    latency,
  ];
}

const TAGS: Record<VerdictLevel, (c: Colors) => string> = {
  ok: (c) => c.green('PASS'),
  warn: (c) => c.yellow('WARN'),
  fail: (c) => c.red('FAIL'),
  info: (c) => c.cyan('INFO'),
};

export function renderReport(report: BenchReport, colour: boolean): string {
  const c = pc.createColors(colour);
  const cfg = report.config;
  const lines: string[] = [];

  const enqueue =
    cfg.enqueue === 'batch'
      ? `batch enqueue (${cfg.batchSize}/request, ${cfg.concurrency} sender${cfg.concurrency > 1 ? 's' : ''})`
      : `single enqueue (${cfg.rate === null ? `${cfg.concurrency} senders` : 'one request each'})`;
  const load = cfg.rate === null ? 'closed loop' : `open loop at ${int(cfg.rate)} msg/s`;
  const where = cfg.ownServer
    ? `own server (${cfg.store === 'postgres' ? 'fresh PostgreSQL schema' : 'temporary SQLite'}) at ${cfg.baseUrl}`
    : `server at ${cfg.baseUrl}`;

  lines.push(c.bold('Swarm benchmark'));
  lines.push(
    `${int(cfg.messages)} messages x ${cfg.runs} run${cfg.runs > 1 ? 's' : ''}, ${cfg.agents} ${cfg.delivery} agents, ${enqueue}, ${load}`,
  );
  lines.push(
    c.dim(
      `${where}; ${report.machine.cpu}, ${report.machine.cores} cores, node ${report.machine.node}`,
    ),
  );

  if (report.warmup) {
    lines.push(
      c.dim(
        `warmup: ${int(report.warmup.messages)} messages in ${report.warmup.runs} unmeasured run(s) over ${(report.warmup.ms / 1000).toFixed(1)} s (--warmup 0 measures a cold server)`,
      ),
    );
  }

  if (report.backlog) {
    const b = report.backlog;
    const rest = b.metricsAtRestUs;
    lines.push(
      c.dim(
        `backlog: ${int(b.messages)} messages preloaded for ${b.agentType} in ${(b.preloadMs / 1000).toFixed(1)} s (${int(b.perSecond)} msg/s)`,
      ),
      c.dim(
        `GET /swarm/metrics with no load: p50 ${msFromUs(rest.empty.p50)} ms empty, ${msFromUs(rest.atDepth.p50)} ms at depth (max ${msFromUs(rest.empty.max)} / ${msFromUs(rest.atDepth.max)} ms)`,
      ),
    );
  }
  lines.push('');

  if (report.empty) {
    lines.push(c.bold('Empty store (before the backlog)'));
    lines.push(...tables(c, report.empty.runs, report.empty.summary, report.deliveryRequest));
    lines.push('');
    lines.push(c.bold(`With ${int(cfg.backlog)} messages queued for another role`));
  }

  lines.push(...tables(c, report.runs, report.summary, report.deliveryRequest));
  lines.push('');

  for (const v of report.verdicts) lines.push(`${TAGS[v.level](c)}  ${v.text}`);

  if (report.profile) lines.push('', ...profileTables(c, report.profile));

  return `${lines.join('\n')}\n`;
}

function profileTables(c: Colors, p: ProfileSummary): string[] {
  const rows = (items: ProfileLine[], n: number, withWhere: boolean): string[][] =>
    items
      .slice(0, n)
      .map((l) => [l.name, ...(withWhere ? [l.where] : []), int(l.ms), `${l.percent.toFixed(1)}%`]);

  return [
    c.bold(
      `Where the server's CPU time went: ${int(p.busyMs)} ms busy in ${int(p.wallMs)} ms ${p.windowed ? 'of measured runs' : 'of its life'}`,
    ),
    c.dim(p.file),
    table(c, ['function (self time)', 'where', 'ms', 'share'], rows(p.topSelf, 15, true), 2),
    '',
    table(c, ['package or file', 'ms', 'share'], rows(p.byModule, 12, false)),
    '',
    table(
      c,
      ['src/ function (inclusive)', 'where', 'ms', 'share'],
      rows(p.topInclusive, 12, true),
      2,
    ),
  ];
}
