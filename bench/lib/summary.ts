// Averages across runs. The original benchmark's keys average per-run figures, and they keep
// doing so here; latency percentiles are also given pooled (every run's samples in one
// histogram), which is the figure to quote: the mean of three p99s is not a p99.

import { LatencyHistogram, type LatencySummary } from './histogram.ts';
import type { RunResult } from './run.ts';

export interface Summary {
  // ---- the original owokx benchmark's keys ----
  runs: number;
  messagesPerRun: number;
  agents: number;
  avgEnqueueMs: number;
  avgDispatchMs: number;
  avgTotalMs: number;
  avgThroughputPerSecond: number;
  avgBatchLatencyP50: number;
  avgBatchLatencyP95: number;
  avgBatchLatencyP99: number;
  avgBaselineQueued: number;
  avgQueuedAfterDispatch: number;
  avgDeadLettered: number;

  // ---- added here ----
  avgEnqueuePerSecond: number;
  avgDeliveryMs: number;
  avgDeliveryPerSecond: number;
  /** (fastest - slowest) / mean of the runs' end-to-end msg/s, in percent. */
  throughputSpreadPercent: number;
  endToEndUs: LatencySummary;
  enqueueRequestUs: LatencySummary;
  deliveryRequestUs: LatencySummary;
  metricsRequestUs: LatencySummary;
  totalMessages: number;
  totalDelivered: number;
  allDelivered: boolean;
  totalDeadLettered: number;
  totalFailed: number;
  totalRedelivered: number;
  totalClientErrors: number;
  serverPeakRssBytes: number | null;
  avgServerCpuPercent: number | null;
  avgClientCpuPercent: number;
  avgOtherCpuPercent: number | null;
  avgServerMainUsPerMessage: number | null;
  avgServerUsPerMessage: number | null;
  avgClientUsPerMessage: number | null;
  /**
   * The server's CPU per message over the benchmark client's, measured over the same span.
   * The client's work per message is the same from one release to the next, so its cost is
   * a yardstick of the machine's speed at that moment: this ratio compares across minutes of
   * a shared machine where msg/s does not (docs/benchmarks.md). Null for a measured server,
   * and for runs too short to read it (see RATIO_MIN_SERVER_CPU_MS).
   */
  relativeServerCost: number | null;
}

export const average = (values: number[]): number =>
  values.length === 0 ? 0 : values.reduce((sum, v) => sum + v, 0) / values.length;

const sum = (values: number[]): number => values.reduce((s, v) => s + v, 0);

function pooled(runs: RunResult[], pick: (r: RunResult) => LatencyHistogram | undefined) {
  const all = new LatencyHistogram();
  for (const run of runs) {
    const hist = pick(run);
    if (hist) all.add(hist);
  }
  return all.summary();
}

/**
 * /proc counts CPU in 10 ms ticks, so a reading is off by up to 20 ms (one tick at each end).
 * From 500 ms of server CPU in every run that is at most 4%; the guide's 1,000-message runs
 * (about 40 ms of server CPU each in batch) read ratios 45% apart from one invocation to the
 * next, which is the ticks, not the server.
 */
export const RATIO_MIN_SERVER_CPU_MS = 500;

export function summarize(runs: RunResult[], agents: number): Summary {
  const throughputs = runs.map((r) => r.throughputPerSecond);
  const avgThroughput = average(throughputs);
  const rss = runs.map((r) => r.serverPeakRssBytes).filter((v): v is number => v !== null);
  const cpu = runs.map((r) => r.serverCpuPercent).filter((v): v is number => v !== null);
  const other = runs.map((r) => r.otherCpuPercent).filter((v): v is number => v !== null);
  const known = (values: (number | null)[]): number | null => {
    const present = values.filter((v): v is number => v !== null);
    return present.length > 0 ? average(present) : null;
  };
  const serverUs = known(runs.map((r) => r.serverUsPerMessage));
  const clientUs = known(runs.map((r) => r.clientUsPerMessage));

  return {
    runs: runs.length,
    messagesPerRun: runs[0]?.messages ?? 0,
    agents,
    avgEnqueueMs: average(runs.map((r) => r.enqueueMs)),
    avgDispatchMs: average(runs.map((r) => r.dispatchMs)),
    avgTotalMs: average(runs.map((r) => r.totalMs)),
    avgThroughputPerSecond: avgThroughput,
    avgBatchLatencyP50: average(runs.map((r) => r.batchLatencyP50)),
    avgBatchLatencyP95: average(runs.map((r) => r.batchLatencyP95)),
    avgBatchLatencyP99: average(runs.map((r) => r.batchLatencyP99)),
    avgBaselineQueued: average(runs.map((r) => r.baselineQueued)),
    avgQueuedAfterDispatch: average(runs.map((r) => r.queuedAfterDispatch)),
    avgDeadLettered: average(runs.map((r) => r.deadLettered)),

    avgEnqueuePerSecond: average(runs.map((r) => r.enqueuePerSecond)),
    avgDeliveryMs: average(runs.map((r) => r.deliveryMs)),
    avgDeliveryPerSecond: average(runs.map((r) => r.deliveryPerSecond)),
    throughputSpreadPercent:
      avgThroughput > 0
        ? ((Math.max(...throughputs) - Math.min(...throughputs)) / avgThroughput) * 100
        : 0,
    endToEndUs: pooled(runs, (r) => r.histograms?.endToEnd),
    enqueueRequestUs: pooled(runs, (r) => r.histograms?.enqueueRequests),
    deliveryRequestUs: pooled(runs, (r) => r.histograms?.deliveryRequests),
    metricsRequestUs: pooled(runs, (r) => r.histograms?.metricsRequests),
    totalMessages: sum(runs.map((r) => r.messages)),
    totalDelivered: sum(runs.map((r) => r.delivered)),
    allDelivered: runs.every((r) => r.delivered === r.messages),
    totalDeadLettered: sum(runs.map((r) => r.deadLettered)),
    totalFailed: sum(runs.map((r) => r.failed)),
    totalRedelivered: sum(runs.map((r) => r.redelivered)),
    totalClientErrors: sum(runs.map((r) => r.clientErrors)),
    serverPeakRssBytes: rss.length > 0 ? Math.max(...rss) : null,
    avgServerCpuPercent: cpu.length > 0 ? average(cpu) : null,
    avgClientCpuPercent: average(runs.map((r) => r.clientCpuPercent)),
    avgOtherCpuPercent: other.length > 0 ? average(other) : null,
    avgServerMainUsPerMessage: known(runs.map((r) => r.serverMainUsPerMessage)),
    avgServerUsPerMessage: serverUs,
    avgClientUsPerMessage: clientUs,
    relativeServerCost:
      serverUs !== null && clientUs && runs.every(longEnoughForRatio) ? serverUs / clientUs : null,
  };
}

/** A run without its in-memory histograms, as it goes into the JSON report. */
export function serializableRun(run: RunResult): Omit<RunResult, 'histograms'> {
  const { histograms: _histograms, ...rest } = run;
  return rest;
}

function longEnoughForRatio(run: RunResult): boolean {
  const serverMs =
    run.serverUsPerMessage === null ? 0 : (run.serverUsPerMessage * run.delivered) / 1000;
  return serverMs >= RATIO_MIN_SERVER_CPU_MS;
}
