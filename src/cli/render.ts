// Human views of the server's answers. Shared by the one-shot commands, `watch` and the drills,
// so an operator sees the same words for the same numbers wherever they look.

import type { AgentView, QueueEntry } from '../core/types.ts';
import type {
  AgentDetail,
  AuditRecord,
  QueueSummary,
  RoutingAnomaly,
  SwarmHealth,
  SwarmMetrics,
} from '../engine/contract.ts';
import {
  formatAge,
  formatCount,
  formatDuration,
  formatJsonCell,
  formatPercent,
  formatRate,
  printable,
} from './format.ts';
import type { Output } from './output.ts';

export function renderHealth(out: Output, health: SwarmHealth, url: string): string {
  const lines: string[] = [];

  lines.push(`swarm ${out.status(health.status)}  ${out.c.dim(`${url} at ${health.timestamp}`)}`);

  if (health.reasons.length > 0) {
    lines.push('');
    lines.push(
      out.table(
        ['REASON', 'VALUE', 'THRESHOLD', 'MESSAGE'],
        health.reasons.map((r) => [
          r.code,
          reasonValue(r.code, r.value),
          reasonValue(r.code, r.threshold),
          r.message,
        ]),
        ['left', 'right', 'right', 'left'],
      ),
    );
  }

  // A store that does not answer has no counts to give: zeros would read as an empty swarm.
  if (health.reasons.some((r) => r.code === 'store_unreachable')) {
    lines.push('');
    lines.push('counts unavailable: the server cannot read its store');
    return lines.join('\n');
  }

  lines.push('');
  lines.push(
    out.keyValues([
      [
        'agents',
        `${formatCount(health.totalAgents)} total, ${formatCount(health.activeAgents)} active, ${staleText(out, health.staleAgents)}`,
      ],
      [
        'queue',
        `depth ${formatCount(health.queueDepth)}, ${deadText(out, health.deadLettered)} dead-lettered`,
      ],
      ['failures', `${formatPercent(health.deliveryFailureRate)} of delivery attempts`],
      ['recovery cycles', formatCount(health.recoveryCycles)],
    ]),
  );

  for (const e of health.escalations) {
    lines.push(
      out.c.red(
        `ESCALATE: ${e.condition} persisted after ${e.cycles} recovery cycles (since ${formatAge(e.since)})`,
      ),
    );
  }

  return lines.join('\n');
}

export function renderMetrics(out: Output, m: SwarmMetrics): string {
  const byType = Object.entries(m.agents.byType)
    .map(([t, n]) => `${t} ${n}`)
    .join(', ');
  const byStatus = Object.entries(m.agents.byStatus)
    .map(([s, n]) => `${s} ${n}`)
    .join(', ');

  const sections = [
    out.heading('agents'),
    out.keyValues([
      ['total', formatCount(m.agents.total)],
      ['active', formatCount(m.agents.active)],
      ['stale', m.agents.stale > 0 ? out.c.yellow(formatCount(m.agents.stale)) : '0'],
      ['by type', byType || '-'],
      ['by status', byStatus || '-'],
      ['stale after', formatDuration(m.staleAfterMs)],
    ]),
    '',
    out.heading('queue'),
    renderGauges(out, m.queue),
    '',
    out.heading(`rates (last ${formatDuration(m.rates.windowMs)})`),
    out.keyValues([
      ['enqueued', formatRate(m.rates.enqueuedPerSec)],
      ['delivered', formatRate(m.rates.deliveredPerSec)],
      [
        'failure rate',
        `${formatPercent(m.rates.deliveryFailureRate)} (${formatCount(m.rates.deliveryFailures)} of ${formatCount(m.rates.deliveryAttempts)} attempts)`,
      ],
      ['dead-lettered', formatCount(m.rates.deadLetteredInWindow)],
    ]),
    '',
    out.heading('stats (since the store was created)'),
    renderStats(out, m.stats),
    '',
    out.heading('dispatch'),
    out.keyValues([
      ['last run', formatAge(m.dispatch.lastRunAt)],
      ['last delivered', formatCount(m.dispatch.lastDelivered)],
      ['last failed', formatCount(m.dispatch.lastFailed)],
    ]),
  ];

  return sections.join('\n');
}

