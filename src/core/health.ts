// Health evaluation: a pure function of a snapshot of stored state, so the same numbers give
// the same verdict on every node and in every test.

import type { HealthReason } from '../engine/contract.ts';

export interface HealthSnapshot {
  now: number;
  storeReachable: boolean;
  deadLettered: number;
  deadLetteredInWindow: number;
  staleAgents: number;
  liveAgents: number;
  deliveryAttempts: number;
  deliveryFailures: number;
  oldestReadyAgeMs: number;
  /** Pending messages addressed to a type or capability that no live agent has. */
  unroutablePending: number;
  /** Ready pending messages (any target): with no live agent at all nothing can move. */
  readyPending: number;
  /** When the dispatcher loop last finished a pass; null before the first. */
  dispatcherLastRunAt: number | null;
  dispatcherStartedAt: number;
}

export interface HealthThresholds {
  failureRateThreshold: number;
  failureMinAttempts: number;
  queuePressureMs: number;
  dispatcherStallMs: number;
}

export interface HealthVerdict {
  status: 'healthy' | 'degraded' | 'unhealthy';
  reasons: HealthReason[];
  deliveryFailureRate: number;
  failuresElevated: boolean;
}

const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;

export const failureRate = (attempts: number, failures: number): number =>
  attempts === 0 ? 0 : failures / attempts;

export function evaluateHealth(s: HealthSnapshot, t: HealthThresholds): HealthVerdict {
  const reasons: HealthReason[] = [];
  const rate = failureRate(s.deliveryAttempts, s.deliveryFailures);

  if (!s.storeReachable) {
    reasons.push({
      code: 'store_unreachable',
      message: 'the store does not answer',
      value: 1,
      threshold: 0,
    });
    return { status: 'unhealthy', reasons, deliveryFailureRate: rate, failuresElevated: false };
  }

  if (s.deadLettered > 0) {
    reasons.push({
      code: 'dead_letters_present',
      message: `${plural(s.deadLettered, 'dead letter')} ${s.deadLettered === 1 ? 'waits' : 'wait'} for requeue or purge`,
      value: s.deadLettered,
      threshold: 0,
    });
  }

  if (s.deadLetteredInWindow > 0) {
    reasons.push({
      code: 'dead_letters_growing',
      message: `${plural(s.deadLetteredInWindow, 'message')} dead-lettered in the rate window`,
      value: s.deadLetteredInWindow,
      threshold: 0,
    });
  }

  if (s.staleAgents > 0) {
    reasons.push({
      code: 'stale_agents',
      message: `${plural(s.staleAgents, 'agent')} stopped heartbeating`,
      value: s.staleAgents,
      threshold: 0,
    });
  }

  const failuresElevated =
    s.deliveryAttempts >= t.failureMinAttempts && rate > t.failureRateThreshold;
  if (failuresElevated) {
    reasons.push({
      code: 'delivery_failures_elevated',
      message: `${(rate * 100).toFixed(1)}% of ${s.deliveryAttempts} delivery attempts failed`,
      value: rate,
      threshold: t.failureRateThreshold,
    });
  }

  if (s.oldestReadyAgeMs > t.queuePressureMs) {
    reasons.push({
      code: 'queue_pressure',
      message: `the oldest ready message has waited ${Math.round(s.oldestReadyAgeMs / 1000)} s`,
      value: s.oldestReadyAgeMs,
      threshold: t.queuePressureMs,
    });
  }

  const stranded = s.liveAgents === 0 ? s.readyPending : s.unroutablePending;
  if (stranded > 0) {
    reasons.push({
      code: 'no_live_agents',
      message: `${plural(stranded, 'pending message')} with no live agent to take ${stranded === 1 ? 'it' : 'them'}`,
      value: stranded,
      threshold: 0,
    });
  }

  const lastBeat = s.dispatcherLastRunAt ?? s.dispatcherStartedAt;
  if (s.now - lastBeat > t.dispatcherStallMs) {
    reasons.push({
      code: 'dispatcher_stalled',
      message: `the dispatcher has not finished a pass for ${Math.round((s.now - lastBeat) / 1000)} s`,
      value: s.now - lastBeat,
      threshold: t.dispatcherStallMs,
    });
  }

  return {
    status: reasons.length === 0 ? 'healthy' : 'degraded',
    reasons,
    deliveryFailureRate: rate,
    failuresElevated,
  };
}
