// `agents` and `agent <id>`: the registry as operators spot-check it (GET /swarm/agents).

import type { Command } from 'commander';
import { AGENT_STATUSES } from '../../core/types.ts';
import { action } from '../context.ts';
import { EXIT, usageError } from '../exit.ts';
import { formatCount } from '../format.ts';
import { booleanFlag, positiveInteger } from '../options.ts';
import { renderAgent, renderAgents } from '../render.ts';

interface AgentsOptions {
  type?: string;
  status?: string;
  stale?: boolean;
  limit?: number;
  cursor?: string;
}

export function registerAgents(program: Command): void {
  program
    .command('agents')
    .description('list registered agents (GET /swarm/agents)')
    .option('--type <type>', 'only agents of this type')
    .option('--status <status>', `only agents in this status (${AGENT_STATUSES.join('|')})`)
    .option('--stale [bool]', 'only stale agents (or --stale false: only live ones)', booleanFlag)
    .option('--limit <n>', 'page size, 1..1000 (server default 100)', positiveInteger)
    .option('--cursor <cursor>', 'continue from a previous page')
    .action(
      action('agents', 'read', async (ctx, opts: AgentsOptions) => {
        if (opts.status && !(AGENT_STATUSES as readonly string[]).includes(opts.status)) {
          throw usageError(`--status must be one of ${AGENT_STATUSES.join(', ')}`);
        }

        const page = await ctx.client.listAgents({
          type: opts.type,
          status: opts.status as (typeof AGENT_STATUSES)[number] | undefined,
          // A bare `--stale` arrives as `true` from commander.
          stale: opts.stale,
          limit: opts.limit,
          cursor: opts.cursor,
        });

        if (ctx.json) {
          ctx.out.printJson(page);
          return EXIT.ok;
        }

        ctx.out.line(renderAgents(ctx.out, page.agents));
        if (page.total > 0) {
          ctx.out.line(
            ctx.out.c.dim(
              `\n${formatCount(page.agents.length)} of ${formatCount(page.total)} agents`,
            ),
          );
        }
        if (page.nextCursor) ctx.out.line(ctx.out.c.dim(`next page: --cursor ${page.nextCursor}`));
        return EXIT.ok;
      }),
    );

  program
    .command('agent')
    .description('one agent with its subscriptions and inflight (GET /swarm/agents/:id)')
    .argument('<id>', 'the agent id')
    .action(
      action('agent', 'read', async (ctx, id: string) => {
        const agent = await ctx.client.getAgent(id);

        if (ctx.json) ctx.out.printJson(agent);
        else ctx.out.line(renderAgent(ctx.out, agent));

        return EXIT.ok;
      }),
    );
}
