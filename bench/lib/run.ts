// One measured run: register the agents, take the server's counters, enqueue the messages
// while the agents consume them, wait for the last ack, take the counters again, and clean up.
// Every run uses its own agent type (and topic), so runs never see each other's messages and
// the queue gauges for that topic are exactly what this run left behind.

import type { SwarmClient } from '../../src/client/index.ts';
import type { Stats, TopicGauges } from '../../src/core/types.ts';
import type { QueueSummary, SwarmMetrics } from '../../src/engine/contract.ts';
import { nowMs, sleep } from './clock.ts';
import {
  dispatchLoop,
  newConsumerStats,
  type PushEndpoint,
  pullAgent,
  startPushEndpoint,
} from './consumers.ts';
import { type Enqueuer, type EnqueueStats, enqueueClosedLoop, enqueueOpenLoop } from './enqueue.ts';
import { LatencyHistogram, type LatencySummary } from './histogram.ts';
import type { BenchOptions } from './options.ts';
import { readMemory, resetPeakRss, startCpuMeter } from './proc.ts';
import { DeliveryTracker } from './tracker.ts';

export interface RunEnv {
  client: SwarmClient;
  /** Sends the enqueues: the hottest call, on a cheaper transport (see fast-enqueue.ts). */
  enqueuer: Enqueuer;
  options: Readonly<BenchOptions>;
  /** Random per benchmark invocation: agent types are `bench_<benchId>_<label>`. */
  benchId: string;
  /** Our own server's pid, for /proc readings; null against --base-url. */
  serverPid: number | null;
  /** Our own server's store is thrown away afterwards; a measured server must be left clean. */
  ownServer: boolean;
  /** Called about ten times a second while messages flow. */
  onProgress?: (acked: number, expected: number) => void;
  /** True once our own server has exited: the run ends then instead of at its deadline. */
  serverGone?: () => boolean;
}

export type StatsDelta = Pick<
  Stats,
  'enqueued' | 'delivered' | 'failed' | 'retried' | 'deadLettered' | 'expired' | 'deduplicated'
>;

export interface RunResult {
  // ---- the original owokx benchmark's keys, same meaning where the workload allows ----
  run: number;
  /** Everything pending on the server before this run (other roles, the backlog). */
  baselineQueued: number;
  enqueueMs: number;
  /** First enqueue to last ack (the original measured its dispatch loop). */
  dispatchMs: number;
  /** Registration to cleanup, whole run. */
  totalMs: number;
  /** Messages delivered per second, first enqueue to last ack: the headline number. */
  throughputPerSecond: number;
  delivered: number;
  failed: number;
  deadLettered: number;
  queuedAfterDispatch: number;
  /** Per-request latency of poll (pull) or POST /swarm/dispatch (push), milliseconds. */
  batchLatencyP50: number;
  batchLatencyP95: number;
  batchLatencyP99: number;

  // ---- added here ----
  label: string;
  agentType: string;
  messages: number;
  /** Epoch ms: first enqueue and last ack (or the deadline), the span the numbers describe. */
  startedAt: number;
  finishedAt: number;
  enqueuePerSecond: number;
  deliveryMs: number;
  deliveryPerSecond: number;
  inflightAfter: number;
  timedOut: boolean;
  /** Enqueue timestamp to ack, microseconds. */
  endToEndUs: LatencySummary;
  enqueueRequestUs: LatencySummary;
  /** Poll requests that returned messages (pull) or dispatch calls (push), microseconds. */
  deliveryRequestUs: LatencySummary;
  deliveryRequest: 'poll' | 'dispatch';
  ackRequestUs: LatencySummary;
  /** GET /swarm/metrics answered during the run. */
  metricsRequestUs: LatencySummary;
  /** --rate only: how late requests left against their schedule (client-side lag). */
  sendLagUs: LatencySummary | null;
  offeredRate: number | null;
  meanDeliveriesPerBatch: number;
  emptyPolls: number;
  redelivered: number;
  ackRejected: number;
  duplicates: number;
  enqueueFailed: number;
  enqueueRetries: number;
  clientErrors: number;
  lastError: string | null;
  /** stats after minus before, server-wide: includes any other traffic on a shared server. */
  statsDelta: StatsDelta;
  serverPeakRssBytes: number | null;
  /** 'run' when the kernel's peak mark was reset at the start of this run. */
  serverPeakRssScope: 'run' | 'process';
  serverCpuPercent: number | null;
  clientCpuPercent: number;
  /** CPU used by every other process on the machine during the run (100 = one core). */
  otherCpuPercent: number | null;
  /**
   * CPU per message acknowledged, in µs: our own server (all threads, and its main thread, on
   * which every request runs) and this benchmark process. Null for a measured server.
   */
  serverUsPerMessage: number | null;
  serverMainUsPerMessage: number | null;
  clientUsPerMessage: number | null;
  /** Internal: the histograms, pooled across runs for the summary. Not serialised. */
  histograms?: RunHistograms;
}

