// The store contract. The engine talks to storage only through this interface; nothing here
// names a driver. Every method is atomic: it happens whole or not at all (the SQLite store
// may commit the enqueues and acks of one event-loop turn together, each still all or
// nothing), and the counters it touches change in that same transaction, so the
// conservation equation
//   stats.enqueued = stats.delivered + queued + inflight + deadLettered + stats.purged
// holds at every commit, across crashes.

import type { CycleSnapshot } from '../core/escalation.ts';
import type { TargetKind } from '../core/targets.ts';
import type {
  Agent,
  AgentStatus,
  DeadLetterReason,
  Delivery,
  Message,
  QueueEntry,
  Stats,
  TopicGauges,
} from '../core/types.ts';
import type { AuditRecord } from '../engine/contract.ts';

/** An entry to create. `routeKind/routeKey` is where it may be delivered. */
export interface NewEntry {
  message: Message;
  /** The message serialized once, before the transaction: a value that cannot be serialized
   * fails its own request, never the group commit it would have joined. */
  messageJson: string;
  routeKind: TargetKind;
  routeKey: string;
  /**
   * Entries with the same key are not enqueued twice while pending or in flight. Null when
   * the server generated the message id: nothing can repeat it.
   */
  dedupeKey: string | null;
  priority: number;
  availableAt: number;
  expiresAt: number | null;
  maxAttempts: number;
  /**
   * A direct target must be registered when the entry is created; checked inside the
   * enqueue transaction, and an entry for an unknown agent is dead-lettered as `no_route`.
   */
  requireRegistered: boolean;
}

export interface EnqueueOutcome {
  queueId: string;
  duplicate: boolean;
}

/** The routes an agent takes deliveries from: its id, its type, its capabilities. */
export interface AgentRoutes {
  agentId: string;
  type: string;
  capabilities: string[];
}

export interface ClaimOptions {
  limit: number;
  leaseMs: number;
  now: number;
}

export interface FailOptions {
  error: string;
  /** false dead-letters at once, as `rejected`. */
  retry: boolean;
  /** A fixed delay for the retry; otherwise the backoff for the attempt number. */
  delayMs?: number;
  agentId?: string;
  now: number;
}

/** Backoff is policy, not storage: the engine passes the function in. */
export type BackoffFn = (attempt: number) => number;

export interface FailOutcome {
  retried: number;
  deadLettered: number;
  rejected: { queueId: string; why: string }[];
}

export interface AgentFilter {
  type?: string;
  status?: AgentStatus;
  /** true: heartbeat before `staleBefore`; false: at or after it. */
  stale?: boolean;
  staleBefore: number;
  limit: number;
  afterId?: string;
}

export interface AgentCounts {
  total: number;
  stale: number;
  live: number;
  byType: Record<string, number>;
  byStatus: Record<string, number>;
}

export interface DeadLetterFilter {
  topic?: string;
  target?: string;
  reason?: DeadLetterReason;
  ids?: string[];
  /** Dead-lettered at or before this time. */
  deadBefore?: number;
}

export interface DeadLetterPageQuery extends DeadLetterFilter {
  limit: number;
  after?: { deadLetteredAt: number; queueId: string };
}

export interface RequeueOptions {
  filter: DeadLetterFilter;
  limit: number;
  dryRun: boolean;
  now: number;
}

export interface RequeueOutcome {
  requeued: string[];
  skipped: { queueId: string; why: string }[];
  remaining: number;
}

export interface RemoveAgentsOutcome {
  removed: string[];
  released: number;
  deadLettered: number;
}

export interface RouteCount {
  kind: TargetKind;
  key: string;
  pending: number;
  inflight: number;
}

export interface Gauges {
  queued: number;
  delayed: number;
  inflight: number;
  deadLettered: number;
  oldestReadyAt: number | null;
}

export interface RateTotals {
  deliveryAttempts: number;
  deliveryFailures: number;
  deadLettered: number;
  enqueued: number;
  delivered: number;
  /**
   * Where the counted span begins (epoch ms): `since` rounded down to whole buckets, or later
   * when the store keeps no rates that old (it is younger, or was idle past the retention).
   */
  from: number;
}

/** Bytes on disk: the database file, and its write-ahead log (kept near 32 MiB). */
export interface StoreFileSizes {
  database: number;
  wal: number;
}

export interface Store {
  readonly dialect: 'sqlite' | 'postgres';

  /** Applies numbered migrations; safe to call on every start. */
  migrate(): Promise<void>;
  ping(): Promise<boolean>;
  /** How much disk the store takes, by file; null for a store that has no files. */
  fileSizes(): StoreFileSizes | null;
  close(): Promise<void>;
  /**
   * For stores that several coordinators share: `listener` hears of entries that became
   * ready through another coordinator (route key "type:analyst" → how many), so the polls
   * parked here wake for them too. A store only one process can open has no such news.
   */
  onReady?(listener: (routes: Map<string, number>) => void): void;

