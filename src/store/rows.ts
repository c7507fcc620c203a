// Row shapes of the entries and agents tables, which both dialects lay out alike, and their
// mapping to domain objects.

import type {
  Agent,
  AgentStatus,
  DeadLetterReason,
  DeadLetterRecord,
  Delivery,
  EntryState,
  Message,
  QueueEntry,
} from '../core/types.ts';
import { MESSAGE_JSON } from '../core/types.ts';
import type { AuditRecord } from '../engine/contract.ts';
import type { AgentCounts } from './store.ts';

export interface AgentRow {
  id: string;
  type: string;
  status: string;
  capabilities: string;
  endpoint: string | null;
  max_inflight: number;
  metadata: string;
  registered_at: number;
  last_heartbeat: number;
}

export interface EntryRow {
  queue_id: number;
  message_id: string;
  dedupe_key: string;
  target: string;
  route_kind: string;
  route_key: string;
  topic: string | null;
  priority: number;
  state: EntryState;
  enqueued_at: number;
  available_at: number;
  expires_at: number | null;
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  assigned_to: string | null;
  lease_expires_at: number | null;
  reason: string | null;
  dead_lettered_at: number | null;
  history: string | null;
  message: string;
}

export function toAgent(row: AgentRow): Agent {
  return {
    id: row.id,
    type: row.type,
    status: row.status as AgentStatus,
    capabilities: JSON.parse(row.capabilities) as string[],
    endpoint: row.endpoint,
    maxInflight: row.max_inflight,
    metadata: JSON.parse(row.metadata) as Record<string, unknown>,
    registeredAt: row.registered_at,
    lastHeartbeat: row.last_heartbeat,
  };
}

export function toEntry(row: EntryRow): QueueEntry {
  return {
    queueId: String(row.queue_id),
    message: JSON.parse(row.message) as Message,
    state: row.state,
    enqueuedAt: row.enqueued_at,
    availableAt: row.available_at,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    lastError: row.last_error,
    assignedTo: row.assigned_to,
    leaseExpiresAt: row.lease_expires_at,
    reason: row.reason as DeadLetterReason | null,
    deadLetteredAt: row.dead_lettered_at,
    history: row.history === null ? [] : (JSON.parse(row.history) as DeadLetterRecord[]),
  };
}

/** queueIds are decimal strings outside the store; anything else names no entry. */
export function parseQueueId(queueId: string): number | null {
  if (!/^[1-9]\d{0,15}$/.test(queueId)) return null;
  const n = Number(queueId);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * The message is parsed only if someone reads it: a poll answer splices the stored text
 * (MESSAGE_JSON) and never needs the object. A class, so every delivery has one shape.
 */
class StoredDelivery implements Delivery {
  readonly queueId: string;
  readonly [MESSAGE_JSON]: string;
  private parsed: Message | undefined;

  constructor(
    queueId: number,
    readonly attempt: number,
    json: string,
    readonly leaseExpiresAt: number,
  ) {
    this.queueId = String(queueId);
    this[MESSAGE_JSON] = json;
  }

  get message(): Message {
    this.parsed ??= JSON.parse(this[MESSAGE_JSON]) as Message;
    return this.parsed;
  }

  /** What JSON.stringify sees: the delivery of the contract, not this class's fields. */
  toJSON(): Delivery {
    return {
      queueId: this.queueId,
      attempt: this.attempt,
      leaseExpiresAt: this.leaseExpiresAt,
      message: this.message,
    };
  }
}

/**
 * A record keyed by names that users choose (topics, agent types). Without a prototype, a
 * topic called "__proto__" is a key like any other instead of the object's prototype.
 */
export function dict<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

export function toDelivery(
  queueId: number,
  attempt: number,
  json: string,
  leaseExpiresAt: number,
): Delivery {
  return new StoredDelivery(queueId, attempt, json, leaseExpiresAt);
}

/** One group of the agent tally: agents of one type and status, stale or not. */
export interface AgentCountRow {
  type: string;
  status: string;
  /** SQLite answers 0 or 1, PostgreSQL a boolean. */
  stale: number | boolean;
  n: number;
}

export function toAgentCounts(rows: AgentCountRow[]): AgentCounts {
  const counts: AgentCounts = { total: 0, stale: 0, live: 0, byType: dict(), byStatus: dict() };
  for (const row of rows) {
    counts.total += row.n;
    if (row.stale) counts.stale += row.n;
    else if (row.status !== 'offline') counts.live += row.n;
    counts.byType[row.type] = (counts.byType[row.type] ?? 0) + row.n;
    counts.byStatus[row.status] = (counts.byStatus[row.status] ?? 0) + row.n;
  }
  return counts;
}

/** Subscriptions by topic, from rows in topic order. */
export function toSubscriptions(
  rows: { topic: string; agent_id: string }[],
): Record<string, string[]> {
  const byTopic = dict<string[]>();
  for (const row of rows) {
    const agents = byTopic[row.topic] ?? [];
    agents.push(row.agent_id);
    byTopic[row.topic] = agents;
  }
  return byTopic;
}

export interface AuditRow {
  id: number;
  at: number;
  scope: AuditRecord['scope'];
  token_name: string;
  action: string;
  parameters: string;
  result: string;
}

export function toAuditRecord(row: AuditRow): AuditRecord {
  return {
    id: String(row.id),
    at: row.at,
    timestamp: new Date(row.at).toISOString(),
    scope: row.scope,
    tokenName: row.token_name,
    action: row.action,
    parameters: JSON.parse(row.parameters),
    result: JSON.parse(row.result),
  };
}

/**
 * What a requeue writes for a dead letter: its history with this dead-lettering added, and a
 * fresh TTL from now for a message that has one — otherwise a requeued expired message would
 * expire again on the next sweep.
 */
export function requeued(
  row: EntryRow,
  now: number,
): { history: string; expiresAt: number | null } {
  const history: DeadLetterRecord[] = row.history === null ? [] : JSON.parse(row.history);
  history.push({
    reason: row.reason as DeadLetterReason,
    deadLetteredAt: row.dead_lettered_at ?? now,
    lastError: row.last_error,
    attempts: row.attempts,
  });
  const ttlMs = (JSON.parse(row.message) as { ttlMs?: number }).ttlMs;
  return { history: JSON.stringify(history), expiresAt: ttlMs === undefined ? null : now + ttlMs };
}
