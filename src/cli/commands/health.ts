// `health` and `metrics`: the guide's daily checks, GET /swarm/health and GET /swarm/metrics.

import type { Command } from 'commander';
import { action } from '../context.ts';
import { EXIT } from '../exit.ts';
import { renderHealth, renderMetrics } from '../render.ts';

export function registerHealth(program: Command): void {
  program
    .command('health')
    .description('the swarm health (GET /swarm/health); exits 1 when degraded or unhealthy')
    .action(
      action('health', 'read', async (ctx) => {
        const health = await ctx.client.swarmHealth();

        if (ctx.json) ctx.out.printJson(health);
        else ctx.out.line(renderHealth(ctx.out, health, ctx.url));

        return health.status === 'healthy' ? EXIT.ok : EXIT.failed;
      }),
    );

  program
    .command('metrics')
    .description('agents, queue gauges, durable stats and rates (GET /swarm/metrics)')
    .action(
      action('metrics', 'read', async (ctx) => {
        const metrics = await ctx.client.metrics();

        if (ctx.json) ctx.out.printJson(metrics);
        else ctx.out.line(renderMetrics(ctx.out, metrics));

        return EXIT.ok;
      }),
    );
}
