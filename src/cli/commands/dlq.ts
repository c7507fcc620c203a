// `dlq list|show|requeue|purge`: the dead-letter queue. Requeue needs the trade scope, purge
// the admin scope; both accept --dry-run, which reports what would happen and changes nothing.

import type { Command } from 'commander';
import type { DeadLetterReason } from '../../core/types.ts';
import { action } from '../context.ts';
import { EXIT, usageError } from '../exit.ts';
import { formatCount, plural, remains } from '../format.ts';
import { idList, integer, positiveInteger, reason } from '../options.ts';
import { renderDeadLetters, renderEntry } from '../render.ts';

interface ListOptions {
  topic?: string;
  target?: string;
  reason?: DeadLetterReason;
  limit?: number;
  cursor?: string;
}

interface RequeueOptions {
  limit?: number;
  ids?: string[];
  topic?: string;
  target?: string;
  reason?: DeadLetterReason;
  dryRun?: boolean;
}

interface PurgeOptions {
  ids?: string[];
  topic?: string;
  reason?: DeadLetterReason;
  olderThanMs?: number;
  dryRun?: boolean;
}

export function registerDlq(program: Command): void {
  const dlq = program
    .command('dlq')
    .description('the dead-letter queue: list, show, requeue, purge');

  dlq
    .command('list')
    .description('dead letters, oldest first (GET /swarm/queue/dead-letters)')
    .option('--topic <topic>', 'only this topic')
    .option('--target <target>', 'only this target, as written on the message')
    .option('--reason <reason>', 'only this reason', reason)
    .option('--limit <n>', 'page size, 1..1000 (server default 100)', positiveInteger)
    .option('--cursor <cursor>', 'continue from a previous page')
    .action(
      action('dlq list', 'read', async (ctx, opts: ListOptions) => {
        const page = await ctx.client.deadLetters(opts);

        if (ctx.json) {
          ctx.out.printJson(page);
          return EXIT.ok;
        }

        ctx.out.line(renderDeadLetters(ctx.out, page.items));
        if (page.total > 0) {
          ctx.out.line(
            ctx.out.c.dim(
              `\n${formatCount(page.items.length)} of ${formatCount(page.total)} dead letters`,
            ),
          );
        }
        if (page.nextCursor) ctx.out.line(ctx.out.c.dim(`next page: --cursor ${page.nextCursor}`));
        return EXIT.ok;
      }),
    );

  dlq
    .command('show')
    .description(
      'one dead letter with its message and history (GET /swarm/queue/dead-letters/:queueId)',
    )
    .argument('<queueId>', 'the queue id of the dead letter')
    .action(
      action('dlq show', 'read', async (ctx, queueId: string) => {
        const entry = await ctx.client.getDeadLetter(queueId);

        if (ctx.json) ctx.out.printJson(entry);
        else ctx.out.line(renderEntry(ctx.out, entry));

        return EXIT.ok;
      }),
    );

  dlq
    .command('requeue')
    .description('put dead letters back to their targets, oldest first (trade scope)')
    .option('--limit <n>', 'how many, 1..1000 (server default 50)', positiveInteger)
    .option('--ids <ids>', 'only these queue ids, comma-separated', idList)
    .option('--topic <topic>', 'only this topic')
    .option('--target <target>', 'only this target')
    .option('--reason <reason>', 'only this reason', reason)
    .option('--dry-run', 'report what would be requeued; change nothing')
    .action(
      action('requeue-dlq', 'trade', async (ctx, opts: RequeueOptions) => {
        const result = await ctx.client.requeueDlq({
          limit: opts.limit,
          ids: opts.ids,
          topic: opts.topic,
          target: opts.target,
          reason: opts.reason,
          dryRun: opts.dryRun === true,
        });

        if (ctx.json) {
          ctx.out.printJson(result);
          return EXIT.ok;
        }

        const { out } = ctx;
        const verb = result.dryRun ? 'would requeue' : 'requeued';
        out.line(
          `${result.dryRun ? out.c.yellow('dry run: ') : ''}${verb} ${plural(result.requeued, 'dead letter')}; ${formatCount(result.remaining)} ${remains(result.remaining, result.dryRun)} in the dead-letter queue`,
        );

        if (result.skipped.length > 0) {
          out.line('');
          out.line(
            out.heading(
              `skipped ${plural(result.skipped.length, 'entry', 'entries')} (left where they were)`,
            ),
          );
          out.line(
            out.table(
              ['QUEUE ID', 'WHY'],
              result.skipped.map((s) => [s.queueId, s.why]),
            ),
          );
        }

        if (!result.dryRun && result.requeued > 0) {
          out.line(
            out.c.dim('next: swarmctl dispatch, then swarmctl queue to confirm the decrease'),
          );
        }
        return EXIT.ok;
      }),
    );

  dlq
    .command('purge')
    .description('delete dead letters for good (admin scope); needs at least one filter')
    .option('--ids <ids>', 'these queue ids, comma-separated', idList)
    .option('--topic <topic>', 'dead letters of this topic')
    .option('--reason <reason>', 'dead letters with this reason', reason)
    .option('--older-than-ms <ms>', 'dead-lettered longer ago than this', integer)
    .option('--dry-run', 'report what would be purged; change nothing')
    .action(
      action('purge-dlq', 'admin', async (ctx, opts: PurgeOptions) => {
        // Purging everything by accident is the one mistake recovery cannot undo.
        if (!opts.ids && !opts.topic && !opts.reason && opts.olderThanMs === undefined) {
          throw usageError(
            'dlq purge needs at least one filter: --ids, --topic, --reason or --older-than-ms',
          );
        }

        const result = await ctx.client.purgeDlq({
          ids: opts.ids,
          topic: opts.topic,
          reason: opts.reason,
          olderThanMs: opts.olderThanMs,
          dryRun: opts.dryRun === true,
        });

        if (ctx.json) {
          ctx.out.printJson(result);
          return EXIT.ok;
        }

        const { out } = ctx;
        const verb = result.dryRun ? 'would purge' : 'purged';
        out.line(
          `${result.dryRun ? out.c.yellow('dry run: ') : ''}${verb} ${plural(result.purged, 'dead letter')}; ${formatCount(result.remaining)} ${remains(result.remaining, result.dryRun)} in the dead-letter queue`,
        );
        return EXIT.ok;
      }),
    );
}