export function renderGauges(out: Output, q: SwarmMetrics['queue']): string {
  return out.keyValues([
    [
      'queued',
      `${formatCount(q.queued)} (${formatCount(q.ready)} ready, ${formatCount(q.delayed)} delayed)`,
    ],
    ['inflight', formatCount(q.inflight)],
    ['dead-lettered', deadText(out, q.deadLettered)],
    ['oldest ready', q.ready > 0 ? formatDuration(q.oldestReadyAgeMs) : '-'],
  ]);
}

export function renderStats(out: Output, stats: SwarmMetrics['stats']): string {
  return out.table(
    Object.keys(stats).map(columnName),
    [Object.values(stats).map((v) => formatCount(v))],
    Object.keys(stats).map(() => 'right'),
  );
}

export function renderQueue(out: Output, q: QueueSummary): string {
  const topics = Object.entries(q.byTopic);
  const sections = [renderGauges(out, q)];

  if (topics.length > 0) {
    sections.push('');
    sections.push(
      out.table(
        ['TOPIC', 'QUEUED', 'INFLIGHT', 'DEAD-LETTERED'],
        topics.map(([topic, g]) => [
          // The store reports messages without a topic under "", which no topic can be.
          topic === '' ? out.c.dim('(no topic)') : printable(topic),
          formatCount(g.queued),
          formatCount(g.inflight),
          formatCount(g.deadLettered),
        ]),
        ['left', 'right', 'right', 'right'],
      ),
    );
  }

  sections.push('');
  sections.push(renderStats(out, q.stats));
  return sections.join('\n');
}

export function renderAgents(out: Output, agents: AgentView[], now = Date.now()): string {
  if (agents.length === 0) return out.c.dim('no agents');

  return out.table(
    ['ID', 'TYPE', 'STATUS', 'STALE', 'INFLIGHT', 'LAST HEARTBEAT', 'CAPABILITIES', 'ENDPOINT'],
    agents.map((a) => [
      a.id,
      a.type,
      a.status,
      a.stale ? out.c.yellow('stale') : 'no',
      formatCount(a.inflight),
      formatAge(a.lastHeartbeat, now),
      a.capabilities.join(',') || '-',
      a.endpoint ?? 'pull',
    ]),
    ['left', 'left', 'left', 'left', 'right', 'left', 'left', 'left'],
  );
}

export function renderAgent(out: Output, a: AgentDetail, now = Date.now()): string {
  return out.keyValues([
    ['id', a.id],
    ['type', a.type],
    ['status', a.status],
    ['stale', a.stale ? out.c.yellow('yes') : 'no'],
    ['inflight', `${formatCount(a.inflight)} of ${formatCount(a.maxInflight)}`],
    ['capabilities', a.capabilities.join(', ') || '-'],
    ['endpoint', a.endpoint ?? 'none (pull)'],
    ['subscriptions', (a.subscriptions ?? []).join(', ') || '-'],
    ['registered', `${new Date(a.registeredAt).toISOString()} (${formatAge(a.registeredAt, now)})`],
    [
      'last heartbeat',
      `${new Date(a.lastHeartbeat).toISOString()} (${formatAge(a.lastHeartbeat, now)})`,
    ],
    ['metadata', formatJsonCell(a.metadata, 200)],
    [
      'last metrics',
      a.lastMetrics === null || a.lastMetrics === undefined
        ? '-'
        : `${formatJsonCell(a.lastMetrics, 200)} (${formatAge(a.lastMetricsAt ?? now, now)})`,
    ],
  ]);
}

export function renderDeadLetters(out: Output, items: QueueEntry[], now = Date.now()): string {
  if (items.length === 0) return out.c.dim('no dead letters');

  return out.table(
    ['QUEUE ID', 'TOPIC', 'TARGET', 'REASON', 'ATTEMPTS', 'DEAD-LETTERED', 'LAST ERROR'],
    items.map((e) => [
      e.queueId,
      e.message.topic === null ? '-' : printable(e.message.topic),
      printable(e.message.target),
      e.reason ?? '-',
      `${e.attempts}/${e.maxAttempts}`,
      formatAge(e.deadLetteredAt, now),
      truncate(printable(e.lastError ?? ''), 40),
    ]),
    ['left', 'left', 'left', 'left', 'right', 'left', 'left'],
  );
}

