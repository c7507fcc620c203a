// `queue`: gauges per state and topic, and the durable stats (GET /swarm/queue).

import type { Command } from 'commander';
import { action } from '../context.ts';
import { EXIT } from '../exit.ts';
import { renderQueue } from '../render.ts';

export function registerQueue(program: Command): void {
  program
    .command('queue')
    .description('queue depth by state and topic, and the durable stats (GET /swarm/queue)')
    .action(
      action('queue', 'read', async (ctx) => {
        const queue = await ctx.client.queue();

        if (ctx.json) ctx.out.printJson(queue);
        else ctx.out.line(renderQueue(ctx.out, queue));

        return EXIT.ok;
      }),
    );
}
