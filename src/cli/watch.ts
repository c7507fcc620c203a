// The `watch` screen: health, queue, dead letters, stale agents and rates on one screen, built
// from four read-only calls. Rendering is separate from the refresh loop so that a snapshot can
// be printed once (--once, or one per interval when stdout is not a terminal).

import type { SwarmClient } from '../client/index.ts';
import type { AgentView, QueueEntry } from '../core/types.ts';
import type { SwarmHealth, SwarmMetrics } from '../engine/contract.ts';
import { formatAge, formatCount, formatDuration, formatPercent, formatRate } from './format.ts';
import type { Output } from './output.ts';
import { renderDeadLetters } from './render.ts';

export interface WatchSnapshot {
  at: number;
  health: SwarmHealth;
  metrics: SwarmMetrics;
  deadLetters: { items: QueueEntry[]; total: number };
  staleAgents: { agents: AgentView[]; total: number };
}

/** How many dead letters and stale agents the screen lists; the totals are always shown. */
const LIST_ROWS = 5;

export async function takeSnapshot(client: SwarmClient): Promise<WatchSnapshot> {
  const [health, metrics, deadLetters, staleAgents] = await Promise.all([
    client.swarmHealth(),
    client.metrics(),
    client.deadLetters({ limit: LIST_ROWS }),
    client.listAgents({ stale: true, limit: LIST_ROWS }),
  ]);

  return {
    at: Date.now(),
    health,
    metrics,
    deadLetters: { items: deadLetters.items, total: deadLetters.total },
    staleAgents: { agents: staleAgents.agents, total: staleAgents.total },
  };
}

export function renderScreen(out: Output, s: WatchSnapshot, url: string, footer: string): string {
  const { health, metrics: m } = s;
  const { c } = out;
  const lines: string[] = [];

  lines.push(
    `${c.bold('owokx-swarm')}  ${url}  ${out.status(health.status)}  ${c.dim(new Date(s.at).toISOString())}`,
  );
  for (const r of health.reasons) lines.push(`  ${c.yellow(r.code)}  ${r.message}`);
  for (const e of health.escalations) {
    lines.push(c.red(`  ESCALATE: ${e.condition} persisted after ${e.cycles} recovery cycles`));
  }

  lines.push('');
  lines.push(
    out.keyValues([
      [
        'agents',
        `${formatCount(m.agents.total)} total  ${formatCount(m.agents.active)} active  ${highlight(out, m.agents.stale, 'stale')}`,
      ],
      [
        'queue',
        `${formatCount(m.queue.queued)} queued (${formatCount(m.queue.ready)} ready, ${formatCount(m.queue.delayed)} delayed)  ${formatCount(m.queue.inflight)} inflight  ${highlight(out, m.queue.deadLettered, 'dead-lettered')}`,
      ],
      ['oldest ready', m.queue.ready > 0 ? formatDuration(m.queue.oldestReadyAgeMs) : '-'],
      [
        'rates',
        `${formatRate(m.rates.enqueuedPerSec)} enqueued  ${formatRate(m.rates.deliveredPerSec)} delivered  failures ${formatPercent(m.rates.deliveryFailureRate)} (${formatCount(m.rates.deliveryFailures)}/${formatCount(m.rates.deliveryAttempts)} in ${formatDuration(m.rates.windowMs)})`,
      ],
      [
        'dispatch',
        `last run ${formatAge(m.dispatch.lastRunAt, s.at)}: ${formatCount(m.dispatch.lastDelivered)} delivered, ${formatCount(m.dispatch.lastFailed)} failed`,
      ],
      ['recovery cycles', formatCount(health.recoveryCycles)],
    ]),
  );

  lines.push('');
  lines.push(c.bold(`dead letters (${formatCount(s.deadLetters.total)}, oldest first)`));
  if (s.deadLetters.total > 0) lines.push(renderDeadLetters(out, s.deadLetters.items, s.at));

  lines.push('');
  lines.push(c.bold(`stale agents (${formatCount(s.staleAgents.total)})`));
  if (s.staleAgents.total > 0) {
    lines.push(
      out.table(
        ['ID', 'TYPE', 'STATUS', 'LAST HEARTBEAT', 'INFLIGHT'],
        s.staleAgents.agents.map((a) => [
          a.id,
          a.type,
          a.status,
          formatAge(a.lastHeartbeat, s.at),
          formatCount(a.inflight),
        ]),
      ),
    );
  }

  if (footer) {
    lines.push('');
    lines.push(c.dim(footer));
  }
  return lines.join('\n');
}

function highlight(out: Output, n: number, label: string): string {
  const text = `${formatCount(n)} ${label}`;
  return n > 0 ? out.c.yellow(text) : text;
}
