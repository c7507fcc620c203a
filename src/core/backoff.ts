// Retry delay: capped exponential with "equal jitter" — half the step is fixed so retries
// never bunch at zero, half is random so a burst of failures spreads out instead of
// retrying in lockstep.

/** A finite delay in [0, capMs] for any attempt number (1 = the first retry). */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: () => number = Math.random,
): number {
  const safeAttempt = Number.isFinite(attempt) ? Math.max(1, Math.floor(attempt)) : 1;

  // 2^52 overflows nothing and exceeds any cap, so larger exponents change nothing.
  const exponent = Math.min(safeAttempt - 1, 52);
  const step = Math.min(capMs, baseMs * 2 ** exponent);
  if (!Number.isFinite(step) || step <= 0) return 0;

  const jitter = Math.min(1, Math.max(0, random()));
  return Math.min(capMs, Math.floor(step / 2 + (step / 2) * jitter));
}