export interface RunHistograms {
  endToEnd: LatencyHistogram;
  enqueueRequests: LatencyHistogram;
  deliveryRequests: LatencyHistogram;
  metricsRequests: LatencyHistogram;
}

const SETTLE_MS = 2000;
const HEARTBEAT_CAP_MS = 60_000;

const topicGauges = (queue: QueueSummary, topic: string): TopicGauges =>
  queue.byTopic?.[topic] ?? { queued: 0, inflight: 0, deadLettered: 0 };

function statsDelta(before: Stats, after: Stats): StatsDelta {
  const d = (k: keyof Stats): number => (after[k] ?? 0) - (before[k] ?? 0);
  return {
    enqueued: d('enqueued'),
    delivered: d('delivered'),
    failed: d('failed'),
    retried: d('retried'),
    deadLettered: d('deadLettered'),
    expired: d('expired'),
    deduplicated: d('deduplicated'),
  };
}

/** Samples GET /swarm/metrics latency until stopped: the operator's view stays fast under load. */
function startMetricsSampler(
  client: SwarmClient,
  intervalMs: number,
  hist: LatencyHistogram,
): () => Promise<void> {
  if (intervalMs === 0) return async () => {};

  let running = true;
  const loop = (async () => {
    while (running) {
      const started = nowMs();
      try {
        await client.metrics();
        hist.recordMs(nowMs() - started);
      } catch {
        // A failed sample is not a latency; the run's own errors surface elsewhere.
      }
      if (running) await sleep(intervalMs);
    }
  })();

  return async () => {
    running = false;
    await loop;
  };
}

