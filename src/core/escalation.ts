// Escalation, from the operator guide: each requeue-dlq or prune-stale call is a recovery
// cycle. A snapshot is recorded as each cycle starts; a condition that held at the start of
// the last two cycles and still holds now has survived two cycles, and is escalated.

import type { Escalation } from '../engine/contract.ts';

export interface CycleSnapshot {
  at: number;
  action: string;
  /** Cumulative dead-letterings (stats.deadLettered): rising means new dead letters. */
  deadLetteredTotal: number;
  /** The dead-letter queue's depth: an emptied queue is not rising, whatever came before. */
  deadLettered: number;
  staleAgents: number;
  failuresElevated: boolean;
  degraded: boolean;
}

export type CurrentState = Omit<CycleSnapshot, 'at' | 'action'>;

type Condition = Escalation['condition'];

/** Did `condition` hold across the step from `prev` to `next`? */
function heldAcross(condition: Condition, prev: CurrentState, next: CurrentState): boolean {
  switch (condition) {
    case 'dead_letters_rising':
      return next.deadLettered > 0 && next.deadLetteredTotal > prev.deadLetteredTotal;
    case 'stale_agents_not_fewer':
      return prev.staleAgents > 0 && next.staleAgents > 0 && next.staleAgents >= prev.staleAgents;
    case 'failures_elevated':
      return prev.failuresElevated && next.failuresElevated;
    case 'degraded':
      return prev.degraded && next.degraded;
  }
}

const CONDITIONS: Condition[] = [
  'dead_letters_rising',
  'stale_agents_not_fewer',
  'failures_elevated',
  'degraded',
];

/**
 * `cycles` are the recorded snapshots, oldest first; `current` is the state now. Each step
 * from one cycle's start to the next (and from the last to now) is one cycle survived. A
 * condition escalates when it held across the `threshold` most recent steps, and clears as
 * soon as the latest step no longer shows it.
 */
export function evaluateEscalations(
  cycles: CycleSnapshot[],
  current: CurrentState,
  threshold = 2,
): Escalation[] {
  const states: CurrentState[] = [...cycles, current];
  const escalations: Escalation[] = [];

  for (const condition of CONDITIONS) {
    let streak = 0;
    for (let k = states.length - 1; k >= 1; k--) {
      if (!heldAcross(condition, states[k - 1] as CurrentState, states[k] as CurrentState)) break;
      streak += 1;
    }

    if (streak >= threshold) {
      const since = (cycles[cycles.length - streak] as CycleSnapshot).at;
      escalations.push({ condition, cycles: streak, since });
    }
  }

  return escalations;
}
