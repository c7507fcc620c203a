// Latency histograms. HdrHistogram keeps every sample at 3 significant digits in a fixed
// footprint, so a million end-to-end latencies cost the same memory as a thousand and the
// percentiles are exact to 0.1%, unlike averaging or sorting a sampled array.

import { build, type Histogram } from 'hdr-histogram-js';
import { toMicros } from './clock.ts';

// One hour in microseconds: anything slower is a hung run, clamped rather than thrown away.
const HIGHEST_US = 3_600_000_000;

/** Percentiles of one histogram, in microseconds. */
export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export const EMPTY_SUMMARY: LatencySummary = { count: 0, p50: 0, p95: 0, p99: 0, max: 0, mean: 0 };

export class LatencyHistogram {
  private readonly hist: Histogram;

  constructor() {
    this.hist = build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: HIGHEST_US,
      numberOfSignificantValueDigits: 3,
    });
  }

  /** Records a duration given in (fractional) milliseconds. */
  recordMs(ms: number): void {
    this.hist.recordValue(Math.min(HIGHEST_US, toMicros(ms)));
  }

  recordMicros(us: number): void {
    this.hist.recordValue(Math.min(HIGHEST_US, Math.max(0, Math.round(us))));
  }

  get count(): number {
    return this.hist.totalCount;
  }

  /** Adds another histogram's samples: pooled percentiles across runs, not averaged ones. */
  add(other: LatencyHistogram): void {
    this.hist.add(other.hist);
  }

  summary(): LatencySummary {
    if (this.hist.totalCount === 0) return { ...EMPTY_SUMMARY };

    // A percentile is reported as the top of its bucket, which can sit a hair above the
    // largest sample; clamp so p99 never reads higher than max.
    const max = this.hist.maxValue;
    const at = (p: number): number => Math.min(max, this.hist.getValueAtPercentile(p));

    return {
      count: this.hist.totalCount,
      p50: at(50),
      p95: at(95),
      p99: at(99),
      max,
      mean: Math.round(this.hist.mean),
    };
  }
}
