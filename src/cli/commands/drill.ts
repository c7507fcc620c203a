// `drill dlq` and `drill stale`: the guide's Drill 1 and Drill 2 as one command each.
// Progress goes to stdout as the drill runs; --json prints only the final DrillResult.

import type { Command } from 'commander';
import type { DispatchResult, PruneResult, RequeueResult } from '../../engine/contract.ts';
import { action, type CommandContext } from '../context.ts';
import {
  DRILL_DEFAULTS,
  type DrillEvent,
  type DrillKind,
  type DrillOptions,
  type DrillResult,
  type DrillSnapshot,
  runDrill,
} from '../drill.ts';
import { EXIT } from '../exit.ts';
import { formatCount, formatDuration } from '../format.ts';
import { integer, positiveInteger } from '../options.ts';
import type { Output } from '../output.ts';

export function registerDrill(program: Command): void {
  const drill = program
    .command('drill')
    .description("run the guide's recovery drills end to end (trade scope)");

  cycleOptions(
    drill
      .command('dlq')
      .description(
        'Drill 1: requeue dead letters, dispatch, confirm dead letters and queue depth fall',
      )
      .option('--limit <n>', 'requeue-dlq limit per cycle', positiveInteger, DRILL_DEFAULTS.limit)
      .option(
        '--dispatch-limit <n>',
        'dispatch limit per cycle',
        positiveInteger,
        DRILL_DEFAULTS.dispatchLimit,
      ),
  ).action(
    action('drill dlq', 'trade', (ctx, opts: Partial<DrillOptions>) => run(ctx, 'dlq', opts)),
  );

  cycleOptions(
    drill
      .command('stale')
      .description('Drill 2: prune stale agents, confirm stale count and routing anomalies fall')
      .option('--stale-ms <ms>', 'prune-stale staleMs', integer, DRILL_DEFAULTS.staleMs),
  ).action(
    action('drill stale', 'trade', (ctx, opts: Partial<DrillOptions>) => run(ctx, 'stale', opts)),
  );
}

/** What both drills share: how many recovery cycles, and how long each may settle. */
function cycleOptions(cmd: Command): Command {
  return cmd
    .option(
      '--cycles <n>',
      'recovery cycles before escalating',
      positiveInteger,
      DRILL_DEFAULTS.cycles,
    )
    .option(
      '--settle-ms <ms>',
      'how long to wait for deliveries after each cycle',
      integer,
      DRILL_DEFAULTS.settleMs,
    );
}

async function run(ctx: CommandContext, kind: DrillKind, opts: Partial<DrillOptions>) {
  const options: DrillOptions = { ...DRILL_DEFAULTS, ...opts };
  const { out } = ctx;

  if (!ctx.json) {
    const title = kind === 'dlq' ? 'Drill 1: dead-letter recovery' : 'Drill 2: stale agent cleanup';
    out.line(`${out.heading(title)}  ${out.c.dim(ctx.url)}`);
  }

  const result = await runDrill(kind, ctx.client, ctx.url, options, (event) => {
    if (!ctx.json) out.line(describeEvent(out, kind, event));
  });

  if (ctx.json) out.printJson(result);
  else printSummary(out, result);

  return result.outcome === 'escalate' ? EXIT.failed : EXIT.ok;
}

function describeEvent(out: Output, kind: DrillKind, event: DrillEvent): string {
  if (event.kind === 'before') return `before   ${describeSnapshot(out, kind, event.snapshot)}`;

  if (event.kind === 'action') {
    return `cycle ${event.cycle}  ${event.what}: ${describeAction(event.result)}`;
  }

  const c = event.cycle;
  const change =
    kind === 'dlq'
      ? `dead letters ${c.before.deadLettered} → ${c.after.deadLettered}, queue depth ${c.before.queueDepth} → ${c.after.queueDepth}`
      : `stale agents ${c.before.staleAgents} → ${c.after.staleAgents}, routing anomalies ${c.before.anomalies.length} → ${c.after.anomalies.length}`;
  const verdict = c.recovered ? out.c.green('recovered') : out.c.yellow('condition persists');
  return `cycle ${c.cycle}  after ${formatDuration(c.settledMs)}: ${change}: ${verdict}`;
}

function describeSnapshot(out: Output, kind: DrillKind, s: DrillSnapshot): string {
  const parts =
    kind === 'dlq'
      ? [`dead letters ${formatCount(s.deadLettered)}`, `queue depth ${formatCount(s.queueDepth)}`]
      : [`stale agents ${formatCount(s.staleAgents)} of ${formatCount(s.totalAgents)}`];
  parts.push(`routing anomalies ${s.anomalies.length}`, `health ${out.status(s.status)}`);
  return parts.join(', ');
}

function describeAction(result: unknown): string {
  const r = result as Partial<RequeueResult & DispatchResult & PruneResult>;

  if ('requeued' in r) {
    return `requeued ${r.requeued}, ${r.remaining} ${r.remaining === 1 ? 'remains' : 'remain'}, ${r.skipped?.length ?? 0} skipped`;
  }
  if ('delivered' in r) {
    return `delivered ${r.delivered}, failed ${r.failed}, dead-lettered ${r.deadLettered}, pending ${r.pending}`;
  }
  return `removed ${r.removed}, ${r.remaining} ${r.remaining === 1 ? 'remains' : 'remain'}, released ${r.released}, dead-lettered ${r.deadLettered}`;
}

function printSummary(out: Output, result: DrillResult): void {
  const rows = [snapshotRow(out, 'before', result.before)];
  for (const c of result.cycles) rows.push(snapshotRow(out, `after cycle ${c.cycle}`, c.after));

  out.line('');
  out.line(
    out.table(['', 'HEALTH', 'DEAD LETTERS', 'QUEUE DEPTH', 'STALE AGENTS', 'ANOMALIES'], rows, [
      'left',
      'left',
      'right',
      'right',
      'right',
      'right',
    ]),
  );
  out.line('');

  if (result.outcome === 'escalate') out.line(out.c.red(out.c.bold(result.message)));
  else if (result.outcome === 'recovered') out.line(out.c.green(result.message));
  else out.line(result.message);

  for (const note of result.notes) out.line(out.c.dim(`note: ${note}`));

  for (const e of result.serverEscalations) {
    out.line(
      out.c.yellow(`server reports escalation: ${e.condition} over ${e.cycles} recovery cycles`),
    );
  }
}

function snapshotRow(out: Output, label: string, s: DrillSnapshot): string[] {
  return [
    label,
    out.status(s.status),
    formatCount(s.deadLettered),
    formatCount(s.queueDepth),
    formatCount(s.staleAgents),
    String(s.anomalies.length),
  ];
}
