// The JSON report. Its first keys are the original owokx benchmark's (`config`, `summary.avg*`,
// `runs[].delivered|deadLettered|queuedAfterDispatch`), so scripts written for that benchmark
// keep working; everything else is added alongside, never renamed.

import type { LatencySummary } from './histogram.ts';
import type { ProfileSummary } from './profile.ts';
import type { Comparison, MachineInfo, WorkloadConfig } from './results.ts';
import type { RunResult } from './run.ts';
import type { Summary } from './summary.ts';
import type { Verdict } from './verdicts.ts';

export type RunRecord = Omit<RunResult, 'histograms'>;

export interface ReportConfig extends WorkloadConfig {
  baseUrl: string;
  runs: number;
  /** The original's name for messages per dispatch call; here the enqueue batch size. */
  dispatchLimit: number;
  waitMs: number;
  warmup: number;
  warmupMs: number;
  metricsIntervalMs: number;
  timeoutMs: number;
  /** Our own server's extra node flags (profiling), so a recorded run says how it ran. */
  serverNodeArgs: string[];
  serverEnv: Record<string, string>;
}

export interface BacklogInfo {
  messages: number;
  agentType: string;
  preloadMs: number;
  perSecond: number;
  serverPeakRssBytes: number | null;
  /** GET /swarm/metrics timed 20 times in a row with no load, before and after the preload. */
  metricsAtRestUs: { empty: LatencySummary; atDepth: LatencySummary };
  /** Left on a measured server after cleanup; always 0 unless the drain failed. */
  leftAfterCleanup: number | null;
}

export interface ServerInfo {
  own: boolean;
  pid: number | null;
  /** The highest resident set seen across preload and runs. */
  peakRssBytes: number | null;
  warnings: number | null;
  dataDir: string | null;
}

export interface BenchReport {
  config: ReportConfig;
  summary: Summary;
  runs: RunRecord[];
  generatedAt: string;

  deliveryRequest: 'poll' | 'dispatch';
  /** With --backlog: the same runs on the empty store, measured just before the preload. */
  empty: { summary: Summary; runs: RunRecord[] } | null;
  backlog: BacklogInfo | null;
  /** Unmeasured warm-up: messages, runs and time in all; the last run's delivery rate. */
  warmup: { messages: number; runs: number; ms: number; deliveryPerSecond: number } | null;
  server: ServerInfo;
  comparison: Comparison | null;
  verdicts: Verdict[];
  machine: MachineInfo;
  commit: string | null;
  /** With --profile: where our own server spent its CPU time. */
  profile: ProfileSummary | null;
  /** Where --record wrote this report, relative to the repository. */
  recordedAs: string | null;
}

/** True when nothing in the report is a failure: everything delivered, nothing dead. */
export function reportPassed(report: BenchReport): boolean {
  const clean = (s: Summary): boolean => s.allDelivered && s.totalDeadLettered === 0;
  return clean(report.summary) && (report.empty === null || clean(report.empty.summary));
}
