// The guide's Drill 1 (dead-letter recovery) and Drill 2 (stale agent cleanup), end to end:
// confirm the condition, act, wait for deliveries to settle, confirm the decrease, and repeat
// for up to `cycles` recovery cycles. A condition that survives them is an escalation, exactly
// as the guide's Escalation Guidance asks: the drill says so and the command exits 1.

import type { SwarmClient } from '../client/index.ts';
import type {
  DispatchResult,
  Escalation,
  PruneResult,
  RequeueResult,
  RoutingAnomaly,
} from '../engine/contract.ts';

export type DrillKind = 'dlq' | 'stale';

export interface DrillOptions {
  /** requeue-dlq `limit` per cycle (the guide's 50). */
  limit: number;
  /** dispatch `limit` per cycle (the guide's 200). */
  dispatchLimit: number;
  /** prune-stale `staleMs` (the guide's 600000). */
  staleMs: number;
  cycles: number;
  /** How long to wait after acting for deliveries and re-dead-letterings to show. */
  settleMs: number;
}

export const DRILL_DEFAULTS: DrillOptions = {
  limit: 50,
  dispatchLimit: 200,
  staleMs: 600_000,
  cycles: 2,
  settleMs: 3_000,
};

/** The numbers an operator compares before and after: the guide's confirm steps. */
export interface DrillSnapshot {
  at: number;
  status: 'healthy' | 'degraded' | 'unhealthy';
  deadLettered: number;
  queued: number;
  inflight: number;
  /** queued + inflight: what is still on its way to an agent. */
  queueDepth: number;
  staleAgents: number;
  totalAgents: number;
  anomalies: RoutingAnomaly[];
}

export interface DrillCycle {
  cycle: number;
  before: DrillSnapshot;
  after: DrillSnapshot;
  requeue?: RequeueResult;
  dispatch?: DispatchResult;
  prune?: PruneResult;
  settledMs: number;
  recovered: boolean;
}

export type DrillOutcome = 'nothing_to_recover' | 'recovered' | 'escalate';

/** The documented --json answer of `swarmctl drill dlq|stale` (docs/operations.md). */
export interface DrillResult {
  drill: DrillKind;
  url: string;
  outcome: DrillOutcome;
  /** Plain words: "RECOVERED: …", "ESCALATE: …" or "nothing to recover: …". */
  message: string;
  /** Things worth knowing that do not change the outcome (skipped entries, kept agents). */
  notes: string[];
  options: DrillOptions;
  before: DrillSnapshot;
  after: DrillSnapshot;
  cycles: DrillCycle[];
  /** The server's own escalation record, from GET /swarm/health after the drill. */
  serverEscalate: boolean;
  serverEscalations: Escalation[];
  startedAt: string;
  durationMs: number;
}

/** Progress for humans while the drill runs; a no-op under --json. */
export type DrillLog = (event: DrillEvent) => void;

export type DrillEvent =
  | { kind: 'before'; snapshot: DrillSnapshot }
  | { kind: 'action'; cycle: number; what: string; result: unknown }
  | { kind: 'cycle'; cycle: DrillCycle };

const SETTLE_POLL_MS = 150;

const STALE_ANOMALIES = new Set(['stale_target', 'stale_subscriber']);

export async function snapshot(client: SwarmClient): Promise<DrillSnapshot> {
  const [metrics, health, routing] = await Promise.all([
    client.metrics(),
    client.swarmHealth(),
    client.routing(),
  ]);

  return {
    at: Date.now(),
    status: health.status,
    deadLettered: metrics.queue.deadLettered,
    queued: metrics.queue.queued,
    inflight: metrics.queue.inflight,
    queueDepth: metrics.queue.queued + metrics.queue.inflight,
    staleAgents: metrics.agents.stale,
    totalAgents: metrics.agents.total,
    anomalies: routing.anomalies,
  };
}

