// The trader is a push agent: it serves an HTTP endpoint the dispatcher POSTs deliveries to,
// and subscribes to approved trade ideas and price ticks.

import { demoAgent, emit, envNumber, fatal } from './common.ts';

const port = envNumber('TRADER_PORT', 0);

const agent = demoAgent({ type: 'trader', capabilities: ['execution'] });
let trades = 0;

const server = await agent
  .serve(
    (message, ctx) => {
      if (message.topic === 'signals.approved') {
        trades++;
        emit('trade', { queueId: ctx.queueId, trades });
      }
    },
    {
      port,
      onHandled: (delivery) => emit('handled', { queueId: delivery.queueId }),
    },
  )
  .catch(fatal);

await agent.subscribe(['signals.approved', 'signals.price']).catch(fatal);
emit('registered', { id: agent.id, endpoint: server.endpoint });
