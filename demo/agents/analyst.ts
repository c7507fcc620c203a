// An analyst pulls `type:analyst` work by long-poll, thinks for a few tens of milliseconds,
// and asks a risk manager (`type:risk_manager`) to check the trade idea it came up with.

import { demoAgent, emit, envNumber, fatal, sleep } from './common.ts';

const thinkMs = envNumber('ANALYST_THINK_MS', 40);

const agent = demoAgent({ type: 'analyst', capabilities: ['technical-analysis'] });
await agent.start().catch(fatal);
emit('registered', { id: agent.id });

await agent.consume(
  async (message, ctx) => {
    const tick = message.payload as { symbol: string; price: number; seq: number };
    await sleep(thinkMs / 2 + Math.random() * thinkMs);

    const side = Math.random() < 0.5 ? 'buy' : 'sell';
    await agent.send(
      {
        target: 'type:risk_manager',
        type: 'COMMAND',
        topic: 'risk.check',
        correlationId: message.id,
        payload: { ...tick, side, confidence: Math.round(Math.random() * 100) / 100 },
      },
      // Two attempts only, so the risk manager's flakiness shows up as dead letters quickly.
      { maxAttempts: 2 },
    );
    emit('handled', { queueId: ctx.queueId, attempt: ctx.attempt, seq: tick.seq });
  },
  {
    waitMs: 10_000,
    concurrency: 4,
    onAcked: (queueIds) => emit('acked', { count: queueIds.length }),
  },
);