  // Agents
  upsertAgent(agent: Agent): Promise<Agent>;
  /** False when the agent is unknown. `metrics` replaces the last ones it reported. */
  heartbeat(
    id: string,
    at: number,
    status?: AgentStatus,
    metrics?: Record<string, unknown>,
  ): Promise<boolean>;
  /** What the agent last reported with a heartbeat, and when; null if it never did. */
  agentMetrics(id: string): Promise<{ metrics: Record<string, unknown>; at: number } | null>;
  getAgent(id: string): Promise<Agent | null>;
  listAgents(filter: AgentFilter): Promise<{ items: Agent[]; total: number }>;
  /** Live: heartbeat at or after `since` and not offline. Small: agents, not messages. */
  liveAgents(since: number): Promise<Agent[]>;
  agentCounts(staleBefore: number): Promise<AgentCounts>;
  /**
   * Removes agents (deregister or prune) with their subscriptions, returns their leased
   * entries to the queue at once, and dead-letters leased entries addressed to them alone
   * with `reason`. One transaction for all. Their pending direct entries are left to
   * `deadLetterUnroutable`, which takes them in bounded batches.
   */
  removeAgents(ids: string[], reason: DeadLetterReason, now: number): Promise<RemoveAgentsOutcome>;
  /**
   * What removeAgents, then deadLetterUnroutable, would do to these agents' messages now:
   * leases released and entries dead-lettered. Changes nothing (a prune's dry run).
   */
  removalPreview(ids: string[]): Promise<{ released: number; deadLettered: number }>;
  /** Agents with no heartbeat since `before`. */
  staleAgentIds(before: number): Promise<string[]>;
  inflightByAgent(): Promise<Map<string, number>>;

  // Subscriptions
  subscribe(agentId: string, topic: string, now: number): Promise<void>;
  unsubscribe(agentId: string, topic: string): Promise<void>;
  subscribers(topic: string): Promise<string[]>;
  subscriptions(topic?: string): Promise<Record<string, string[]>>;
  subscriptionsOf(agentId: string): Promise<string[]>;

  // Queue
  /**
   * With `maxDepth` > 0, refuses the whole call (`rate_limited`) when its entries would take
   * the undelivered messages (queued, delayed, in flight, and those of calls not yet
   * committed) past it. Checked and reserved in one step: concurrent calls cannot all pass on
   * the same reading.
   */
  enqueue(entries: NewEntry[], now: number, maxDepth?: number): Promise<EnqueueOutcome[]>;
  /** Leases ready entries for one agent in claim order. Counts one attempt each. */
  claim(routes: AgentRoutes, options: ClaimOptions): Promise<Delivery[]>;
  /** Removes entries leased to `agentId` (any holder when undefined). */
  ack(
    queueIds: string[],
    agentId: string | undefined,
    now: number,
  ): Promise<{
    acked: number;
    rejected: { queueId: string; why: string }[];
  }>;
  /** Claim and acknowledge in one step (the original worker's poll). */
  claimAndAck(routes: AgentRoutes, limit: number, now: number): Promise<Delivery[]>;
  fail(queueIds: string[], options: FailOptions, backoff: BackoffFn): Promise<FailOutcome>;
  /** Leases past their expiry count as a failed attempt. */
  releaseExpiredLeases(now: number, backoff: BackoffFn, limit: number): Promise<number>;
  /** Dead-letters pending or leased entries past their TTL as `expired`. */
  expireEntries(now: number, limit: number): Promise<number>;
  /** Dead-letters up to `limit` pending entries addressed to agents that are not registered. */
  deadLetterUnroutable(
    agentIds: string[],
    reason: DeadLetterReason,
    now: number,
    limit: number,
  ): Promise<number>;

  getEntry(queueId: string): Promise<QueueEntry | null>;
  deadLetters(query: DeadLetterPageQuery): Promise<{ items: QueueEntry[]; total: number }>;
  requeue(options: RequeueOptions): Promise<RequeueOutcome>;
  purge(
    filter: DeadLetterFilter,
    dryRun: boolean,
    now: number,
  ): Promise<{
    purged: number;
    remaining: number;
  }>;

  /** Routes of pending entries that became ready in (after, upTo]: delays and backoffs ending. */
  becameReady(
    after: number,
    upTo: number,
  ): Promise<{ kind: TargetKind; key: string; count: number }[]>;
  gauges(now: number): Promise<Gauges>;
  /**
   * The gauges and the stats read at one instant, so the conservation equation holds between
   * them: two separate reads of a store others write to can each be right and disagree.
   */
  counts(now: number): Promise<{ gauges: Gauges; stats: Stats }>;
  byTopic(): Promise<Record<string, TopicGauges>>;
  routeCounts(): Promise<RouteCount[]>;
  stats(): Promise<Stats>;
  rates(since: number): Promise<RateTotals>;
  /** Pushed deliveries in flight to an agent: what `maxInflight` limits. */
  inflightOf(agentId: string): Promise<number>;

  // Operator records
  appendAudit(record: Omit<AuditRecord, 'id'>): Promise<AuditRecord>;
  listAudit(limit: number, beforeId?: string): Promise<{ items: AuditRecord[]; total: number }>;
  recordCycle(snapshot: CycleSnapshot): Promise<number>;
  recentCycles(limit: number): Promise<{ cycles: CycleSnapshot[]; total: number }>;
  getMeta(key: string): Promise<string | null>;
  setMeta(key: string, value: string): Promise<void>;
}

export const PRIORITY_RANK: Record<Message['priority'], number> = {
  critical: 0,
  high: 1,
  normal: 2,
  low: 3,
};
