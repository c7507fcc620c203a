// The --backlog preload: messages for a role nobody serves, so they sit pending while the
// measured runs go on beside them. That is the depth the hot path must not feel: claims and
// gauges that scan instead of seek slow down in proportion to it.

import { type Enqueuer, enqueueClosedLoop } from './enqueue.ts';

// The contract's largest batch, with two requests in flight: the server always has the next
// one ready while it commits the current one.
const PRELOAD_BATCH = 1000;
const PRELOAD_SENDERS = 2;

export interface PreloadResult {
  agentType: string;
  preloadMs: number;
  perSecond: number;
}

export async function preloadBacklog(
  client: Enqueuer,
  benchId: string,
  count: number,
  onSent: (sent: number) => void,
): Promise<PreloadResult> {
  const agentType = `bench_${benchId}_backlog`;

  const stats = await enqueueClosedLoop(
    client,
    { run: 'backlog', agentType, idPrefix: agentType },
    count,
    { single: false, batchSize: PRELOAD_BATCH, senders: PRELOAD_SENDERS, onSent },
    null,
  );

  if (stats.failed > 0) {
    throw new Error(
      `the backlog preload lost ${stats.failed} of ${count} messages: ${stats.lastError}`,
    );
  }

  const preloadMs = stats.finishedAt - stats.startedAt;
  return { agentType, preloadMs, perSecond: preloadMs > 0 ? (count * 1000) / preloadMs : 0 };
}