export async function measureRun(env: RunEnv, label: string, messages: number): Promise<RunResult> {
  const { client, options } = env;
  const runStarted = nowMs();
  const agentType = `bench_${env.benchId}_${label}`;
  const tracker = new DeliveryTracker(label, messages);
  const consumer = newConsumerStats();
  const push = options.delivery === 'push';
  const pid = env.serverPid;

  const endpoints: PushEndpoint[] = [];
  const agentIds: string[] = [];
  const timers: NodeJS.Timeout[] = [];
  const abort = new AbortController();
  let consumers: Promise<void>[] = [];
  let stopSampler = async (): Promise<void> => {};

  // Idempotent, and run whatever happens (a server that dies mid-run): the agents' loops and
  // every timer stop, so a failed run ends with an error instead of a process that never exits.
  const stopAgents = async (): Promise<void> => {
    tracker.finish(true);
    for (const timer of timers) clearInterval(timer);
    // Idle long polls are cut rather than waited out: nothing is left for them to take.
    abort.abort();
    await Promise.allSettled(consumers);
    await stopSampler();
  };

  let result: RunResult;
  let leftOver = 0;

  try {
    // Push agents need their endpoints listening before they register.
    if (push) {
      for (let i = 0; i < options.agents; i += 1) {
        endpoints.push(await startPushEndpoint(tracker, consumer));
      }
    }

    let heartbeatMs = HEARTBEAT_CAP_MS;
    for (let i = 0; i < options.agents; i += 1) {
      const id = `${agentType}-a${i + 1}`;
      const registered = await client.registerAgent({
        id,
        type: agentType,
        status: 'active',
        capabilities: ['benchmark'],
        metadata: { benchmark: true },
        ...(push ? { endpoint: endpoints[i]?.url, maxInflight: options.pollLimit } : {}),
      });
      agentIds.push(id);
      heartbeatMs = Math.min(heartbeatMs, registered.heartbeatIntervalMs);
    }

    // A long run (100,000 single enqueues, a push run) can outlast staleAfterMs; a stale agent
    // gets no deliveries, so the agents heartbeat like any well-behaved agent.
    timers.push(
      setInterval(() => {
        for (const id of agentIds) client.heartbeat(id, { status: 'active' }).catch(() => {});
      }, heartbeatMs),
    );

    const [metricsBefore, queueBefore] = await Promise.all([client.metrics(), client.queue()]);

    const peakReset = pid !== null && resetPeakRss(pid);
    const metricsHist = new LatencyHistogram();
    stopSampler = startMetricsSampler(client, options.metricsIntervalMs, metricsHist);

    consumers = push
      ? options.dispatchLoop
        ? [dispatchLoop(client, tracker, Math.min(1000, options.batchSize), consumer)]
        : []
      : agentIds.map((id) =>
          pullAgent(
            client,
            id,
            tracker,
            { limit: options.pollLimit, waitMs: options.waitMs },
            consumer,
            abort.signal,
          ),
        );

    timers.push(setTimeout(() => tracker.finish(true), options.timeoutMs));
    // A server that died delivers nothing more; waiting out the deadline (260 s at 100k)
    // would only delay the report that says so.
    if (env.serverGone) {
      const gone = env.serverGone;
      timers.push(setInterval(() => gone() && tracker.finish(true), 250));
    }
    if (env.onProgress) {
      timers.push(setInterval(() => env.onProgress?.(tracker.acked, tracker.expected), 100));
    }

    const target = { run: label, agentType, idPrefix: agentType };
    const single = options.enqueue === 'single';
    const stopCpuMeter = startCpuMeter(pid);
    const enqueued: EnqueueStats =
      options.rate !== null
        ? await enqueueOpenLoop(
            env.enqueuer,
            target,
            messages,
            { single, batchSize: options.batchSize, rate: options.rate },
            tracker,
          )
        : await enqueueClosedLoop(
            env.enqueuer,
            target,
            messages,
            { single, batchSize: options.batchSize, senders: options.concurrency },
            tracker,
          );

    await tracker.done;
    const finishedAt = nowMs();
    const cpu = stopCpuMeter();
    env.onProgress?.(tracker.acked, tracker.expected);
    await stopAgents();

    const memory = pid !== null ? readMemory(pid) : null;

    // A push ack is our 200, which the server commits a moment later; let the gauges catch up.
    const queueAfter = await settledQueue(client, agentType);
    const metricsAfter: SwarmMetrics = await client.metrics();
    const gauges = topicGauges(queueAfter, agentType);
    leftOver = gauges.queued + gauges.inflight + gauges.deadLettered;

    const wallMs = finishedAt - tracker.firstSendAt;
    const enqueueMs = enqueued.finishedAt - enqueued.startedAt;
    const deliveryMs = tracker.acked > 0 ? tracker.lastAckAt - tracker.firstSendAt : wallMs;
    const deliveryPerSecond = deliveryMs > 0 ? (tracker.acked * 1000) / deliveryMs : 0;
    const deliverySummary = consumer.requests.summary();
    const ms = (us: number): number => us / 1000;

    result = {
      run: Number(label) || 0,
      baselineQueued: queueBefore.queued,
      enqueueMs,
      dispatchMs: deliveryMs,
      totalMs: nowMs() - runStarted,
      throughputPerSecond: deliveryPerSecond,
      delivered: tracker.acked,
      failed: statsDelta(metricsBefore.stats, metricsAfter.stats).failed + enqueued.failed,
      deadLettered: gauges.deadLettered,
      queuedAfterDispatch: gauges.queued,
      batchLatencyP50: ms(deliverySummary.p50),
      batchLatencyP95: ms(deliverySummary.p95),
      batchLatencyP99: ms(deliverySummary.p99),

      label,
      agentType,
      messages,
      startedAt: tracker.firstSendAt,
      finishedAt,
      enqueuePerSecond: enqueueMs > 0 ? (enqueued.sent * 1000) / enqueueMs : 0,
      deliveryMs,
      deliveryPerSecond,
      inflightAfter: gauges.inflight,
      timedOut: tracker.timedOut,
      endToEndUs: tracker.endToEnd.summary(),
      enqueueRequestUs: enqueued.requests.summary(),
      deliveryRequestUs: deliverySummary,
      deliveryRequest: push ? 'dispatch' : 'poll',
      ackRequestUs: consumer.acks.summary(),
      metricsRequestUs: metricsHist.summary(),
      sendLagUs: options.rate !== null ? enqueued.sendLag.summary() : null,
      offeredRate: options.rate,
      meanDeliveriesPerBatch: consumer.batches > 0 ? consumer.deliveries / consumer.batches : 0,
      emptyPolls: consumer.emptyPolls,
      redelivered: tracker.redelivered,
      ackRejected: tracker.ackRejected,
      duplicates: enqueued.duplicates,
      enqueueFailed: enqueued.failed,
      enqueueRetries: enqueued.retries,
      clientErrors: consumer.errors,
      lastError: enqueued.lastError ?? consumer.lastError,
      statsDelta: statsDelta(metricsBefore.stats, metricsAfter.stats),
      serverPeakRssBytes: memory ? memory.peakRssBytes : null,
      serverCpuPercent: cpu.server,
      clientCpuPercent: cpu.client,
      otherCpuPercent: cpu.other,
      serverUsPerMessage: perMessage(cpu.serverMs, tracker.acked),
      serverMainUsPerMessage: perMessage(cpu.serverMainMs, tracker.acked),
      clientUsPerMessage: perMessage(cpu.clientMs, tracker.acked),
      histograms: {
        endToEnd: tracker.endToEnd,
        enqueueRequests: enqueued.requests,
        deliveryRequests: consumer.requests,
        metricsRequests: metricsHist,
      },
      serverPeakRssScope: peakReset ? 'run' : 'process',
    };
  } finally {
    await stopAgents();
    for (const id of agentIds) await client.deregister(id).catch(() => {});
    for (const endpoint of endpoints) await endpoint.close();
  }

  // Deregistered agents released their leases, so a drain agent can take what is left.
  if (!env.ownServer && leftOver > 0) await drainRole(client, agentType);

  return result;
}

