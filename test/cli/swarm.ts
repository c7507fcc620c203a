// Making swarm conditions for the CLI tests through the agent data plane: dead letters, agents
// that keep failing, agents that consume, agents that stop heartbeating.

import type { SwarmClient } from '../../src/client/index.ts';
import { sleep } from './harness.ts';

export async function registerPullAgent(client: SwarmClient, id: string, type: string) {
  await client.registerAgent({ id, type, capabilities: [] });
}

/** Enqueues `n` messages to `target` and returns their queue ids. */
export async function enqueue(
  client: SwarmClient,
  target: string,
  n: number,
  topic = 'signals',
  maxAttempts?: number,
) {
  const results = await client.enqueueBatch(
    Array.from({ length: n }, (_, i) => ({
      message: { target, topic, type: 'EVENT' as const, source: 'test', payload: { i } },
      ...(maxAttempts === undefined ? {} : { maxAttempts }),
    })),
  );
  return results.map((r) => r.queueId as string);
}

/** Polls as `agentId` once and rejects (retry: false) whatever came: makes dead letters. */
export async function rejectAll(client: SwarmClient, agentId: string, expect: number) {
  let rejected = 0;
  const deadline = Date.now() + 10_000;

  while (rejected < expect && Date.now() < deadline) {
    const deliveries = await client.poll(agentId, { limit: 100, waitMs: 200 });
    if (deliveries.length === 0) continue;

    await client.nack({
      queueIds: deliveries.map((d) => d.queueId),
      error: 'handler refused the message',
      retry: false,
    });
    rejected += deliveries.length;
  }

  return rejected;
}

/**
 * A pull agent running in the test process until stopped: it heartbeats, polls, and either
 * acks everything or rejects everything. Returns a stop function.
 */
export function runAgent(
  client: SwarmClient,
  agentId: string,
  mode: 'ack' | 'reject',
): { stop(): Promise<void>; handled(): number } {
  let stopped = false;
  let handled = 0;

  const loop = (async () => {
    let lastBeat = 0;

    while (!stopped) {
      if (Date.now() - lastBeat > 500) {
        await client.heartbeat(agentId, { status: 'active' }).catch(() => {});
        lastBeat = Date.now();
      }

      const deliveries = await client.poll(agentId, { limit: 100, waitMs: 200 }).catch(() => []);
      if (deliveries.length === 0) continue;

      const queueIds = deliveries.map((d) => d.queueId);
      if (mode === 'ack') await client.ack(queueIds, { agentId }).catch(() => {});
      else
        await client
          .nack({ queueIds, agentId, error: 'still failing', retry: false })
          .catch(() => {});
      handled += deliveries.length;
    }
  })();

  return {
    async stop() {
      stopped = true;
      await loop;
    },
    handled: () => handled,
  };
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;

  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`condition not met within ${timeoutMs}ms`);
}

/**
 * A push agent's endpoint in the test process: answers the dispatcher's POST with `status()`
 * and counts the deliveries it accepted.
 */
export async function pushEndpoint(status: () => number) {
  const { createServer } = await import('node:http');
  let accepted = 0;

  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      const code = status();
      if (code >= 200 && code < 300) {
        accepted += (JSON.parse(body) as { deliveries: unknown[] }).deliveries.length;
      }
      res.writeHead(code, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  return {
    url: `http://127.0.0.1:${port}/deliveries`,
    accepted: () => accepted,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
