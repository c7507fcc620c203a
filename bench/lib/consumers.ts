// The agents under test. They are ordinary HTTP clients of the coordinator, as any agent is:
// pull agents long-poll and ack; push agents run a tiny HTTP endpoint that the server's
// dispatcher posts deliveries to. Each acknowledged message is reported to the run's tracker.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SwarmClient } from '../../src/client/index.ts';
import type { Delivery } from '../../src/core/types.ts';
import { nowMs, sleep } from './clock.ts';
import { LatencyHistogram } from './histogram.ts';
import type { DeliveryTracker } from './tracker.ts';

export interface ConsumerStats {
  /** Poll round trips that returned deliveries (pull), or POST /swarm/dispatch calls (push). */
  requests: LatencyHistogram;
  /** POST /swarm/ack round trips (pull only). */
  acks: LatencyHistogram;
  /** Long polls that ended empty: idle agents, not a cost of delivery. */
  emptyPolls: number;
  /** Deliveries per poll answer or per push request. */
  deliveries: number;
  batches: number;
  errors: number;
  lastError: string | null;
}

export function newConsumerStats(): ConsumerStats {
  return {
    requests: new LatencyHistogram(),
    acks: new LatencyHistogram(),
    emptyPolls: 0,
    deliveries: 0,
    batches: 0,
    errors: 0,
    lastError: null,
  };
}

export interface PullOptions {
  limit: number;
  waitMs: number;
}

/**
 * One pull agent: poll, ack what came, poll again, until the tracker is finished. A poll is
 * held by the server until something arrives (waitMs), so an idle agent costs no requests.
 */
export async function pullAgent(
  client: SwarmClient,
  agentId: string,
  tracker: DeliveryTracker,
  options: PullOptions,
  stats: ConsumerStats,
  signal: AbortSignal,
): Promise<void> {
  const poll = { limit: options.limit, waitMs: options.waitMs };

  while (!tracker.finished) {
    let deliveries: Delivery[];
    const polledAt = nowMs();

    try {
      deliveries = await client.poll(agentId, poll, { signal });
    } catch (err) {
      if (tracker.finished || signal.aborted) return;
      stats.errors += 1;
      stats.lastError = (err as Error).message;
      await sleep(10);
      continue;
    }

    if (deliveries.length === 0) {
      stats.emptyPolls += 1;
      continue;
    }

    stats.requests.recordMs(nowMs() - polledAt);
    stats.deliveries += deliveries.length;
    stats.batches += 1;

    await ackAll(client, agentId, deliveries, tracker, stats);
  }
}

async function ackAll(
  client: SwarmClient,
  agentId: string,
  deliveries: Delivery[],
  tracker: DeliveryTracker,
  stats: ConsumerStats,
): Promise<void> {
  const queueIds = deliveries.map((d) => d.queueId);
  const ackStarted = nowMs();

  let rejected: Set<string> | null = null;
  try {
    const result = await client.ack(queueIds, { agentId });
    if (result.rejected.length > 0) rejected = new Set(result.rejected.map((r) => r.queueId));
  } catch (err) {
    // The leases run out and the messages come back: counted as redeliveries later.
    stats.errors += 1;
    stats.lastError = (err as Error).message;
    return;
  }

  // The ack's answer is the moment the server has durably recorded the delivery.
  const ackAt = nowMs();
  stats.acks.recordMs(ackAt - ackStarted);

  for (const delivery of deliveries) {
    if (rejected?.has(delivery.queueId)) tracker.ackRejected += 1;
    else tracker.acknowledged(delivery.message.payload, ackAt);
  }
}

/** A push agent's endpoint: answers 200 to every {"deliveries":[...]} it is sent. */
export interface PushEndpoint {
  url: string;
  close(): Promise<void>;
}

export async function startPushEndpoint(
  tracker: DeliveryTracker,
  stats: ConsumerStats,
): Promise<PushEndpoint> {
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];

    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let deliveries: Delivery[] = [];
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          deliveries?: Delivery[];
        };
        deliveries = body.deliveries ?? [];
      } catch {
        stats.errors += 1;
        res.writeHead(400).end();
        return;
      }

      // The 200 is the ack; the server commits it right after reading this answer.
      const ackAt = nowMs();
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');

      stats.deliveries += deliveries.length;
      stats.batches += 1;
      for (const delivery of deliveries) tracker.acknowledged(delivery.message.payload, ackAt);
    });
  };

  const server: Server = createServer({ keepAliveTimeout: 60_000 }, handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/deliveries`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Push mode also calls POST /swarm/dispatch in a loop, as the original benchmark did, so the
 * report has a per-request dispatch latency; the server's own dispatcher runs alongside.
 * An empty answer means nothing is ready yet: wait briefly instead of spinning.
 */
export async function dispatchLoop(
  client: SwarmClient,
  tracker: DeliveryTracker,
  limit: number,
  stats: ConsumerStats,
): Promise<void> {
  while (!tracker.finished) {
    const started = nowMs();

    try {
      const result = await client.dispatch({ limit });
      stats.requests.recordMs(nowMs() - started);
      if (result.delivered + result.failed === 0) await sleep(2);
    } catch (err) {
      if (tracker.finished) return;
      stats.errors += 1;
      stats.lastError = (err as Error).message;
      await sleep(10);
    }
  }
}
