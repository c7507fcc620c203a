// The learning agent studies price ticks, then hangs: after LEARNING_STALL_AFTER_MS it stops
// heartbeating and polling without deregistering, like a process stuck in a long GC or a
// deadlock. The server then reports it as stale, its subscription as a routing anomaly, and
// the ticks published to it pile up: the situation drill 2 (prune-stale) cleans up.

import { demoAgent, emit, envNumber, fatal, sleep } from './common.ts';

const stallAfterMs = envNumber('LEARNING_STALL_AFTER_MS', 20_000);

const agent = demoAgent({ type: 'learning', capabilities: ['model-training'] });
await agent.start().catch(fatal);
await agent.subscribe('signals.price').catch(fatal);
emit('registered', { id: agent.id });

const stall = new AbortController();
let seen = 0;

const consuming = agent.consume(
  () => {
    seen++;
  },
  { waitMs: 5000, signal: stall.signal },
);

await sleep(stallAfterMs);
agent.pauseHeartbeats();
stall.abort();
await consuming;
emit('stalled', { seen });

// Stay alive (registered, silent) until the demo stops us; SIGTERM still deregisters.
setInterval(() => {}, 60_000);
