// The swarm's vocabulary, as the operator guide and the HTTP contract use it.
// Pure types: no I/O, shared by the store, the engine, the HTTP layer and the clients.

export const AGENT_STATUSES = ['active', 'busy', 'error', 'offline'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

export const MESSAGE_TYPES = ['COMMAND', 'EVENT', 'QUERY', 'RESPONSE'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export const PRIORITIES = ['critical', 'high', 'normal', 'low'] as const;
export type Priority = (typeof PRIORITIES)[number];

export const DEAD_LETTER_REASONS = [
  'max_attempts',
  'expired',
  'rejected',
  'target_pruned',
  'no_route',
] as const;
export type DeadLetterReason = (typeof DEAD_LETTER_REASONS)[number];

export const ENTRY_STATES = ['pending', 'inflight', 'dead'] as const;
export type EntryState = (typeof ENTRY_STATES)[number];

export interface Agent {
  id: string;
  type: string;
  status: AgentStatus;
  capabilities: string[];
  endpoint: string | null;
  maxInflight: number;
  metadata: Record<string, unknown>;
  registeredAt: number;
  lastHeartbeat: number;
}

/** An agent as operators see it: stored fields plus what is derived at read time. */
export interface AgentView extends Agent {
  stale: boolean;
  inflight: number;
}

export interface Message {
  id: string;
  source: string;
  target: string;
  type: MessageType;
  topic: string | null;
  payload: unknown;
  timestamp: string;
  correlationId?: string;
  replyTo?: string;
  priority: Priority;
  ttlMs?: number;
  headers?: Record<string, string>;
}

export interface DeadLetterRecord {
  reason: DeadLetterReason;
  deadLetteredAt: number;
  lastError: string | null;
  attempts: number;
}

export interface QueueEntry {
  queueId: string;
  message: Message;
  state: EntryState;
  enqueuedAt: number;
  availableAt: number;
  attempts: number;
  maxAttempts: number;
  lastError: string | null;
  assignedTo: string | null;
  leaseExpiresAt: number | null;
  reason: DeadLetterReason | null;
  deadLetteredAt: number | null;
  history: DeadLetterRecord[];
}

/**
 * The message of a delivery as the store keeps it, serialized: answers splice it in instead
 * of parsing it only to serialize it again. Absent on deliveries built any other way.
 */
export const MESSAGE_JSON: unique symbol = Symbol('owokx.messageJson');

/** The JSON text of a delivery, using the stored message text when there is one. */
export function deliveryJson(d: Delivery): string {
  const message = (d as { [MESSAGE_JSON]?: string })[MESSAGE_JSON] ?? JSON.stringify(d.message);
  return `{"queueId":${JSON.stringify(d.queueId)},"attempt":${d.attempt},"leaseExpiresAt":${d.leaseExpiresAt},"message":${message}}`;
}

/** A leased entry handed to an agent, by poll or by push. */
export interface Delivery {
  queueId: string;
  attempt: number;
  leaseExpiresAt: number;
  message: Message;
}

/** Durable counters. They live in the store and change in the transaction they count. */
export interface Stats {
  enqueued: number;
  delivered: number;
  failed: number;
  retried: number;
  deadLettered: number;
  expired: number;
  requeued: number;
  deduplicated: number;
  purged: number;
}

export const STAT_NAMES: readonly (keyof Stats)[] = [
  'enqueued',
  'delivered',
  'failed',
  'retried',
  'deadLettered',
  'expired',
  'requeued',
  'deduplicated',
  'purged',
];

export interface QueueGauges {
  queued: number;
  ready: number;
  delayed: number;
  inflight: number;
  deadLettered: number;
  oldestReadyAgeMs: number;
}

export interface TopicGauges {
  queued: number;
  inflight: number;
  deadLettered: number;
}

export type AuthScope = 'read' | 'agent' | 'trade' | 'admin';
