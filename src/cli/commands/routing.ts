// `routing`: where deliveries would go next, and the anomalies (GET /swarm/routing).

import type { Command } from 'commander';
import type { RoutingForType, RoutingOverview } from '../../engine/contract.ts';
import { action } from '../context.ts';
import { EXIT } from '../exit.ts';
import { formatCount } from '../format.ts';
import { positiveInteger } from '../options.ts';
import { renderAnomalies } from '../render.ts';

export function registerRouting(program: Command): void {
  program
    .command('routing')
    .description('next delivery targets per agent type, and routing anomalies (GET /swarm/routing)')
    .option('--type <type>', 'only this agent type')
    .option(
      '--count <n>',
      'how many next targets to preview, 1..20 (server default 3)',
      positiveInteger,
    )
    .action(
      action('routing', 'read', async (ctx, opts: { type?: string; count?: number }) => {
        const routing: RoutingOverview | RoutingForType = opts.type
          ? await ctx.client.routing(opts.type, opts.count)
          : await ctx.client.routing(undefined, opts.count);

        if (ctx.json) {
          ctx.out.printJson(routing);
          return EXIT.ok;
        }

        const { out } = ctx;
        if ('agentType' in routing) {
          out.line(
            out.keyValues([
              ['type', routing.agentType],
              ['live agents', formatCount(routing.live)],
              ['pending', formatCount(routing.pending)],
              ['next targets', routing.targets.join(' → ') || out.c.yellow('none live')],
            ]),
          );
        } else {
          out.line(out.keyValues([['strategy', routing.strategy]]));
          out.line('');
          out.line(
            routing.types.length === 0
              ? out.c.dim('no agent types registered')
              : out.table(
                  ['TYPE', 'AGENTS', 'LIVE', 'PENDING', 'NEXT TARGETS'],
                  routing.types.map((t) => [
                    t.type,
                    formatCount(t.agents),
                    t.live === 0 ? out.c.yellow('0') : formatCount(t.live),
                    formatCount(t.pending),
                    t.targets.join(' → ') || '-',
                  ]),
                  ['left', 'right', 'right', 'right', 'left'],
                ),
          );
        }

        out.line('');
        out.line(renderAnomalies(out, routing.anomalies));
        return EXIT.ok;
      }),
    );
}
