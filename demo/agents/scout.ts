// The scout watches the market: on a timer it publishes a `signals.price` event to every
// subscriber and sends the same tick to one analyst (`type:analyst`) as work to do.

import { isSwarmClientError } from '../../src/client/index.ts';
import { demoAgent, emit, envNumber, fatal, sleep } from './common.ts';

const SYMBOLS = ['BTC', 'ETH', 'SOL', 'AAPL', 'NVDA'];
const intervalMs = envNumber('SCOUT_INTERVAL_MS', 500);

const agent = demoAgent({ type: 'scout', capabilities: ['market-data'] });
await agent.start().catch(fatal);
emit('registered', { id: agent.id });

const prices = new Map(SYMBOLS.map((s, i) => [s, 100 * (i + 1)]));
let seq = 0;

for (;;) {
  seq++;
  const symbol = SYMBOLS[seq % SYMBOLS.length] as string;
  // A random walk, so analysts see prices move.
  const price = Math.max(1, (prices.get(symbol) ?? 100) * (1 + (Math.random() - 0.5) * 0.02));
  prices.set(symbol, price);
  const tick = { symbol, price: Math.round(price * 100) / 100, seq };

  try {
    const published = await agent.publish('signals.price', tick, { type: 'EVENT' });
    const sent = await agent.send({
      target: 'type:analyst',
      type: 'COMMAND',
      topic: 'analysis.request',
      payload: tick,
    });
    emit('sent', { seq, queueId: sent.queueId, fanOut: published.enqueued });
  } catch (err) {
    // A restarting coordinator is normal in the demo; keep the timer going.
    const code = isSwarmClientError(err) ? err.code : 'error';
    emit('send_failed', { seq, code, error: (err as Error).message });
  }

  await sleep(intervalMs);
}
