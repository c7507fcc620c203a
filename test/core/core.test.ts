import { describe, expect, it } from 'vitest';

import { backoffDelay } from '../../src/core/backoff.ts';
import { type CycleSnapshot, evaluateEscalations } from '../../src/core/escalation.ts';
import { pickOrder, previewTargets } from '../../src/core/routing.ts';
import { parseTarget } from '../../src/core/targets.ts';

describe('backoff', () => {
  it('grows exponentially from the base and never passes the cap', () => {
    const max = () => 1;
    expect(backoffDelay(1, 1000, 30_000, max)).toBe(1000);
    expect(backoffDelay(2, 1000, 30_000, max)).toBe(2000);
    expect(backoffDelay(5, 1000, 30_000, max)).toBe(16_000);
    expect(backoffDelay(6, 1000, 30_000, max)).toBe(30_000);
  });

  it('jitters within the upper half of each step', () => {
    expect(backoffDelay(3, 1000, 30_000, () => 0)).toBe(2000);
    expect(backoffDelay(3, 1000, 30_000, () => 0.5)).toBe(3000);
  });

  it('gives a finite delay within [0, cap] for any attempt number', () => {
    for (const attempt of [
      0,
      -3,
      1e6,
      Number.MAX_SAFE_INTEGER,
      Number.POSITIVE_INFINITY,
      Number.NaN,
    ]) {
      const delay = backoffDelay(attempt, 1000, 30_000);
      expect(Number.isFinite(delay)).toBe(true);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThanOrEqual(30_000);
    }
    expect(backoffDelay(1e9, 0, 30_000)).toBe(0);
  });
});

describe('targets', () => {
  it('parses agent ids, roles, capabilities and broadcast', () => {
    expect(parseTarget('analyst-1')).toEqual({ kind: 'agent', key: 'analyst-1' });
    expect(parseTarget('type:analyst')).toEqual({ kind: 'type', key: 'analyst' });
    expect(parseTarget('role:risk_manager')).toEqual({ kind: 'type', key: 'risk_manager' });
    expect(parseTarget('capability:options')).toEqual({ kind: 'capability', key: 'options' });
    expect(parseTarget('broadcast')).toEqual({ kind: 'broadcast' });
  });

  it('rejects targets that name nothing', () => {
    expect(() => parseTarget('type:')).toThrow(/invalid agent type/);
    expect(() => parseTarget('type:Bad Type')).toThrow();
    expect(() => parseTarget('has space')).toThrow();
    expect(() => parseTarget('capability:')).toThrow();
  });
});

describe('routing choice', () => {
  it('prefers the agent with the fewest in-flight messages', () => {
    const order = pickOrder(
      [
        { id: 'a', inflight: 3 },
        { id: 'b', inflight: 1 },
        { id: 'c', inflight: 2 },
      ],
      undefined,
    );
    expect(order.map((c) => c.id)).toEqual(['b', 'c', 'a']);
  });

  it('rotates among equally loaded agents', () => {
    const equal = [
      { id: 'a', inflight: 0 },
      { id: 'b', inflight: 0 },
      { id: 'c', inflight: 0 },
    ];
    expect(pickOrder(equal, 'a')[0]?.id).toBe('b');
    expect(pickOrder(equal, 'c')[0]?.id).toBe('a');
    expect(previewTargets(equal, undefined, 5)).toEqual(['a', 'b', 'c', 'a', 'b']);
  });

  it('previews by simulated load without changing the candidates', () => {
    const candidates = [
      { id: 'a', inflight: 2 },
      { id: 'b', inflight: 0 },
    ];
    expect(previewTargets(candidates, undefined, 4)).toEqual(['b', 'b', 'a', 'b']);
    expect(candidates[1]?.inflight).toBe(0);
  });
});

describe('escalation', () => {
  const cycle = (at: number, state: Partial<CycleSnapshot>): CycleSnapshot => ({
    at,
    action: 'requeue-dlq',
    deadLetteredTotal: 0,
    deadLettered: 1,
    staleAgents: 0,
    failuresElevated: false,
    degraded: false,
    ...state,
  });

  it('escalates a condition that survived two consecutive cycles', () => {
    const cycles = [cycle(1, { deadLetteredTotal: 5 }), cycle(2, { deadLetteredTotal: 8 })];
    const escalations = evaluateEscalations(cycles, {
      deadLetteredTotal: 11,
      deadLettered: 4,
      staleAgents: 0,
      failuresElevated: false,
      degraded: false,
    });
    expect(escalations).toEqual([{ condition: 'dead_letters_rising', cycles: 2, since: 1 }]);
  });

  it('does not escalate after one cycle', () => {
    const escalations = evaluateEscalations([cycle(1, { degraded: true })], {
      deadLetteredTotal: 0,
      deadLettered: 0,
      staleAgents: 0,
      failuresElevated: false,
      degraded: true,
    });
    expect(escalations).toEqual([]);
  });

  it('clears as soon as the condition does', () => {
    const cycles = [cycle(1, { staleAgents: 2 }), cycle(2, { staleAgents: 2 })];
    const now = { deadLetteredTotal: 0, deadLettered: 0, failuresElevated: false, degraded: false };
    expect(evaluateEscalations(cycles, { ...now, staleAgents: 2 })).toHaveLength(1);
    expect(evaluateEscalations(cycles, { ...now, staleAgents: 1 })).toEqual([]);
  });
});
