// The acceptance criterion: kill -9 the coordinator in the middle of a run with live agents,
// start it again on the same SQLite file, and nothing it accepted is lost.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { isSwarmClientError } from '../../src/client/index.ts';
import type { QueueEntry } from '../../src/core/types.ts';
import { type Swarm, startSwarm, until } from './helpers.ts';

let swarm: Swarm;

beforeAll(async () => {
  swarm = await startSwarm({
    OWOKX_BACKOFF_BASE_MS: '50',
    OWOKX_BACKOFF_CAP_MS: '500',
    OWOKX_DISPATCH_INTERVAL_MS: '50',
    // Pushed entries in flight when the server died come back once their lease runs out.
    OWOKX_LEASE_MS: '2000',
  });
}, 60_000);

afterAll(async () => {
  await swarm?.close();
}, 60_000);

async function allDeadLetters(): Promise<QueueEntry[]> {
  const items: QueueEntry[] = [];
  let cursor: string | undefined;

  do {
    const page = await swarm.client.deadLetters({ limit: 1000, cursor });
    items.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);

  return items;
}

it('loses no accepted message when the server is SIGKILLed mid-run with pull and push agents', async () => {
  // Short leases, so entries leased when the server died come back soon after the restart.
  const env = {
    AGENT_TYPE: 'worker',
    AGENT_LEASE_MS: '2000',
    AGENT_WAIT_MS: '1000',
    AGENT_WORK_MS: '2',
  };
  const workers = await Promise.all([
    swarm.agent('worker-1', env),
    swarm.agent('worker-2', env),
    swarm.agent('pusher-1', { AGENT_TYPE: 'pusher', AGENT_MODE: 'push', AGENT_WORK_MS: '2' }),
  ]);

  const accepted = new Set<string>();
  let sendErrors = 0;
  let sending = true;
  let batchNo = 0;

  // The sender: batches of 20 as fast as the server takes them, counting only what it
  // answered for. A batch whose answer was lost in the kill may exist on the server too.
  const sender = (async () => {
    while (sending) {
      batchNo++;
      const batch = Array.from({ length: 20 }, (_, i) => ({
        // Every fourth message goes to the push agent, the rest to the two pull workers.
        message: {
          target: i % 4 === 0 ? 'type:pusher' : 'type:worker',
          payload: { batch: batchNo, i },
        },
        maxAttempts: 20,
      }));
      try {
        const results = await swarm.client.enqueueBatch(batch);
        for (const r of results) if (r.queueId) accepted.add(r.queueId);
      } catch (err) {
        if (!isSwarmClientError(err) || !err.isNetworkError) throw err;
        sendErrors++;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  })();

  await until(
    () => accepted.size >= 1000,
    20_000,
    () => `accepted only ${accepted.size}`,
  );
  // Both kinds of delivery are under way when the server dies.
  for (const worker of workers) expect(worker.count('handled')).toBeGreaterThan(0);

  swarm.server.kill('SIGKILL');
  await swarm.server.exited;
  const acceptedAtKill = accepted.size;

  await swarm.restart();

  // Conservation holds straight after the restart too, with work still leased and queued.
  const early = await swarm.client.queue();
  expect(early.stats.enqueued).toBe(
    early.stats.delivered + early.queued + early.inflight + early.deadLettered + early.stats.purged,
  );
  expect(early.stats.enqueued).toBeGreaterThanOrEqual(acceptedAtKill);

  // Keep sending after the restart, then stop and let the workers drain the queue.
  await until(() => accepted.size >= acceptedAtKill + 500, 20_000);
  sending = false;
  await sender;
  expect(sendErrors).toBeGreaterThan(0);

  await until(
    async () => {
      const q = await swarm.client.queue();
      return q.queued === 0 && q.inflight === 0;
    },
    30_000,
    () => `queue not drained; handled ${workers.map((w) => w.count('handled')).join('+')}`,
  );

  const queue = await swarm.client.queue();
  const { stats } = queue;
  expect(stats.enqueued).toBe(
    stats.delivered + queue.queued + queue.inflight + queue.deadLettered + stats.purged,
  );
  expect(stats.enqueued).toBeGreaterThanOrEqual(accepted.size);

  // Delivered means a worker's handler finished it; anything else must still be stored.
  const handled = new Set(workers.flatMap((w) => w.queueIds('handled')));
  const stored = new Set((await allDeadLetters()).map((e) => e.queueId));
  const lost = [...accepted].filter((id) => !handled.has(id) && !stored.has(id));
  expect(lost).toEqual([]);

  const metrics = await swarm.client.metrics();
  expect(metrics.stats).toEqual(stats);

  const handledEvents = workers.reduce((n, w) => n + w.count('handled'), 0);
  console.info(
    `crash run: accepted ${accepted.size} (${acceptedAtKill} before the kill), ` +
      `send errors ${sendErrors}, handled ${handled.size} unique / ${handledEvents} total ` +
      `(redelivered ${handledEvents - handled.size}), dead letters ${stored.size}, ` +
      `stats ${JSON.stringify(stats)}`,
  );
}, 120_000);