export function renderEntry(out: Output, e: QueueEntry, now = Date.now()): string {
  const m = e.message;
  const lines = [
    out.keyValues([
      ['queue id', e.queueId],
      ['state', e.state],
      ['reason', e.reason ?? '-'],
      ['dead-lettered', e.deadLetteredAt ? formatAge(e.deadLetteredAt, now) : '-'],
      ['attempts', `${e.attempts} of ${e.maxAttempts}`],
      ['last error', e.lastError === null ? '-' : printable(e.lastError)],
      ['enqueued', `${new Date(e.enqueuedAt).toISOString()} (${formatAge(e.enqueuedAt, now)})`],
      ['message id', printable(m.id)],
      ['type', m.type],
      ['source', printable(m.source)],
      ['target', printable(m.target)],
      ['topic', m.topic === null ? '-' : printable(m.topic)],
      ['priority', m.priority],
      ['timestamp', m.timestamp],
      ['ttl', m.ttlMs === undefined ? '-' : formatDuration(m.ttlMs)],
    ]),
  ];

  if (e.history.length > 0) {
    lines.push('');
    lines.push(out.heading('earlier dead-letterings'));
    lines.push(
      out.table(
        ['REASON', 'AT', 'ATTEMPTS', 'LAST ERROR'],
        e.history.map((h) => [
          h.reason,
          formatAge(h.deadLetteredAt, now),
          h.attempts,
          truncate(h.lastError ?? '', 50),
        ]),
      ),
    );
  }

  lines.push('');
  lines.push(out.heading('payload'));
  lines.push(JSON.stringify(m.payload, null, 2) ?? 'null');
  return lines.join('\n');
}

/** An anomaly's agent, type, capability or topic, as it may be shown. */
function whereOf(a: RoutingAnomaly): string {
  const where = a.agentId ?? a.type ?? a.capability ?? a.topic;
  return where === undefined || where === null ? '-' : printable(where);
}

export function renderAnomalies(out: Output, anomalies: RoutingAnomaly[]): string {
  if (anomalies.length === 0) return out.c.dim('no routing anomalies');

  return out.table(
    ['ANOMALY', 'WHERE', 'COUNT', 'MESSAGE'],
    anomalies.map((a) => [out.c.yellow(a.kind), whereOf(a), a.count ?? '-', a.message]),
  );
}

export function renderAudit(out: Output, records: AuditRecord[], now = Date.now()): string {
  if (records.length === 0) return out.c.dim('no recovery or admin actions recorded');

  return out.table(
    ['WHEN', 'SCOPE', 'TOKEN', 'ACTION', 'PARAMETERS', 'RESULT'],
    records.map((r) => [
      `${r.timestamp} (${formatAge(r.at, now)})`,
      r.scope,
      r.tokenName,
      r.action,
      formatJsonCell(withoutRequestId(r.parameters), 40),
      formatJsonCell(r.result, 50),
    ]),
  );
}

/** A reason's value in its unit: a failure rate as a percentage, an age as a duration. */
export function reasonValue(code: string, value: number): string {
  if (code === 'delivery_failures_elevated') return formatPercent(value);
  if (code === 'queue_pressure' || code === 'dispatcher_stalled') return formatDuration(value);
  return formatCount(value);
}

/** "3 stale" in yellow when any agent is stale. */
function staleText(out: Output, n: number): string {
  const text = `${formatCount(n)} stale`;
  return n > 0 ? out.c.yellow(text) : text;
}

function deadText(out: Output, n: number): string {
  return n > 0 ? out.c.yellow(formatCount(n)) : formatCount(n);
}

/** `deadLettered` → `DEAD-LETTERED`: the guide's words as a column heading. */
function columnName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c}`).toUpperCase();
}

/** The request id is for log correlation; in a table it only pushes the parameters off screen. */
function withoutRequestId(parameters: Record<string, unknown>): Record<string, unknown> {
  const { requestId: _, ...rest } = parameters;
  return rest;
}

function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
