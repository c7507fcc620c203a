// What operators read: metrics, health with its reasons and escalations, and the routing
// view with its anomalies. Everything is computed from stored state and maintained
// counters, so every node answers the same and the answers stay fast at any depth.

import type { Config } from '../config.ts';
import { type CurrentState, evaluateEscalations } from '../core/escalation.ts';
import { evaluateHealth, failureRate } from '../core/health.ts';
import { previewTargets } from '../core/routing.ts';
import type { Agent, QueueGauges } from '../core/types.ts';
import type { Gauges, RouteCount, Store } from '../store/store.ts';
import type { Clock } from './clock.ts';
import type {
  RoutingAnomaly,
  RoutingForType,
  RoutingOverview,
  SwarmHealth,
  SwarmMetrics,
} from './contract.ts';
import type { DispatchStatus } from './dispatcher.ts';

/** Per-second rates are over the last minute: recent enough to watch a drill move them. */
const PER_SEC_WINDOW_MS = 60_000;
const CYCLES_CONSIDERED = 10;

export function queueGauges(gauges: Gauges, now: number): QueueGauges {
  return {
    queued: gauges.queued,
    ready: Math.max(0, gauges.queued - gauges.delayed),
    delayed: gauges.delayed,
    inflight: gauges.inflight,
    deadLettered: gauges.deadLettered,
    oldestReadyAgeMs: gauges.oldestReadyAt === null ? 0 : Math.max(0, now - gauges.oldestReadyAt),
  };
}

export class Observer {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly config: Readonly<Config>,
    private readonly startedAt: number,
    private readonly lastPicked: Map<string, string>,
  ) {}

  private staleBefore(now: number): number {
    return now - this.config.staleAfterMs;
  }

  async dispatchStatus(): Promise<DispatchStatus> {
    const raw = await this.store.getMeta('dispatch');
    return raw === null
      ? { lastRunAt: null, lastDelivered: 0, lastFailed: 0 }
      : (JSON.parse(raw) as DispatchStatus);
  }

  async metrics(): Promise<SwarmMetrics> {
    const now = this.clock.now();
    const [counts, { gauges, stats }, window, recent, dispatch] = await Promise.all([
      this.store.agentCounts(this.staleBefore(now)),
      this.store.counts(now),
      this.store.rates(now - this.config.rateWindowMs),
      this.store.rates(now - PER_SEC_WINDOW_MS),
      this.dispatchStatus(),
    ]);

    // Divide by the time the counted rates span. They are the swarm's, not this process's, so
    // they outlive a restart: the span is shorter than the window only for a store that has
    // no rates that old.
    const perSecSpan = Math.max(1000, now - recent.from) / 1000;

    return {
      timestamp: new Date(now).toISOString(),
      staleAfterMs: this.config.staleAfterMs,
      agents: {
        total: counts.total,
        active: counts.live,
        stale: counts.stale,
        byType: counts.byType,
        byStatus: counts.byStatus,
      },
      queue: queueGauges(gauges, now),
      stats,
      rates: {
        windowMs: this.config.rateWindowMs,
        deliveryAttempts: window.deliveryAttempts,
        deliveryFailures: window.deliveryFailures,
        deliveryFailureRate: failureRate(window.deliveryAttempts, window.deliveryFailures),
        deadLetteredInWindow: window.deadLettered,
        enqueuedPerSec: round2(recent.enqueued / perSecSpan),
        deliveredPerSec: round2(recent.delivered / perSecSpan),
      },
      dispatch,
    };
  }

  /** The state escalation compares across cycles, and the health verdict it rests on. */
  async currentState(): Promise<{
    state: CurrentState;
    health: Omit<SwarmHealth, 'escalate' | 'escalations' | 'recoveryCycles'>;
  }> {
    const now = this.clock.now();
    const reachable = await this.store.ping();

    if (!reachable) {
      const verdict = evaluateHealth(
        { ...EMPTY_SNAPSHOT, now, storeReachable: false, dispatcherStartedAt: this.startedAt },
        this.config,
      );
      return {
        state: {
          deadLetteredTotal: 0,
          deadLettered: 0,
          staleAgents: 0,
          failuresElevated: false,
          degraded: true,
        },
        health: {
          healthy: false,
          degraded: true,
          status: verdict.status,
          reasons: verdict.reasons,
          deadLettered: 0,
          staleAgents: 0,
          activeAgents: 0,
          totalAgents: 0,
          queueDepth: 0,
          deliveryFailureRate: 0,
          timestamp: new Date(now).toISOString(),
        },
      };
    }

    const [counts, { gauges, stats }, window, routes, live, dispatch] = await Promise.all([
      this.store.agentCounts(this.staleBefore(now)),
      this.store.counts(now),
      this.store.rates(now - this.config.rateWindowMs),
      this.store.routeCounts(),
      this.store.liveAgents(this.staleBefore(now)),
      this.dispatchStatus(),
    ]);
    const queue = queueGauges(gauges, now);

    const verdict = evaluateHealth(
      {
        now,
        storeReachable: true,
        deadLettered: gauges.deadLettered,
        // "Growing" only while dead letters wait: an emptied queue is not growing.
        deadLetteredInWindow: gauges.deadLettered > 0 ? window.deadLettered : 0,
        staleAgents: counts.stale,
        liveAgents: counts.live,
        deliveryAttempts: window.deliveryAttempts,
        deliveryFailures: window.deliveryFailures,
        oldestReadyAgeMs: queue.oldestReadyAgeMs,
        unroutablePending: unroutable(routes, live).reduce((sum, r) => sum + r.pending, 0),
        readyPending: queue.ready,
        dispatcherLastRunAt: dispatch.lastRunAt,
        dispatcherStartedAt: this.startedAt,
      },
      this.config,
    );

    return {
      state: {
        deadLetteredTotal: stats.deadLettered,
        deadLettered: gauges.deadLettered,
        staleAgents: counts.stale,
        failuresElevated: verdict.failuresElevated,
        degraded: verdict.status !== 'healthy',
      },
      health: {
        // `healthy` answers "is it serving?" (200), as the contract's example pairs
        // healthy: true with degraded: true; `status` carries the finer verdict.
        healthy: verdict.status !== 'unhealthy',
        degraded: verdict.status === 'degraded',
        status: verdict.status,
        reasons: verdict.reasons,
        deadLettered: gauges.deadLettered,
        staleAgents: counts.stale,
        activeAgents: counts.live,
        totalAgents: counts.total,
        queueDepth: gauges.queued + gauges.inflight,
        deliveryFailureRate: verdict.deliveryFailureRate,
        timestamp: new Date(now).toISOString(),
      },
    };
  }

  async health(): Promise<SwarmHealth> {
    const { state, health } = await this.currentState();
    const { cycles, total } = await this.store.recentCycles(CYCLES_CONSIDERED).catch(() => ({
      cycles: [],
      total: 0,
    }));
    const escalations = evaluateEscalations(cycles, state);

    return { ...health, escalate: escalations.length > 0, escalations, recoveryCycles: total };
  }

  async routing(
    type: string | undefined,
    count: number,
  ): Promise<RoutingOverview | RoutingForType> {
    const now = this.clock.now();
    const [counts, live, routes, inflight, subscriptions] = await Promise.all([
      this.store.agentCounts(this.staleBefore(now)),
      this.store.liveAgents(this.staleBefore(now)),
      this.store.routeCounts(),
      this.store.inflightByAgent(),
      this.store.subscriptions(),
    ]);
    const stale = await this.store.listAgents({
      stale: true,
      staleBefore: this.staleBefore(now),
      limit: 1000,
    });
    const staleTypes = new Map(stale.items.map((agent) => [agent.id, agent.type]));
    const staleIds = new Set(staleTypes.keys());
    const anomalies = findAnomalies(routes, live, inflight, staleIds, subscriptions);

    const forType = (t: string) => {
      const agents = live.filter((agent) => agent.type === t);
      const candidates = agents.map((agent) => ({
        id: agent.id,
        inflight: inflight.get(agent.id) ?? 0,
      }));
      const pending = routes.find((r) => r.kind === 'type' && r.key === t)?.pending ?? 0;
      return {
        targets: previewTargets(candidates, this.lastPicked.get(t), count),
        live: agents.length,
        pending,
      };
    };

    if (type !== undefined) {
      const view = forType(type);
      return {
        agentType: type,
        targets: view.targets,
        live: view.live,
        pending: view.pending,
        anomalies: anomalies.filter(
          (a) => a.type === type || (a.agentId !== undefined && staleTypes.get(a.agentId) === type),
        ),
      };
    }

    const types = new Set(Object.keys(counts.byType));
    for (const route of routes) if (route.kind === 'type') types.add(route.key);

    return {
      strategy: 'least-inflight, round robin on ties; stale and offline agents excluded',
      types: [...types]
        .sort()
        .map((t) => ({ type: t, agents: counts.byType[t] ?? 0, ...forType(t) })),
      anomalies,
    };
  }
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

