// GET /metrics: the Prometheus view of the same numbers GET /swarm/metrics reports. Each app has
// its own prom-client Registry (tests and embedders build several apps in one process), and the
// swarm's gauges are read at scrape time through collect() callbacks: one api.metrics() and one
// api.swarmHealth() per scrape, shared by every collector, instead of one per metric.

import type { FastifyReply, FastifyRequest } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { STAT_NAMES, type Stats } from '../core/types.ts';
import type { SwarmApi, SwarmHealth, SwarmMetrics } from '../engine/contract.ts';

/** The `event` label of owokx_messages_total for each durable counter. */
const EVENT_OF: Record<keyof Stats, string> = {
  enqueued: 'enqueued',
  delivered: 'delivered',
  failed: 'failed',
  retried: 'retried',
  deadLettered: 'dead_lettered',
  expired: 'expired',
  requeued: 'requeued',
  deduplicated: 'deduplicated',
  purged: 'purged',
};

const HEALTH_STATES = ['healthy', 'degraded', 'unhealthy'] as const;

// From a 1 ms enqueue to a 30 s long poll.
const DURATION_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

interface Snapshot {
  metrics: SwarmMetrics;
  health: SwarmHealth;
}

export interface HttpMetrics {
  registry: Registry;
  /**
   * A route's onResponse hook, bound to its URL template at startup: one observation per
   * request by route, method and status. Templates, never raw URLs: ids in paths would make a
   * series per agent.
   */
  observer(route: string): (request: FastifyRequest, reply: FastifyReply, done: () => void) => void;
  /** For the 404 handler, which has no route of its own: observed as route "unknown". */
  observeNotFound(request: FastifyRequest, reply: FastifyReply): void;
  /** The Prometheus text exposition. */
  render(): Promise<string>;
}

export function createMetrics(api: SwarmApi): HttpMetrics {
  const registry = new Registry();
  const registers = [registry];

  // Collectors of one scrape run in the same tick, so they share one pair of engine reads.
  let pending: Promise<Snapshot> | null = null;
  const snapshot = (): Promise<Snapshot> => {
    pending ??= Promise.all([api.metrics(), api.swarmHealth()])
      .then(([metrics, health]) => ({ metrics, health }))
      .finally(() => {
        pending = null;
      });
    return pending;
  };

  new Gauge({
    name: 'owokx_agents',
    help: 'Registered agents by liveness: active (heartbeating) or stale.',
    labelNames: ['state'],
    registers,
    async collect() {
      const { metrics } = await snapshot();
      this.set({ state: 'active' }, metrics.agents.active);
      this.set({ state: 'stale' }, metrics.agents.stale);
    },
  });

  new Gauge({
    name: 'owokx_agents_by_type',
    help: 'Registered agents by agent type.',
    labelNames: ['type'],
    registers,
    async collect() {
      const { metrics } = await snapshot();
      this.reset();
      for (const [type, count] of Object.entries(metrics.agents.byType)) this.set({ type }, count);
    },
  });

  new Gauge({
    name: 'owokx_agents_by_status',
    help: 'Registered agents by reported status (active, busy, error, offline).',
    labelNames: ['status'],
    registers,
    async collect() {
      const { metrics } = await snapshot();
      this.reset();
      for (const [status, n] of Object.entries(metrics.agents.byStatus)) this.set({ status }, n);
    },
  });

  new Gauge({
    name: 'owokx_queue_depth',
    help: 'Queue entries by state: ready, delayed, inflight (leased) and dead (dead letters).',
    labelNames: ['state'],
    registers,
    async collect() {
      const { queue } = (await snapshot()).metrics;
      this.set({ state: 'ready' }, queue.ready);
      this.set({ state: 'delayed' }, queue.delayed);
      this.set({ state: 'inflight' }, queue.inflight);
      this.set({ state: 'dead' }, queue.deadLettered);
    },
  });

  new Gauge({
    name: 'owokx_queue_oldest_ready_age_seconds',
    help: 'How long the oldest ready entry has waited for delivery.',
    registers,
    async collect() {
      this.set((await snapshot()).metrics.queue.oldestReadyAgeMs / 1000);
    },
  });

  new Counter({
    name: 'owokx_messages_total',
    help: 'Durable delivery counters since the store was created; they survive restarts.',
    labelNames: ['event'],
    registers,
    async collect() {
      const { stats } = (await snapshot()).metrics;
      // The store holds the running totals; the counter is set to them on each scrape.
      this.reset();
      for (const name of STAT_NAMES) this.inc({ event: EVENT_OF[name] }, stats[name]);
    },
  });

  new Gauge({
    name: 'owokx_delivery_failure_rate',
    help: 'Failed delivery attempts over all attempts in the rate window (0 to 1).',
    registers,
    async collect() {
      this.set((await snapshot()).metrics.rates.deliveryFailureRate);
    },
  });

  new Gauge({
    name: 'owokx_swarm_health_status',
    help: 'The swarm health status: 1 for the current one of healthy, degraded, unhealthy.',
    labelNames: ['status'],
    registers,
    async collect() {
      const { health } = await snapshot();
      for (const status of HEALTH_STATES) this.set({ status }, health.status === status ? 1 : 0);
    },
  });

  new Gauge({
    name: 'owokx_store_bytes',
    help: 'Bytes on disk of the store: the database file, and its WAL (started over near 32 MiB).',
    labelNames: ['file'],
    registers,
    collect() {
      const sizes = api.storeFileSizes();
      if (sizes === null) return;
      this.set({ file: 'database' }, sizes.database);
      this.set({ file: 'wal' }, sizes.wal);
    },
  });

  new Gauge({
    name: 'owokx_swarm_escalate',
    help: '1 when a condition has survived two recovery cycles and should be escalated.',
    registers,
    async collect() {
      this.set((await snapshot()).health.escalate ? 1 : 0);
    },
  });

  const duration = new Histogram({
    name: 'owokx_http_request_duration_seconds',
    help: 'HTTP request duration by route template, method and status.',
    labelNames: ['route', 'method', 'status'],
    buckets: DURATION_BUCKETS,
    registers,
  });

  collectDefaultMetrics({ register: registry });

  return {
    registry,

    observer(route) {
      // The labelled series of this route, by method and status: looking a series up from a
      // label object hashes the labels, a few µs on every request.
      const series = new Map<string, Histogram.Internal<'route' | 'method' | 'status'>>();

      return (request, reply, done) => {
        const key = `${request.method} ${reply.statusCode}`;
        let child = series.get(key);
        if (child === undefined) {
          child = duration.labels({ route, method: request.method, status: reply.statusCode });
          series.set(key, child);
        }
        child.observe(reply.elapsedTime / 1000);
        done();
      };
    },

    observeNotFound(request, reply) {
      const labels = { route: 'unknown', method: request.method, status: 404 };
      duration.observe(labels, reply.elapsedTime / 1000);
    },

    render: () => registry.metrics(),
  };
}
