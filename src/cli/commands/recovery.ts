// `dispatch` and `prune-stale`: the guide's recovery actions (trade scope).

import type { Command } from 'commander';
import { action } from '../context.ts';
import { EXIT } from '../exit.ts';
import { formatCount, formatDuration, plural, remains } from '../format.ts';
import { integer, positiveInteger } from '../options.ts';

export function registerRecovery(program: Command): void {
  program
    .command('dispatch')
    .description('run one dispatch pass now: push pending messages to agents with an endpoint')
    .option(
      '--limit <n>',
      'most deliveries in this pass, 1..1000 (server default 200)',
      positiveInteger,
    )
    .action(
      action('dispatch', 'trade', async (ctx, opts: { limit?: number }) => {
        const result = await ctx.client.dispatch(
          opts.limit === undefined ? {} : { limit: opts.limit },
        );

        if (ctx.json) {
          ctx.out.printJson(result);
          return EXIT.ok;
        }

        ctx.out.line(
          ctx.out.keyValues([
            ['delivered', formatCount(result.delivered)],
            ['failed', result.failed > 0 ? ctx.out.c.yellow(formatCount(result.failed)) : '0'],
            ['dead-lettered', formatCount(result.deadLettered)],
            ['pending', formatCount(result.pending)],
            ['took', formatDuration(result.durationMs)],
          ]),
        );
        return EXIT.ok;
      }),
    );

  program
    .command('prune-stale')
    .description('remove agents with no heartbeat for --stale-ms, release their leases')
    .option(
      '--stale-ms <ms>',
      'no heartbeat for this long (server default 600000, minimum OWOKX_PRUNE_MIN_STALE_MS)',
      integer,
    )
    .option('--dry-run', 'report which agents would be removed; change nothing')
    .action(
      action('prune-stale', 'trade', async (ctx, opts: { staleMs?: number; dryRun?: boolean }) => {
        const result = await ctx.client.pruneStale({
          staleMs: opts.staleMs,
          dryRun: opts.dryRun === true,
        });

        if (ctx.json) {
          ctx.out.printJson(result);
          return EXIT.ok;
        }

        const { out } = ctx;
        const verb = result.dryRun ? 'would remove' : 'removed';
        out.line(
          `${result.dryRun ? out.c.yellow('dry run: ') : ''}${verb} ${plural(result.removed, 'stale agent')}; ${plural(result.remaining, 'agent')} ${remains(result.remaining, result.dryRun)}`,
        );
        if (result.removedIds.length > 0) out.line(`  ${result.removedIds.join('\n  ')}`);
        out.line(
          out.keyValues([
            ['leases released', formatCount(result.released)],
            ['dead-lettered (target_pruned)', formatCount(result.deadLettered)],
          ]),
        );
        return EXIT.ok;
      }),
    );
}