const EMPTY_SNAPSHOT = {
  deadLettered: 0,
  deadLetteredInWindow: 0,
  staleAgents: 0,
  liveAgents: 0,
  deliveryAttempts: 0,
  deliveryFailures: 0,
  oldestReadyAgeMs: 0,
  unroutablePending: 0,
  readyPending: 0,
  dispatcherLastRunAt: null,
};

/** Role and capability routes that hold pending entries and have no live agent to take them. */
function unroutable(routes: RouteCount[], live: Agent[]): RouteCount[] {
  const types = new Set(live.map((agent) => agent.type));
  const capabilities = new Set(live.flatMap((agent) => agent.capabilities));

  return routes.filter(
    (route) =>
      route.pending > 0 &&
      ((route.kind === 'type' && !types.has(route.key)) ||
        (route.kind === 'capability' && !capabilities.has(route.key))),
  );
}

function findAnomalies(
  routes: RouteCount[],
  live: Agent[],
  inflight: Map<string, number>,
  staleIds: Set<string>,
  subscriptions: Record<string, string[]>,
): RoutingAnomaly[] {
  const anomalies: RoutingAnomaly[] = [];

  for (const agentId of staleIds) {
    const held =
      (inflight.get(agentId) ?? 0) +
      (routes.find((r) => r.kind === 'agent' && r.key === agentId)?.pending ?? 0);
    if (held > 0) {
      anomalies.push({
        kind: 'stale_target',
        agentId,
        count: held,
        message: `stale agent ${agentId} holds ${held} pending or leased ${held === 1 ? 'message' : 'messages'}`,
      });
    }
  }

  for (const route of unroutable(routes, live)) {
    anomalies.push({
      kind: 'no_live_agents',
      ...(route.kind === 'type' ? { type: route.key } : { capability: route.key }),
      count: route.pending,
      message: `${route.pending} pending messages for ${route.kind}:${route.key} and no live agent`,
    });
  }

  for (const [topic, agentIds] of Object.entries(subscriptions)) {
    for (const agentId of agentIds) {
      if (!staleIds.has(agentId)) continue;
      anomalies.push({
        kind: 'stale_subscriber',
        agentId,
        topic,
        message: `stale agent ${agentId} is still subscribed to ${topic}`,
      });
    }
  }

  return anomalies;
}