export async function runDrill(
  kind: DrillKind,
  client: SwarmClient,
  url: string,
  options: DrillOptions,
  log: DrillLog = () => {},
): Promise<DrillResult> {
  const started = Date.now();
  const before = await snapshot(client);
  const cycles: DrillCycle[] = [];
  const notes: string[] = [];

  log({ kind: 'before', snapshot: before });

  const finish = async (outcome: DrillOutcome, message: string): Promise<DrillResult> => {
    const after = cycles.at(-1)?.after ?? before;
    const health = await client.swarmHealth();

    return {
      drill: kind,
      url,
      outcome,
      message,
      notes,
      options,
      before,
      after,
      cycles,
      serverEscalate: health.escalate,
      serverEscalations: health.escalations,
      startedAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
    };
  };

  // Step 1 of both drills: confirm the condition is there before touching anything.
  if (kind === 'dlq' && before.deadLettered === 0) {
    return finish('nothing_to_recover', 'nothing to recover: no dead letters');
  }
  if (kind === 'stale' && before.staleAgents === 0) {
    return finish('nothing_to_recover', 'nothing to recover: no stale agents');
  }

  // Stale agents that have not been silent for --stale-ms are kept by every prune: cycles
  // would change nothing, yet each would count as a recovery cycle on the server.
  if (kind === 'stale') {
    const preview = await client.pruneStale({ staleMs: options.staleMs, dryRun: true });
    if (preview.removed === 0) {
      return finish(
        'nothing_to_recover',
        `nothing to prune yet: ${before.staleAgents} stale agent(s), none without a heartbeat for --stale-ms ${options.staleMs}; wait, or pass a smaller --stale-ms`,
      );
    }
  }

  for (let cycle = 1; cycle <= options.cycles; cycle++) {
    const cycleBefore = cycles.at(-1)?.after ?? before;
    const done =
      kind === 'dlq'
        ? await dlqCycle(client, options, cycle, cycleBefore, before, log, notes)
        : await staleCycle(client, options, cycle, cycleBefore, log, notes);

    cycles.push(done);
    log({ kind: 'cycle', cycle: done });

    if (done.recovered) {
      return finish('recovered', recoveredMessage(kind, before, done.after, cycle));
    }
  }

  return finish('escalate', escalateMessage(kind, before, cycles.at(-1)?.after ?? before, options));
}

/** Drill 1, one cycle: requeue-dlq, dispatch, then wait for dead letters and depth to fall. */
async function dlqCycle(
  client: SwarmClient,
  options: DrillOptions,
  cycle: number,
  cycleBefore: DrillSnapshot,
  drillBefore: DrillSnapshot,
  log: DrillLog,
  notes: string[],
): Promise<DrillCycle> {
  const requeue = await client.requeueDlq({ limit: options.limit });
  log({ kind: 'action', cycle, what: `requeue-dlq {"limit":${options.limit}}`, result: requeue });

  // One note per reason, not per entry: a pruned agent can leave hundreds behind.
  const byWhy = new Map<string, string[]>();
  for (const s of requeue.skipped) byWhy.set(s.why, [...(byWhy.get(s.why) ?? []), s.queueId]);
  for (const [why, ids] of byWhy) {
    const shown = ids.slice(0, 5).join(', ') + (ids.length > 5 ? `, … ${ids.length - 5} more` : '');
    const hint = why.includes('not registered')
      ? '; they cannot go back until that agent registers again, or purge them (swarmctl dlq purge --reason …)'
      : '';
    notes.push(
      `cycle ${cycle}: ${ids.length} dead letter(s) stayed: ${why} (queue ids ${shown})${hint}`,
    );
  }

  const dispatch = await client.dispatch({ limit: options.dispatchLimit });
  log({
    kind: 'action',
    cycle,
    what: `dispatch {"limit":${options.dispatchLimit}}`,
    result: dispatch,
  });

  // Recovered means the requeued entries reached agents: nothing is dead-lettered any more and
  // the queue is back to (at most) the depth it had before the drill. Requeued entries that only
  // sit pending, or come back as dead letters, are the condition persisting.
  const isRecovered = (deadLettered: number, depth: number): boolean =>
    deadLettered === 0 && depth <= drillBefore.queueDepth;

  const settledMs = await settle(client, options.settleMs, (m) =>
    isRecovered(m.queue.deadLettered, m.queue.queued + m.queue.inflight),
  );
  const after = await snapshot(client);

  return {
    cycle,
    before: cycleBefore,
    after,
    requeue,
    dispatch,
    settledMs,
    recovered: isRecovered(after.deadLettered, after.queueDepth),
  };
}

