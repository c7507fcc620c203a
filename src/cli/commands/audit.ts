// `audit`: the recovery and admin actions the server recorded (GET /swarm/audit).

import type { Command } from 'commander';
import { action } from '../context.ts';
import { EXIT } from '../exit.ts';
import { positiveInteger } from '../options.ts';
import { renderAudit } from '../render.ts';

export function registerAudit(program: Command): void {
  program
    .command('audit')
    .description('recovery and admin actions: when, scope, action, parameters, result')
    .option('--limit <n>', 'page size, 1..1000 (server default 100)', positiveInteger)
    .option('--cursor <cursor>', 'continue from a previous page')
    .action(
      action('audit', 'read', async (ctx, opts: { limit?: number; cursor?: string }) => {
        const page = await ctx.client.audit({ limit: opts.limit, cursor: opts.cursor });

        if (ctx.json) {
          ctx.out.printJson(page);
          return EXIT.ok;
        }

        ctx.out.line(renderAudit(ctx.out, page.items));
        if (page.nextCursor) ctx.out.line(ctx.out.c.dim(`next page: --cursor ${page.nextCursor}`));
        return EXIT.ok;
      }),
    );
}
