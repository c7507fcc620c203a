// The senders. Closed loop: N senders each send as soon as their previous request answered,
// which measures capacity. Open loop (--rate): messages leave on a fixed schedule whatever the
// answers, each stamped with its scheduled time, so a slow answer shows up as latency of every
// message behind it instead of quietly lowering the offered load (coordinated omission).

import type { EnqueueInput, EnqueueResult } from '../../src/engine/contract.ts';
import { nowMs, sleep } from './clock.ts';
import { LatencyHistogram } from './histogram.ts';
import type { BenchPayload, DeliveryTracker } from './tracker.ts';

/** What sends enqueues: SwarmClient, or the benchmark's cheaper FastEnqueue. */
export interface Enqueuer {
  enqueue(input: EnqueueInput): Promise<EnqueueResult>;
  enqueueBatch(inputs: EnqueueInput[]): Promise<EnqueueResult[]>;
}

export interface EnqueueTarget {
  /** Run label carried in every payload. */
  run: string;
  /** The role the messages go to, and the topic they carry (one per run, for scoped gauges). */
  agentType: string;
  /** Message ids are `<idPrefix>-<seq>`: a retried request is deduplicated, never doubled. */
  idPrefix: string;
}

export interface EnqueueStats {
  /** POST /swarm/messages round trips. */
  requests: LatencyHistogram;
  /** Open loop only: how far behind its schedule each request actually left. */
  sendLag: LatencyHistogram;
  startedAt: number;
  finishedAt: number;
  sent: number;
  failed: number;
  duplicates: number;
  retries: number;
  lastError: string | null;
}

// Retries reuse the same message ids, so a request that did reach the server is not doubled.
const MAX_ATTEMPTS = 3;

export function benchMessage(target: EnqueueTarget, seq: number, sentAt: number): EnqueueInput {
  const payload: BenchPayload = {
    run: target.run,
    seq,
    sentAt,
    signal: { symbol: 'AAPL', sentiment: 0.8, volume: 100 },
  };

  return {
    message: {
      id: `${target.idPrefix}-${seq}`,
      source: 'benchmark',
      target: `type:${target.agentType}`,
      type: 'COMMAND',
      topic: target.agentType,
      payload,
    },
  };
}

function newStats(): EnqueueStats {
  return {
    requests: new LatencyHistogram(),
    sendLag: new LatencyHistogram(),
    startedAt: 0,
    finishedAt: 0,
    sent: 0,
    failed: 0,
    duplicates: 0,
    retries: 0,
    lastError: null,
  };
}

/** Sends one request of 1..1000 messages; counts duplicates; retries a failure twice. */
async function sendOnce(
  client: Enqueuer,
  inputs: EnqueueInput[],
  single: boolean,
  stats: EnqueueStats,
  tracker: DeliveryTracker | null,
): Promise<void> {
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt += 1) {
    const started = nowMs();

    try {
      if (single) {
        const result = await client.enqueue(inputs[0] as EnqueueInput);
        if (result.duplicate) stats.duplicates += 1;
      } else {
        const results = await client.enqueueBatch(inputs);
        for (const result of results) if (result.duplicate) stats.duplicates += 1;
      }

      stats.requests.recordMs(nowMs() - started);
      stats.sent += inputs.length;
      return;
    } catch (err) {
      stats.lastError = (err as Error).message;
      if (attempt < MAX_ATTEMPTS) {
        stats.retries += 1;
        await sleep(50 * attempt);
      }
    }
  }

  stats.failed += inputs.length;
  tracker?.abandoned(inputs.length);
}

/** Closed loop: `senders` workers share one sequence; each sends the next message or batch. */
export async function enqueueClosedLoop(
  client: Enqueuer,
  target: EnqueueTarget,
  count: number,
  options: {
    single: boolean;
    batchSize: number;
    senders: number;
    /** Called after each answered request with the messages sent so far. */
    onSent?: (sent: number) => void;
  },
  tracker: DeliveryTracker | null,
): Promise<EnqueueStats> {
  const stats = newStats();
  const size = options.single ? 1 : options.batchSize;
  let next = 0;

  const sender = async (): Promise<void> => {
    // A run past its deadline stops sending; what was not sent is not expected either.
    while (next < count && !tracker?.finished) {
      const from = next;
      const to = Math.min(count, from + size);
      next = to;

      // Stamped just before the request leaves, after the previous answer: closed-loop latency.
      const sentAt = nowMs();
      const inputs: EnqueueInput[] = [];
      for (let seq = from; seq < to; seq += 1) inputs.push(benchMessage(target, seq, sentAt));

      await sendOnce(client, inputs, options.single, stats, tracker);
      options.onSent?.(stats.sent);
    }
  };

  stats.startedAt = nowMs();
  if (tracker) tracker.firstSendAt = stats.startedAt;

  const workers: Promise<void>[] = [];
  for (let i = 0; i < Math.min(options.senders, Math.ceil(count / size)); i += 1) {
    workers.push(sender());
  }
  await Promise.all(workers);

  stats.finishedAt = nowMs();
  return stats;
}

/**
 * Open loop at `rate` msg/s. Message `seq` is due at start + seq/rate; whenever the timer
 * fires, every due message leaves at once: one request each in single mode, one batch of
 * the due ones (up to batchSize) in batch mode. Requests are never awaited before the next
 * send, so the offered load holds even when the server slows down.
 */
export async function enqueueOpenLoop(
  client: Enqueuer,
  target: EnqueueTarget,
  count: number,
  options: { single: boolean; batchSize: number; rate: number },
  tracker: DeliveryTracker,
): Promise<EnqueueStats> {
  const stats = newStats();
  const intervalMs = 1000 / options.rate;
  const pending: Promise<void>[] = [];
  let next = 0;

  stats.startedAt = nowMs();
  tracker.firstSendAt = stats.startedAt;

  while (next < count && !tracker.finished) {
    const now = nowMs();
    const due = Math.min(count, Math.floor((now - stats.startedAt) / intervalMs) + 1);

    while (next < due) {
      const size = options.single ? 1 : Math.min(options.batchSize, due - next);
      const inputs: EnqueueInput[] = [];

      for (let i = 0; i < size; i += 1) {
        const seq = next + i;
        const scheduledAt = stats.startedAt + seq * intervalMs;
        inputs.push(benchMessage(target, seq, scheduledAt));
        stats.sendLag.recordMs(now - scheduledAt);
      }

      next += size;
      pending.push(sendOnce(client, inputs, options.single, stats, tracker));
    }

    if (next >= count) break;

    // Sleep to the next due time; setTimeout's ~1 ms floor is why several may leave together.
    const wakeAt = stats.startedAt + next * intervalMs;
    await sleep(Math.max(0, wakeAt - nowMs()));
  }

  await Promise.all(pending);
  stats.finishedAt = nowMs();
  return stats;
}