/** Drill 2, one cycle: prune-stale, then confirm stale count and stale anomalies are gone. */
async function staleCycle(
  client: SwarmClient,
  options: DrillOptions,
  cycle: number,
  cycleBefore: DrillSnapshot,
  log: DrillLog,
  notes: string[],
): Promise<DrillCycle> {
  const prune = await client.pruneStale({ staleMs: options.staleMs });
  log({ kind: 'action', cycle, what: `prune-stale {"staleMs":${options.staleMs}}`, result: prune });

  const settledMs = await settle(client, options.settleMs, (m) => m.agents.stale === 0);
  const after = await snapshot(client);
  const staleAnomalies = after.anomalies.filter((a) => STALE_ANOMALIES.has(a.kind)).length;

  if (after.staleAgents > 0 && prune.removed < cycleBefore.staleAgents) {
    notes.push(
      `cycle ${cycle}: ${after.staleAgents} stale agent(s) had no heartbeat for less than --stale-ms ${options.staleMs} and were kept`,
    );
  }

  const fresh = after.anomalies.filter((a) => a.kind === 'no_live_agents');
  if (fresh.length > 0 && prune.removed > 0) {
    notes.push(
      `cycle ${cycle}: after pruning, ${fresh.length} target(s) have pending messages and no live agent`,
    );
  }

  return {
    cycle,
    before: cycleBefore,
    after,
    prune,
    settledMs,
    recovered: after.staleAgents === 0 && staleAnomalies === 0,
  };
}

type Metrics = Awaited<ReturnType<SwarmClient['metrics']>>;

/**
 * Polls the metrics until `done` holds or `maxMs` passes, and says how long it waited. Pull
 * agents take a poll interval to pick requeued work up, so one immediate look would mislead.
 */
async function settle(
  client: SwarmClient,
  maxMs: number,
  done: (m: Metrics) => boolean,
): Promise<number> {
  const start = Date.now();

  while (true) {
    const metrics = await client.metrics();
    const waited = Date.now() - start;
    if (done(metrics) || waited >= maxMs) return waited;

    await sleep(Math.min(SETTLE_POLL_MS, maxMs - waited));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function cyclesText(n: number): string {
  return `${n} recovery cycle${n === 1 ? '' : 's'}`;
}

function recoveredMessage(
  kind: DrillKind,
  before: DrillSnapshot,
  after: DrillSnapshot,
  cycles: number,
): string {
  if (kind === 'dlq') {
    return `RECOVERED: dead letters ${before.deadLettered} → ${after.deadLettered}, queue depth ${before.queueDepth} → ${after.queueDepth} after ${cyclesText(cycles)}`;
  }
  return `RECOVERED: stale agents ${before.staleAgents} → ${after.staleAgents}, routing anomalies ${before.anomalies.length} → ${after.anomalies.length} after ${cyclesText(cycles)}`;
}

function escalateMessage(
  kind: DrillKind,
  before: DrillSnapshot,
  after: DrillSnapshot,
  options: DrillOptions,
): string {
  const counts = `dead letters ${before.deadLettered} → ${after.deadLettered}, queue depth ${before.queueDepth} → ${after.queueDepth}`;

  // Dead letters gone but the queue deeper: the requeued messages found no agent to take them.
  if (kind === 'dlq' && after.deadLettered === 0) {
    return `ESCALATE: requeued messages were still undelivered after ${cyclesText(options.cycles)} (${counts}); check swarmctl routing for live agents`;
  }
  if (kind === 'dlq') {
    return `ESCALATE: dead letters persisted after ${cyclesText(options.cycles)} (${counts})`;
  }
  return `ESCALATE: stale agents persisted after ${cyclesText(options.cycles)} (stale agents ${before.staleAgents} → ${after.staleAgents}, routing anomalies ${before.anomalies.length} → ${after.anomalies.length})`;
}
