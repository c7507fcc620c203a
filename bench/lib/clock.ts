// One clock for every timestamp the benchmark takes. Wall-clock epoch milliseconds with
// sub-millisecond resolution: performance.now() alone restarts at zero in every worker thread,
// while timeOrigin + now() is comparable across threads of the same process, so a message
// stamped by a sender and acknowledged by an agent thread yields a true end-to-end latency.

import { performance } from 'node:perf_hooks';

const origin = performance.timeOrigin;

/** Epoch milliseconds, fractional (microsecond resolution). */
export function nowMs(): number {
  return origin + performance.now();
}

/** Milliseconds to whole microseconds, the unit every histogram records. */
export function toMicros(ms: number): number {
  return Math.max(0, Math.round(ms * 1000));
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));