/** The queue summary once this run's topic has nothing pending or in flight (or 2 s passed). */
async function settledQueue(client: SwarmClient, topic: string): Promise<QueueSummary> {
  const deadline = nowMs() + SETTLE_MS;
  let queue = await client.queue();

  while (nowMs() < deadline) {
    const g = topicGauges(queue, topic);
    if (g.queued + g.inflight === 0) break;
    await sleep(50);
    queue = await client.queue();
  }

  return queue;
}

/**
 * Leaves a measured server as we found it: takes every message still addressed to `role`
 * (pending, in flight once their leases lapse, and dead letters, requeued first) with a
 * temporary agent of that role, and acks them. Bounded, so a broken server cannot hang us.
 */
export async function drainRole(
  client: SwarmClient,
  role: string,
  maxMs = 10 * 60_000,
): Promise<{ drained: number; left: number }> {
  const agentId = `${role}-drain`;
  const deadline = nowMs() + maxMs;
  let drained = 0;

  await client.registerAgent({ id: agentId, type: role, capabilities: ['benchmark'] });
  let beatAt = nowMs();

  try {
    while (nowMs() < deadline) {
      if (nowMs() - beatAt > HEARTBEAT_CAP_MS) {
        await client.heartbeat(agentId, { status: 'active' });
        beatAt = nowMs();
      }

      const queue = await client.queue();
      const g = topicGauges(queue, role);
      if (g.queued + g.inflight + g.deadLettered === 0) return { drained, left: 0 };

      if (g.deadLettered > 0) {
        await client.requeueDlq({ topic: role, limit: 1000, dryRun: false });
      }

      const deliveries = await client.poll(agentId, { limit: 1000, waitMs: 500 });
      if (deliveries.length > 0) {
        await client.ack(
          deliveries.map((d) => d.queueId),
          { agentId },
        );
        drained += deliveries.length;
      }
    }

    const g = topicGauges(await client.queue(), role);
    return { drained, left: g.queued + g.inflight + g.deadLettered };
  } finally {
    await client.deregister(agentId).catch(() => {});
  }
}

function perMessage(cpuMs: number | null, messages: number): number | null {
  return cpuMs !== null && messages > 0 ? (cpuMs * 1000) / messages : null;
}
