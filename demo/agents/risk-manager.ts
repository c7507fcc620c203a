// The risk manager checks trade ideas and is unreliable on purpose: about 30% of checks throw
// (retried with backoff, dead-lettered after maxAttempts), and a few are rejected outright
// with retry:false, so the demo always has dead letters to recover in drill 1.

import { PermanentError } from '../../src/agent/index.ts';
import { demoAgent, emit, envNumber, fatal, sleep } from './common.ts';

const failRate = envNumber('RISK_FAIL_RATE', 0.3);
const rejectRate = envNumber('RISK_REJECT_RATE', 0.03);

const agent = demoAgent({ type: 'risk_manager', capabilities: ['risk-check'] });
await agent.start().catch(fatal);
emit('registered', { id: agent.id });

await agent.consume(
  async (message, ctx) => {
    const idea = message.payload as { symbol: string; side: string; price: number };
    await sleep(5 + Math.random() * 20);

    const roll = Math.random();
    if (roll < rejectRate) {
      throw new PermanentError(`position limit breached for ${idea.symbol}`);
    }
    if (roll < rejectRate + failRate) {
      throw new Error('risk model timed out');
    }

    await agent.publish('signals.approved', idea, { type: 'EVENT', correlationId: message.id });
    emit('handled', { queueId: ctx.queueId, attempt: ctx.attempt });
  },
  {
    waitMs: 10_000,
    concurrency: 4,
    onAcked: (queueIds) => emit('acked', { count: queueIds.length }),
    onFailed: (queueId, error, retry) => emit('failed', { queueId, error, retry }),
  },
);
