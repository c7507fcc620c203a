// The embedded store: one SQLite file in WAL mode through better-sqlite3, and the live index
// (live-index.ts) that holds claim order, delays, leases and TTLs in memory.
//
// better-sqlite3 is synchronous, so a transaction runs to completion before anything else
// does: with one process owning the file (owner-lock.ts) there are no interleavings to
// reason about. The index changes only after the commit it follows has succeeded. WAL with
// synchronous=NORMAL keeps every commit across a kill -9 of the process (the OS holds the
// written pages); only a power loss can take the last commits, which is the trade every
// embedded queue of this kind makes.

import fs from 'node:fs';
import path from 'node:path';

import Database from 'better-sqlite3';
import { queueFull } from '../../core/errors.ts';
import type { CycleSnapshot } from '../../core/escalation.ts';
import type {
  Agent,
  AgentStatus,
  DeadLetterReason,
  Delivery,
  QueueEntry,
  Stats,
  TopicGauges,
} from '../../core/types.ts';
import { STAT_NAMES } from '../../core/types.ts';
import type { AuditRecord } from '../../engine/contract.ts';
import { mapDriverError } from '../errors.ts';
import { agentWhere, deadWhere, isUnfiltered, REQUEUE_PAGE, REQUEUE_SCAN_MAX } from '../filters.ts';
import {
  type AgentCountRow,
  type AgentRow,
  type AuditRow,
  dict,
  type EntryRow,
  parseQueueId,
  requeued,
  toAgent,
  toAgentCounts,
  toAuditRecord,
  toDelivery,
  toEntry,
  toSubscriptions,
} from '../rows.ts';
import type {
  AgentCounts,
  AgentFilter,
  AgentRoutes,
  BackoffFn,
  ClaimOptions,
  DeadLetterFilter,
  DeadLetterPageQuery,
  EnqueueOutcome,
  FailOptions,
  FailOutcome,
  Gauges,
  NewEntry,
  RateTotals,
  RemoveAgentsOutcome,
  RequeueOptions,
  RequeueOutcome,
  RouteCount,
  Store,
  StoreFileSizes,
} from '../store.ts';
import { NO_TOPIC, RATE_RETENTION_MS, type RateDelta, rateBucket, Tally } from '../tally.ts';
import { Checkpointer } from './checkpointer.ts';
import { FreshMessages } from './fresh-messages.ts';
import { type LiveEntry, LiveIndex, type NewLiveEntry } from './live-index.ts';
import { MIGRATIONS } from './migrations.ts';
import { OwnerLock } from './owner-lock.ts';

type Statement = Database.Statement;

/** How often the worker checkpoints the WAL into the database file. */
const CHECKPOINT_INTERVAL_MS = 500;
/** A WAL this large is started over, and cut back to this size; see checkpointer.ts. */
const WAL_RESET_BYTES = 32 * 1024 * 1024;

export interface SqliteStoreOptions {
  /** Tests shorten these to see the WAL start over without writing 32 MiB. */
  checkpointIntervalMs?: number;
  walResetBytes?: number;
  /** Where the checkpointer's failures are reported; by default a process warning. */
  warn?: (message: string) => void;
}

const ENTRY_GAUGE_COLUMNS = 'queue_id, topic, state';

interface GaugeRow {
  queue_id: number;
  topic: string | null;
  state: QueueEntry['state'];
}

const RATE_SAVE_INTERVAL_MS = 1_000;
/** Up to this many ids are read one statement each rather than through json_each. */
const FEW_IDS = 8;
/** A group this large commits at once rather than waiting for the turn to end. */
const MAX_GROUP_ROWS = 5_000;

interface GroupJob {
  now: number;
  work: (tally: Tally) => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}
const RATE_KEYS = ['attempts', 'failures', 'deadLettered', 'enqueued', 'delivered'] as const;
const NO_RATES: RateDelta = {
  attempts: 0,
  failures: 0,
  deadLettered: 0,
  enqueued: 0,
  delivered: 0,
};

export class SqliteStore implements Store {
  readonly dialect = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Statement>();
  private readonly checkpointer: Checkpointer | null = null;
  private readonly lock: OwnerLock | null = null;
  /** The database file, or null for :memory:. */
  private readonly file: string | null;
  private readonly inTransaction: Database.Transaction<(work: () => unknown) => unknown>;
  /** Claim order, delays, leases and TTLs of the pending entries; see live-index.ts. */
  private live = new LiveIndex();
  /** Messages enqueued and not yet claimed, so a claim need not read them back. */
  private readonly fresh = new FreshMessages();
  /** topic → [pending (leased included), unused, dead]; rebuilt from the file at start. */
  private topicGauges = new Map<string, number[]>();
  /** Pending entries, leased included, as committed: the sum of the topic gauges' first. */
  private pendingTotal = 0;
  /** Entries of enqueue calls admitted and not yet committed or refused; see enqueue(). */
  private uncommitted = 0;
  /** Rate deltas not yet written, by bucket; see persistRates. */
  private unsavedRates = new Map<number, RateDelta>();
  private ratesSavedAt = 0;
  /** Every registered agent, as stored; loaded at start, kept by each commit. */
  private agents = new Map<string, Agent>();
  /** The queue id the next enqueued entry gets; see migration 2. */
  private nextQueueId = 1;
  /** nextQueueId as the file has it: written by flush() when it moved. */
  private storedNextQueueId = 1;
  /** Writes waiting for this turn's group commit; see grouped(). */
  private group: GroupJob[] = [];
  private groupRows = 0;
  private groupScheduled = false;
  /** While the checkpointer starts the WAL over, group commits wait; see checkpointer.ts. */
  private commitsHeld = false;

  constructor(file: string, options: SqliteStoreOptions = {}) {
    this.file = file === ':memory:' ? null : file;
    if (file !== ':memory:') {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      this.lock = OwnerLock.acquire(path.resolve(file));
    }

    this.db = new Database(file);
    // One wrapper, made once: better-sqlite3 builds a new one per transaction() call.
    this.inTransaction = this.db.transaction((work: () => unknown) => work());
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = OFF');
    // Only another tool (a backup, a sqlite3 shell) can hold the write lock: no second server
    // gets this far (owner-lock.ts). Waiting blocks the event loop, so wait briefly and answer
    // 503 rather than freeze every request for seconds.
    this.db.pragma('busy_timeout = 500');
    // 8 MiB of page cache. The claim order lives in memory (live-index.ts), so the hot pages
    // are only the newest rows, which claims and acks touch soon after they are written; a
    // larger cache bought no throughput in the benchmark and cost resident memory.
    this.db.pragma('cache_size = -8192');
    this.db.pragma('temp_store = MEMORY');

    // Checkpoints run in a worker (see checkpointer.ts), never inside a commit here.
    if (file !== ':memory:') {
      const resetBytes = options.walResetBytes ?? WAL_RESET_BYTES;
      const warn = (line: string) => {
        if (options.warn === undefined) process.emitWarning(line);
        else options.warn(line);
      };
      this.db.pragma('wal_autocheckpoint = 0');
      // When a commit starts the WAL over, the file is cut back to this size.
      this.db.pragma(`journal_size_limit = ${resetBytes}`);
      this.checkpointer = new Checkpointer(file, {
        intervalMs: options.checkpointIntervalMs ?? CHECKPOINT_INTERVAL_MS,
        resetBytes,
        onError: (message) => warn(`WAL checkpoint failed: ${message}`),
        onLongHold: warn,
        commits: {
          hold: () => {
            this.commitsHeld = true;
          },
          release: () => {
            this.commitsHeld = false;
            if (this.group.length > 0) this.scheduleCommit();
          },
        },
      });
    }

    // Payloads are the swarm's business: the file and its WAL are for this user alone.
    if (file !== ':memory:') {
      for (const suffix of ['', '-wal', '-shm']) {
        try {
          fs.chmodSync(`${file}${suffix}`, 0o600);
        } catch {
          // -wal and -shm exist only once WAL mode has written; SQLite creates them with the
          // main file's mode.
        }
      }
    }
  }

  /** One prepared statement per SQL text, prepared on first use. */
  private sql(text: string): Statement {
    let statement = this.statements.get(text);
    if (statement === undefined) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  private tx<T>(work: (tally: Tally) => T, now = Date.now()): T {
    let tally: Tally | undefined;
    let written: number | null = null;
    let result: T;
    try {
      result = this.inTransaction.immediate(() => {
        tally = new Tally(now);
        const value = work(tally);
        written = this.flush(tally);
        return value;
      }) as T;
    } catch (err) {
      throw mapDriverError(err);
    }

    this.committed([tally as Tally], written, now);
    return result;
  }

  /** A commit happened: now the live index and the in-memory gauges may follow. */
  private committed(tallies: Tally[], written: number | null, now: number): void {
    if (written !== null) this.storedNextQueueId = written;
    for (const tally of tallies) {
      this.applyTally(tally);
      for (const change of tally.afterCommit) change();
    }
    this.persistRates(now);
  }

  /**
   * Group commit: enqueues and acks made in the same turn of the event loop share one
   * transaction, committed when the turn ends. A commit, not the rows, is what a small write
   * costs (~40-100 µs here, against ~5-10 µs per row), so at 16 concurrent senders this turns
   * sixteen commits into one. Every call stays atomic: if any job fails, the group rolls
   * back whole and each job is retried in a transaction of its own.
   */
  private grouped<T>(now: number, rows: number, work: (tally: Tally) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.group.push({ now, work, resolve: resolve as (value: unknown) => void, reject });
      this.groupRows += rows;

      if (this.groupRows >= MAX_GROUP_ROWS && !this.commitsHeld) this.commitGroup();
      else this.scheduleCommit();
    });
  }

  private scheduleCommit(): void {
    if (this.groupScheduled || this.commitsHeld) return;
    this.groupScheduled = true;
    setImmediate(() => {
      this.groupScheduled = false;
      // A hold that began after this was scheduled: release() schedules the commit again.
      if (!this.commitsHeld) this.commitGroup();
    });
  }

  /** Commits the waiting group now; close() calls it whatever the checkpointer holds. */
  private commitGroup(): void {
    const jobs = this.group;
    this.group = [];
    this.groupRows = 0;
    if (jobs.length === 0) return;

    const tallies = jobs.map((job) => new Tally(job.now));
    let values: unknown[];
    let written: number | null = null;
    try {
      values = this.inTransaction.immediate(() => {
        const out = jobs.map((job, i) => job.work(tallies[i] as Tally));
        // One write per counter for the whole group, not per job.
        written = this.flush(Tally.merge(tallies));
        return out;
      }) as unknown[];
    } catch (err) {
      if (jobs.length === 1) {
        jobs[0]?.reject(mapDriverError(err));
        return;
      }
      // Nothing of the group was written. Each job runs again alone, so the one that fails
      // is refused by itself and the others commit: the common path pays for no savepoints.
      for (const job of jobs) {
        try {
          job.resolve(this.tx(job.work, job.now));
        } catch (again) {
          job.reject(again);
        }
      }
      return;
    }

    this.committed(tallies, written, jobs[jobs.length - 1]?.now ?? Date.now());
    for (const [i, job] of jobs.entries()) job.resolve(values[i]);
  }

  private read<T>(work: () => T): T {
    try {
      return work();
    } catch (err) {
      throw mapDriverError(err);
    }
  }

  /**
   * Writes a transaction's counter deltas: one statement per counter touched, all on one
   * page. Per-topic gauges and rates are not written here (see applyTally and persistRates):
   * each table a commit touches is another page written to the WAL, ~10 µs apiece.
   */
  private flush(tally: Tally): number | null {
    for (const [name, delta] of tally.counters) {
      if (delta !== 0) {
        this.sql('UPDATE counters SET value = value + ? WHERE name = ?').run(delta, name);
      }
    }

    // The next queue id is stored in the transaction of the rows that used the ids before it,
    // so no restart reuses one of them, even once they are acknowledged and deleted. Once per
    // transaction, not per enqueue call: a group of sixteen pays for one UPDATE.
    if (this.nextQueueId === this.storedNextQueueId) return null;
    this.sql(`UPDATE counters SET value = ? WHERE name = 'nextQueueId'`).run(this.nextQueueId);
    return this.nextQueueId;
  }

  /** After a commit: topic gauges and rates follow in memory. */
  private applyTally(tally: Tally): void {
    for (const [dim, key, deltas] of tally.gauges()) {
      if (dim !== 'topic') continue;
      this.pendingTotal += deltas[0] ?? 0;
      const gauge = this.topicGauges.get(key) ?? [0, 0, 0];
      for (let i = 0; i < 3; i += 1) gauge[i] = (gauge[i] ?? 0) + (deltas[i] ?? 0);
      if (gauge[0] === 0 && gauge[2] === 0) this.topicGauges.delete(key);
      else this.topicGauges.set(key, gauge);
    }

    this.addRates(tally.now, tally.rate);
  }

  private addRates(now: number, r: RateDelta): void {
    if (!(r.attempts || r.failures || r.deadLettered || r.enqueued || r.delivered)) return;
    const bucket = rateBucket(now);
    const unsaved = this.unsavedRates.get(bucket);
    if (unsaved === undefined) this.unsavedRates.set(bucket, { ...r });
    else for (const k of RATE_KEYS) unsaved[k] += r[k];
  }

  /**
   * Rates are observability, not accounting: they are written at most once a second, in
   * their own small transaction, so a crash loses at most the last second of them.
   */
  private persistRates(now: number, force = false): void {
    if (this.unsavedRates.size === 0) return;
    if (!force && now - this.ratesSavedAt < RATE_SAVE_INTERVAL_MS) return;

    const unsaved = this.unsavedRates;
    this.unsavedRates = new Map();
    this.ratesSavedAt = now;
    const upsert = this.sql(
      `INSERT INTO rate_buckets (bucket, attempts, failures, dead_lettered, enqueued, delivered)
       VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (bucket) DO UPDATE SET attempts = attempts + excluded.attempts,
         failures = failures + excluded.failures,
         dead_lettered = dead_lettered + excluded.dead_lettered,
         enqueued = enqueued + excluded.enqueued, delivered = delivered + excluded.delivered`,
    );
    try {
      this.inTransaction(() => {
        for (const [bucket, r] of unsaved) {
          upsert.run(bucket, r.attempts, r.failures, r.deadLettered, r.enqueued, r.delivered);
        }
        this.sql('DELETE FROM rate_buckets WHERE bucket < ?').run(now - RATE_RETENTION_MS);
      });
    } catch {
      // Kept for the next try: a rate total is not worth failing a request for.
      for (const [bucket, r] of unsaved) {
        const again = this.unsavedRates.get(bucket);
        if (again === undefined) this.unsavedRates.set(bucket, r);
        else for (const k of RATE_KEYS) again[k] += r[k];
      }
    }
  }

  async migrate(): Promise<void> {
    this.read(() => {
      this.db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);

      const applied = new Set(
        (
          this.db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]
        ).map((row) => row.version),
      );

      for (const migration of MIGRATIONS) {
        if (applied.has(migration.version)) continue;
        this.db.transaction(() => {
          this.db.exec(migration.up);
          this.db
            .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
            .run(migration.version, migration.name, Date.now());
        })();
      }

      this.loadLive(Date.now());
    });
  }

  async ping(): Promise<boolean> {
    try {
      this.sql('SELECT 1').get();
      return true;
    } catch {
      return false;
    }
  }

  fileSizes(): StoreFileSizes | null {
    if (this.file === null) return null;

    const size = (file: string): number => {
      try {
        return fs.statSync(file).size;
      } catch {
        // The WAL exists only once something was written, and goes with a clean close.
        return 0;
      }
    };
    return { database: size(this.file), wal: size(`${this.file}-wal`) };
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    // Writes already accepted into this turn's group are committed, not dropped.
    this.commitGroup();
    this.persistRates(Date.now(), true);
    await this.checkpointer?.stop();
    // A clean close checkpoints the WAL into the main file.
    this.db.close();
    this.lock?.release();
  }

  /**
   * Rebuilds the live index from the file: every pending entry, ready or delayed. Leases are
   * not stored, so nothing is in flight after a start.
   */
  private loadLive(now: number): void {
    const live = new LiveIndex();
    const topics = new Map<string, number[]>();
    const rows = this.db
      .prepare(
        `SELECT queue_id, route_kind, route_key, priority, topic, available_at, expires_at,
           attempts FROM entries WHERE state = 'pending' ORDER BY queue_id`,
      )
      .raw()
      .iterate() as IterableIterator<
      [number, string, string, number, string | null, number, number | null, number]
    >;
    for (const [
      id,
      routeKind,
      routeKey,
      priority,
      topic,
      availableAt,
      expiresAt,
      attempts,
    ] of rows) {
      live.add({ id, routeKind, routeKey, priority, topic, availableAt, expiresAt }, now, attempts);
      const key = topic ?? NO_TOPIC;
      const gauge = topics.get(key);
      if (gauge === undefined) topics.set(key, [1, 0, 0]);
      else gauge[0] = (gauge[0] ?? 0) + 1;
    }

    const dead = this.db
      .prepare(`SELECT topic, COUNT(*) AS n FROM entries WHERE state = 'dead' GROUP BY topic`)
      .all() as { topic: string | null; n: number }[];
    for (const { topic, n } of dead) {
      const key = topic ?? NO_TOPIC;
      const gauge = topics.get(key) ?? [0, 0, 0];
      gauge[2] = (gauge[2] ?? 0) + n;
      topics.set(key, gauge);
    }

    this.live = live;
    this.topicGauges = topics;
    this.pendingTotal = 0;
    for (const [pending = 0] of topics.values()) this.pendingTotal += pending;
    this.agents = new Map(
      (this.db.prepare('SELECT * FROM agents').all() as AgentRow[]).map((row) => [
        row.id,
        toAgent(row),
      ]),
    );

    const next = this.db.prepare(`SELECT value FROM counters WHERE name = 'nextQueueId'`).get() as {
      value: number;
    };
    const max = this.db.prepare('SELECT MAX(queue_id) AS id FROM entries').get() as {
      id: number | null;
    };
    this.nextQueueId = Math.max(next.value, (max.id ?? 0) + 1);
    this.storedNextQueueId = next.value;
  }

  // Agents

  async upsertAgent(agent: Agent): Promise<Agent> {
    return this.tx((tally) => {
      const existing = this.sql('SELECT registered_at FROM agents WHERE id = ?').get(agent.id) as
        | { registered_at: number }
        | undefined;
      const registeredAt = existing?.registered_at ?? agent.registeredAt;

      this.sql(
        `INSERT INTO agents (id, type, status, capabilities, endpoint, max_inflight, metadata,
           registered_at, last_heartbeat)
         VALUES (@id, @type, @status, @capabilities, @endpoint, @maxInflight, @metadata,
           @registeredAt, @lastHeartbeat)
         ON CONFLICT (id) DO UPDATE SET type = excluded.type, status = excluded.status,
           capabilities = excluded.capabilities, endpoint = excluded.endpoint,
           max_inflight = excluded.max_inflight, metadata = excluded.metadata,
           last_heartbeat = excluded.last_heartbeat`,
      ).run({
        ...agent,
        registeredAt,
        capabilities: JSON.stringify(agent.capabilities),
        metadata: JSON.stringify(agent.metadata),
      });

      this.sql('DELETE FROM agent_capabilities WHERE agent_id = ?').run(agent.id);
      const addCapability = this.sql(
        'INSERT OR IGNORE INTO agent_capabilities (capability, agent_id) VALUES (?, ?)',
      );
      for (const capability of agent.capabilities) addCapability.run(capability, agent.id);

      const stored = { ...agent, registeredAt };
      tally.afterCommit.push(() => this.agents.set(agent.id, stored));
      return { ...stored };
    });
  }

  async heartbeat(
    id: string,
    at: number,
    status?: AgentStatus,
    metrics?: Record<string, unknown>,
  ): Promise<boolean> {
    return this.tx((tally) => {
      const result =
        status === undefined
          ? this.sql('UPDATE agents SET last_heartbeat = ? WHERE id = ?').run(at, id)
          : this.sql('UPDATE agents SET last_heartbeat = ?, status = ? WHERE id = ?').run(
              at,
              status,
              id,
            );
      if (result.changes > 0 && metrics !== undefined) {
        this.sql(
          `INSERT INTO agent_metrics (agent_id, metrics, reported_at) VALUES (?, ?, ?)
           ON CONFLICT (agent_id) DO UPDATE SET metrics = excluded.metrics,
             reported_at = excluded.reported_at`,
        ).run(id, JSON.stringify(metrics), at);
      }
      tally.afterCommit.push(() => {
        const cached = this.agents.get(id);
        if (cached === undefined) return;
        this.agents.set(id, { ...cached, lastHeartbeat: at, status: status ?? cached.status });
      });
      return result.changes > 0;
    });
  }

  async agentMetrics(id: string): Promise<{ metrics: Record<string, unknown>; at: number } | null> {
    const row = this.read(() =>
      this.sql('SELECT metrics, reported_at FROM agent_metrics WHERE agent_id = ?').get(id),
    ) as { metrics: string; reported_at: number } | undefined;
    return row === undefined ? null : { metrics: JSON.parse(row.metrics), at: row.reported_at };
  }

  // Every poll reads its agent, twice when it waits: from memory, kept with each commit that
  // changes an agent, instead of a query and two JSON parses each time.
  async getAgent(id: string): Promise<Agent | null> {
    const agent = this.agents.get(id);
    return agent === undefined ? null : { ...agent };
  }

  async listAgents(filter: AgentFilter): Promise<{ items: Agent[]; total: number }> {
    return this.read(() => {
      const { count, page } = agentWhere(filter);
      const total = (
        this.sql(`SELECT COUNT(*) AS n FROM agents ${count.sql}`).get(...count.params) as {
          n: number;
        }
      ).n;
      const rows = this.sql(`SELECT * FROM agents ${page.sql} ORDER BY id LIMIT ?`).all(
        ...page.params,
        filter.limit,
      ) as AgentRow[];
      return { items: rows.map(toAgent), total };
    });
  }

  async liveAgents(since: number): Promise<Agent[]> {
    const live: Agent[] = [];
    for (const agent of this.agents.values()) {
      if (agent.lastHeartbeat >= since && agent.status !== 'offline') live.push({ ...agent });
    }
    return live.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async agentCounts(staleBefore: number): Promise<AgentCounts> {
    return this.read(() =>
      toAgentCounts(
        this.sql(
          `SELECT type, status, last_heartbeat < ? AS stale, COUNT(*) AS n
           FROM agents GROUP BY type, status, stale`,
        ).all(staleBefore) as AgentCountRow[],
      ),
    );
  }

  async removeAgents(
    ids: string[],
    reason: DeadLetterReason,
    now: number,
  ): Promise<RemoveAgentsOutcome> {
    return this.tx((tally) => {
      const removed: string[] = [];
      let released = 0;
      let deadLettered = 0;

      for (const id of ids) {
        const gone = this.sql('DELETE FROM agents WHERE id = ?').run(id);
        if (gone.changes === 0) continue;
        removed.push(id);
        tally.afterCommit.push(() => this.agents.delete(id));

        this.sql('DELETE FROM agent_capabilities WHERE agent_id = ?').run(id);
        this.sql('DELETE FROM subscriptions WHERE agent_id = ?').run(id);
        this.sql('DELETE FROM agent_metrics WHERE agent_id = ?').run(id);

        // Leases held by the agent go back at once, their attempt counted; those addressed
        // to it alone have nowhere to go and join its pending direct entries in the
        // dead-letter queue.
        for (const entry of this.live.heldBy(id)) {
          const fate = this.fateOfLease(entry, id);
          if (fate === 'direct') {
            this.deadLetter(entry, reason, undefined, now, tally);
            deadLettered += 1;
            continue;
          }
          if (fate === 'spent') {
            this.deadLetter(entry, 'max_attempts', `lease holder ${id} removed`, now, tally);
            deadLettered += 1;
            continue;
          }
          this.sql('UPDATE entries SET attempts = ?, available_at = ? WHERE queue_id = ?').run(
            entry.attempt,
            now,
            entry.id,
          );
          tally.afterCommit.push(() => this.live.release(entry, now, now));
          released += 1;
        }
      }

      // Pending direct entries can number in the hundreds of thousands: they are left to
      // deadLetterUnroutable, in batches, so removal never holds the server for seconds.

      return { removed, released, deadLettered };
    }, now);
  }

  /**
   * What becomes of a lease when its holder is removed: one addressed to the holder alone has
   * nowhere to go (`direct`); one on its last attempt ends as a lapsed lease would (`spent`);
   * any other goes back to the queue.
   */
  private fateOfLease(entry: LiveEntry, holder: string): 'direct' | 'spent' | 'released' {
    if (entry.route.kind === 'agent' && entry.route.target === holder) return 'direct';
    return entry.attempt >= this.maxAttemptsOf(entry.id) ? 'spent' : 'released';
  }

  async removalPreview(ids: string[]): Promise<{ released: number; deadLettered: number }> {
    return this.read(() => {
      let released = 0;
      let deadLettered = 0;

      for (const id of ids) {
        if (!this.agents.has(id)) continue;
        for (const entry of this.live.heldBy(id)) {
          if (this.fateOfLease(entry, id) === 'released') released += 1;
          else deadLettered += 1;
        }
        // Its pending direct entries, which deadLetterUnroutable takes after the removal.
        const direct = this.live.existingRoute(`agent:${id}`);
        if (direct !== undefined) deadLettered += direct.ready + direct.delayed;
      }
      return { released, deadLettered };
    });
  }

  async staleAgentIds(before: number): Promise<string[]> {
    return this.read(() =>
      (
        this.sql('SELECT id FROM agents WHERE last_heartbeat < ? ORDER BY id').all(before) as {
          id: string;
        }[]
      ).map((row) => row.id),
    );
  }

  async inflightByAgent(): Promise<Map<string, number>> {
    return this.live.inflightByHolder();
  }

  async inflightOf(agentId: string): Promise<number> {
    return this.live.inflightOf(agentId);
  }

  // Subscriptions

  async subscribe(agentId: string, topic: string, now: number): Promise<void> {
    this.tx(() => {
      this.sql(
        'INSERT OR IGNORE INTO subscriptions (topic, agent_id, created_at) VALUES (?, ?, ?)',
      ).run(topic, agentId, now);
    });
  }

  async unsubscribe(agentId: string, topic: string): Promise<void> {
    this.tx(() => {
      this.sql('DELETE FROM subscriptions WHERE topic = ? AND agent_id = ?').run(topic, agentId);
    });
  }

  async subscribers(topic: string): Promise<string[]> {
    return this.read(() =>
      (
        this.sql('SELECT agent_id FROM subscriptions WHERE topic = ? ORDER BY agent_id').all(
          topic,
        ) as { agent_id: string }[]
      ).map((row) => row.agent_id),
    );
  }

  async subscriptions(topic?: string): Promise<Record<string, string[]>> {
    return this.read(() => {
      const rows = (
        topic === undefined
          ? this.sql('SELECT topic, agent_id FROM subscriptions ORDER BY topic, agent_id').all()
          : this.sql(
              'SELECT topic, agent_id FROM subscriptions WHERE topic = ? ORDER BY agent_id',
            ).all(topic)
      ) as { topic: string; agent_id: string }[];

      return toSubscriptions(rows);
    });
  }

  async subscriptionsOf(agentId: string): Promise<string[]> {
    return this.read(() =>
      (
        this.sql('SELECT topic FROM subscriptions WHERE agent_id = ? ORDER BY topic').all(
          agentId,
        ) as { topic: string }[]
      ).map((row) => row.topic),
    );
  }

  // Queue

  async enqueue(entries: NewEntry[], now: number, maxDepth = 0): Promise<EnqueueOutcome[]> {
    if (entries.length === 0) return [];

    // Backpressure. A call waits for its group's commit, so what earlier calls of the group
    // will add is not in pendingTotal yet: it is counted here until their commit has it.
    if (maxDepth > 0 && this.pendingTotal + this.uncommitted + entries.length > maxDepth) {
      throw queueFull(this.pendingTotal + this.uncommitted, maxDepth, entries.length);
    }
    this.uncommitted += entries.length;
    try {
      return await this.insertEntries(entries, now);
    } finally {
      this.uncommitted -= entries.length;
    }
  }

  private insertEntries(entries: NewEntry[], now: number): Promise<EnqueueOutcome[]> {
    return this.grouped(now, entries.length, (tally) => {
      const findLive = this.sql(
        `SELECT queue_id FROM entries
         WHERE dedupe_key = ? AND dedupe_key IS NOT NULL AND state <> 'dead' LIMIT 1`,
      );
      // Positional parameters: binding fifteen named ones cost ~8 µs a row in
      // better-sqlite3 (measured on the 2-core machine), a third of the whole insert.
      const insert = this.sql(
        `INSERT INTO entries (queue_id, message_id, dedupe_key, target, route_kind, route_key,
           topic, priority, state, enqueued_at, available_at, expires_at, attempts,
           max_attempts, reason, dead_lettered_at, message)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)`,
      );
      let nextId = this.nextQueueId;

      const added: NewLiveEntry[] = [];
      const texts: string[] = [];
      tally.afterCommit.push(() => {
        for (const [i, fields] of added.entries()) {
          this.live.add(fields, now);
          this.fresh.add(fields.id, texts[i] as string);
        }
      });

      const outcomes = entries.map((entry) => {
        const existing =
          entry.dedupeKey === null
            ? undefined
            : (findLive.get(entry.dedupeKey) as { queue_id: number } | undefined);
        if (existing !== undefined) {
          tally.count('deduplicated');
          return { queueId: String(existing.queue_id), duplicate: true };
        }

        // The agent map follows every committed registration, and no registration commits
        // while a group is being written.
        const dead = entry.requireRegistered && !this.agents.has(entry.routeKey);
        const id = nextId;
        nextId += 1;
        insert.run(
          id,
          entry.message.id,
          entry.dedupeKey,
          entry.message.target,
          entry.routeKind,
          entry.routeKey,
          entry.message.topic,
          entry.priority,
          dead ? 'dead' : 'pending',
          now,
          entry.availableAt,
          entry.expiresAt,
          entry.maxAttempts,
          dead ? 'no_route' : null,
          dead ? now : null,
          entry.messageJson,
        );

        tally.count('enqueued');
        tally.rate.enqueued += 1;
        tally.move(entry.message, null, dead ? 'dead' : 'pending');
        if (dead) {
          tally.count('deadLettered');
          tally.rate.deadLettered += 1;
        } else {
          texts.push(entry.messageJson);
          added.push({
            id,
            routeKind: entry.routeKind,
            routeKey: entry.routeKey,
            priority: entry.priority,
            topic: entry.message.topic,
            availableAt: entry.availableAt,
            expiresAt: entry.expiresAt,
          });
        }

        return { queueId: String(id), duplicate: false };
      });

      // A later job of the same group must not hand out these ids again; flush() stores the
      // next id with the rows that used this range.
      this.nextQueueId = nextId;
      return outcomes;
    });
  }

  /** The keys of the routes an agent takes deliveries from. */
  private routeKeys(routes: AgentRoutes): string[] {
    const keys = [`agent:${routes.agentId}`, `type:${routes.type}`];
    for (const capability of routes.capabilities) keys.push(`capability:${capability}`);
    return keys;
  }

  /**
   * Reads the stored rows of entries just taken from the live index: one statement for the
   * batch, by primary key. The rows come back in rowid order; `entries` is in claim order.
   */
  private claimedRows(entries: LiveEntry[]): Map<number, ClaimedRow> {
    const rows = new Map<number, ClaimedRow>();
    const unread: LiveEntry[] = [];
    for (const entry of entries) {
      const message = this.fresh.take(entry.id);
      if (message === undefined) unread.push(entry);
      else rows.set(entry.id, { queue_id: entry.id, attempts: 0, message });
    }
    if (unread.length === 0) return rows;

    // A few ids are cheaper by primary key one at a time: json_each costs ~25 µs to set up,
    // which is most of a poll that takes one message.
    if (unread.length <= FEW_IDS) {
      const one = this.sql('SELECT queue_id, attempts, message FROM entries WHERE queue_id = ?');
      for (const entry of unread) {
        const row = one.get(entry.id) as ClaimedRow | undefined;
        if (row !== undefined) rows.set(row.queue_id, row);
      }
      return rows;
    }

    const read = this.sql(
      `SELECT queue_id, attempts, message FROM entries
       WHERE queue_id IN (SELECT value FROM json_each(?))`,
    ).all(JSON.stringify(unread.map((entry) => entry.id))) as ClaimedRow[];
    for (const row of read) rows.set(row.queue_id, row);
    return rows;
  }

  /**
   * The claim: entries taken from the live index in claim order, their messages read by
   * primary key. Nothing is written: the lease lives in memory (see live-index.ts), so a poll
   * costs no commit, and the attempt is stored when the lease ends without an ack.
   */
  async claim(routes: AgentRoutes, options: ClaimOptions): Promise<Delivery[]> {
    const taken = this.live.take(this.routeKeys(routes), options.limit, options.now);
    if (taken.length === 0) return [];

    let rows: Map<number, ClaimedRow>;
    try {
      rows = this.read(() => this.claimedRows(taken));
    } catch (err) {
      this.live.putBack(taken, options.now);
      throw err;
    }

    const leaseExpiresAt = options.now + options.leaseMs;
    const deliveries: Delivery[] = [];
    for (const entry of taken) {
      const row = rows.get(entry.id);
      // Every live entry has its row; one that does not leaves the index for good.
      if (row === undefined) {
        this.live.remove(entry);
        continue;
      }
      this.live.lease(entry, routes.agentId, leaseExpiresAt, row.attempts + 1);
      deliveries.push(toDelivery(entry.id, row.attempts + 1, row.message, leaseExpiresAt));
    }
    // A claim commits nothing, so its attempts go straight to the unsaved rates.
    this.addRates(options.now, { ...NO_RATES, attempts: deliveries.length });
    return deliveries;
  }

  async claimAndAck(routes: AgentRoutes, limit: number, now: number): Promise<Delivery[]> {
    const taken = this.live.take(this.routeKeys(routes), limit, now);
    if (taken.length === 0) return [];

    try {
      return this.tx((tally) => {
        const rows = this.claimedRows(taken);
        const remove = this.sql('DELETE FROM entries WHERE queue_id = ?');
        const deliveries: Delivery[] = [];
        for (const entry of taken) {
          const row = rows.get(entry.id);
          if (row !== undefined) {
            remove.run(entry.id);
            tally.move(entry, 'pending', null);
            deliveries.push(toDelivery(entry.id, row.attempts + 1, row.message, now));
          }
          // Delivered or rowless, it leaves the index, TTL deadline included.
          tally.afterCommit.push(() => this.live.remove(entry));
        }
        tally.count('delivered', deliveries.length);
        tally.rate.delivered += deliveries.length;
        tally.rate.attempts += deliveries.length;
        return deliveries;
      }, now);
    } catch (err) {
      this.live.putBack(taken, now);
      throw err;
    }
  }

  async ack(
    queueIds: string[],
    agentId: string | undefined,
    now: number,
  ): Promise<{ acked: number; rejected: { queueId: string; why: string }[] }> {
    // Leases are in memory: who holds what is known before the transaction, which only
    // deletes the rows.
    const { entries: accepted, rejected } = this.leasedFor(queueIds, agentId);
    if (accepted.length === 0) return { acked: 0, rejected };

    // The ack is decided now, and the entries leave the lease set now, so nothing between
    // here and the group commit (a lease sweep, a second ack) can act on them. Should the
    // commit fail, the leases are put back as they were and run out as usual.
    const leases = accepted.map((entry) => ({
      entry,
      holder: entry.holder as string,
      until: entry.leaseUntil,
      attempt: entry.attempt,
    }));
    for (const entry of accepted) this.live.unlease(entry);

    try {
      return await this.grouped(now, accepted.length, (tally) => {
        // One set-based DELETE for a batch: a statement per id cost about twice as much per
        // acknowledged message (measured with a 250-id batch). A few ids go one by one, as
        // json_each costs more to set up than they do to delete.
        if (accepted.length <= FEW_IDS) {
          const one = this.sql('DELETE FROM entries WHERE queue_id = ?');
          for (const entry of accepted) one.run(entry.id);
        } else {
          this.sql('DELETE FROM entries WHERE queue_id IN (SELECT value FROM json_each(?))').run(
            JSON.stringify(accepted.map((entry) => entry.id)),
          );
        }
        for (const entry of accepted) tally.move(entry, 'pending', null);
        tally.count('delivered', accepted.length);
        tally.rate.delivered += accepted.length;
        tally.afterCommit.push(() => {
          for (const entry of accepted) this.live.remove(entry);
        });
        return { acked: accepted.length, rejected };
      });
    } catch (err) {
      for (const { entry, holder, until, attempt } of leases) {
        if (entry.state === 'gone') this.live.lease(entry, holder, until, attempt);
      }
      throw err;
    }
  }

  /**
   * The entries of `queueIds` leased right now (to `agentId`, when given), each once, and
   * why each other id is refused.
   */
  private leasedFor(
    queueIds: string[],
    agentId: string | undefined,
  ): { entries: LiveEntry[]; rejected: { queueId: string; why: string }[] } {
    const entries: LiveEntry[] = [];
    const rejected: { queueId: string; why: string }[] = [];
    const seen = new Set<number>();
    for (const queueId of queueIds) {
      const id = parseQueueId(queueId);
      const entry = id === null ? undefined : this.live.leased(id);
      if (
        entry === undefined ||
        seen.has(entry.id) ||
        (agentId !== undefined && entry.holder !== agentId)
      ) {
        rejected.push({ queueId, why: this.whyNotLeased(id, agentId) });
        continue;
      }
      seen.add(entry.id);
      entries.push(entry);
    }
    return { entries, rejected };
  }

  /** Why an id cannot be acknowledged or failed: it is not leased right now. */
  private whyNotLeased(id: number | null, agentId: string | undefined): string {
    if (id === null) return 'unknown_queue_id';
    const leased = this.live.leased(id);
    if (leased !== undefined) {
      return agentId !== undefined && leased.holder !== agentId ? 'not_lease_holder' : 'not_leased';
    }
    const row = this.sql('SELECT state FROM entries WHERE queue_id = ?').get(id) as
      | { state: string }
      | undefined;
    if (row === undefined) return 'unknown_queue_id';
    return `not_leased (${row.state})`;
  }

  async fail(queueIds: string[], options: FailOptions, backoff: BackoffFn): Promise<FailOutcome> {
    const { entries: failing, rejected } = this.leasedFor(queueIds, options.agentId);
    const outcome: FailOutcome = { retried: 0, deadLettered: 0, rejected };
    if (failing.length === 0) return outcome;

    return this.tx((tally) => {
      for (const entry of failing) {
        const verdict = this.failOne(
          entry,
          options.error,
          options.retry,
          options.delayMs,
          options.now,
          backoff,
          tally,
        );
        if (verdict === 'dead') outcome.deadLettered += 1;
        else outcome.retried += 1;
      }
      return outcome;
    }, options.now);
  }

  private maxAttemptsOf(id: number): number {
    const row = this.sql('SELECT max_attempts FROM entries WHERE queue_id = ?').get(id) as
      | { max_attempts: number }
      | undefined;
    // No row: nothing to retry, so any attempt is the last.
    return row?.max_attempts ?? 0;
  }

  /** One failed attempt: retry after backoff, or dead-letter when the budget is spent. */
  private failOne(
    entry: LiveEntry,
    error: string,
    retry: boolean,
    delayMs: number | undefined,
    now: number,
    backoff: BackoffFn,
    tally: Tally,
  ): 'retried' | 'dead' {
    tally.count('failed');
    tally.rate.failures += 1;

    if (!retry || entry.attempt >= this.maxAttemptsOf(entry.id)) {
      this.deadLetter(entry, retry ? 'max_attempts' : 'rejected', error, now, tally);
      return 'dead';
    }

    const availableAt = now + (delayMs ?? backoff(entry.attempt));
    this.sql(
      'UPDATE entries SET attempts = ?, available_at = ?, last_error = ? WHERE queue_id = ?',
    ).run(entry.attempt, availableAt, error, entry.id);
    tally.afterCommit.push(() => this.live.release(entry, availableAt, now));
    tally.count('retried');
    return 'retried';
  }

  /**
   * A live entry (pending or leased) to the dead-letter queue. `error` replaces the stored
   * last error when given. The attempts stored are those made, the current lease included.
   */
  private deadLetter(
    entry: LiveEntry,
    reason: DeadLetterReason,
    error: string | undefined,
    now: number,
    tally: Tally,
  ): boolean {
    const { changes } = this.sql(
      `UPDATE entries SET state = 'dead', reason = ?, dead_lettered_at = ?,
         last_error = COALESCE(?, last_error), attempts = ? WHERE queue_id = ? AND state = 'pending'`,
    ).run(reason, now, error ?? null, entry.attempt, entry.id);
    tally.afterCommit.push(() => this.live.remove(entry));
    // An entry the index still held but the file no longer has must not be counted twice:
    // the counters follow the rows.
    if (changes === 0) return false;
    tally.move(entry, 'pending', 'dead');
    tally.count('deadLettered');
    tally.rate.deadLettered += 1;
    return true;
  }

  async releaseExpiredLeases(now: number, backoff: BackoffFn, limit: number): Promise<number> {
    const expired = this.live.expiredLeases(now, limit);
    if (expired.length === 0) return 0;

    return this.tx((tally) => {
      for (const entry of expired) {
        this.failOne(entry, 'lease expired', true, undefined, now, backoff, tally);
      }
      return expired.length;
    }, now);
  }

  async expireEntries(now: number, limit: number): Promise<number> {
    const expired = this.live.expired(now, limit);
    if (expired.length === 0) {
      // The sweep runs when nothing else may: it is what saves the rates of a quiet swarm.
      this.persistRates(now);
      return 0;
    }

    // Entries stay in the live index until the commit: a failed one finds them again.
    return this.tx((tally) => {
      let count = 0;
      for (const entry of expired) {
        if (!this.deadLetter(entry, 'expired', undefined, now, tally)) continue;
        tally.count('expired');
        count += 1;
      }
      return count;
    }, now);
  }

  async deadLetterUnroutable(
    agentIds: string[],
    reason: DeadLetterReason,
    now: number,
    limit: number,
  ): Promise<number> {
    return this.tx((tally) => {
      let count = 0;
      for (const id of agentIds) {
        if (count >= limit) break;
        // An agent that registered again in the meantime keeps its messages.
        if (this.sql('SELECT 1 FROM agents WHERE id = ?').get(id) !== undefined) continue;
        for (const entry of this.live.pendingOf(`agent:${id}`, limit - count)) {
          this.deadLetter(entry, reason, undefined, now, tally);
          count += 1;
        }
      }
      return count;
    }, now);
  }

  async getEntry(queueId: string): Promise<QueueEntry | null> {
    return this.read(() => {
      const id = parseQueueId(queueId);
      if (id === null) return null;
      const row = this.sql('SELECT * FROM entries WHERE queue_id = ?').get(id) as
        | EntryRow
        | undefined;
      if (row === undefined) return null;

      // A lease is in memory only: the stored row of a leased entry says pending.
      const leased = this.live.leased(id);
      if (leased !== undefined) {
        row.state = 'inflight';
        row.attempts = leased.attempt;
        row.assigned_to = leased.holder;
        row.lease_expires_at = leased.leaseUntil;
      }
      return toEntry(row);
    });
  }

  private deadCount(): number {
    return (this.sql(`SELECT value FROM counters WHERE name = 'dead'`).get() as { value: number })
      .value;
  }

  private filteredDeadCount(filter: DeadLetterFilter): number {
    const where = deadWhere(filter);
    if (isUnfiltered(filter)) return this.deadCount();
    return (
      this.sql(`SELECT COUNT(*) AS n FROM entries WHERE ${where.sql}`).get(...where.params) as {
        n: number;
      }
    ).n;
  }

  async deadLetters(query: DeadLetterPageQuery): Promise<{ items: QueueEntry[]; total: number }> {
    return this.read(() => {
      const where = deadWhere(query);
      const total = this.filteredDeadCount(query);

      let pageSql = where.sql;
      const params = [...where.params];
      if (query.after !== undefined) {
        pageSql += ' AND (dead_lettered_at > ? OR (dead_lettered_at = ? AND queue_id > ?))';
        const afterId = parseQueueId(query.after.queueId) ?? 0;
        params.push(query.after.deadLetteredAt, query.after.deadLetteredAt, afterId);
      }

      const rows = this.sql(
        `SELECT * FROM entries WHERE ${pageSql} ORDER BY dead_lettered_at, queue_id LIMIT ?`,
      ).all(...params, query.limit) as EntryRow[];
      return { items: rows.map(toEntry), total };
    });
  }

  async requeue(options: RequeueOptions): Promise<RequeueOutcome> {
    const work = (tally: Tally): RequeueOutcome => {
      const where = deadWhere(options.filter);
      const page = this.sql(
        `SELECT e.*, EXISTS (SELECT 1 FROM agents a WHERE a.id = e.route_key) AS registered
         FROM entries e WHERE ${where.sql}
           AND (dead_lettered_at > ? OR (dead_lettered_at = ? AND queue_id > ?))
         ORDER BY dead_lettered_at, queue_id LIMIT ?`,
      );

      // `limit` counts what is requeued. Dead letters that cannot be routed are reported as
      // they are passed, and must not use up the limit, or a pile of them in front would
      // stall every requeue behind it. The walk is bounded so one call stays short.
      const rows: (EntryRow & { registered: number })[] = [];
      let routable = 0;
      let after = { at: -1, id: 0 };
      while (routable < options.limit && rows.length < REQUEUE_SCAN_MAX) {
        const batch = page.all(
          ...where.params,
          after.at,
          after.at,
          after.id,
          REQUEUE_PAGE,
        ) as (EntryRow & {
          registered: number;
        })[];
        for (const row of batch) {
          if (routable >= options.limit) break;
          rows.push(row);
          if (row.route_kind !== 'agent' || row.registered) routable += 1;
        }
        const last = batch[batch.length - 1];
        if (last === undefined || batch.length < REQUEUE_PAGE) break;
        after = { at: last.dead_lettered_at ?? 0, id: last.queue_id };
      }

      const outcome: RequeueOutcome = { requeued: [], skipped: [], remaining: 0 };

      // Ids asked for by name that are not dead letters are reported, not silently dropped.
      if (options.filter.ids !== undefined) {
        const found = new Set(rows.map((row) => String(row.queue_id)));
        for (const queueId of options.filter.ids) {
          if (!found.has(queueId) && outcome.skipped.length < 1000) {
            outcome.skipped.push({ queueId, why: 'not_a_dead_letter' });
          }
        }
      }

      for (const row of rows) {
        if (row.route_kind === 'agent' && !row.registered) {
          outcome.skipped.push({
            queueId: String(row.queue_id),
            why: `target agent ${row.route_key} is not registered`,
          });
          continue;
        }

        outcome.requeued.push(String(row.queue_id));
        if (options.dryRun) continue;

        // A fresh budget: attempts from zero, and a fresh TTL (see requeued()).
        const { history, expiresAt } = requeued(row, options.now);
        this.sql(
          `UPDATE entries SET state = 'pending', attempts = 0, available_at = ?, reason = NULL,
             dead_lettered_at = NULL, history = ?, expires_at = ?, assigned_to = NULL,
             lease_expires_at = NULL
           WHERE queue_id = ?`,
        ).run(options.now, history, expiresAt, row.queue_id);
        tally.move(row, 'dead', 'pending');
        tally.count('requeued');
        tally.afterCommit.push(() =>
          this.live.add(
            {
              id: row.queue_id,
              routeKind: row.route_kind,
              routeKey: row.route_key,
              priority: row.priority,
              topic: row.topic,
              availableAt: options.now,
              expiresAt,
            },
            options.now,
          ),
        );
      }

      // What stays in the queue afterwards; for a dry run, what would: the same figure the real
      // call would answer, so a dry run previews it exactly (prune-stale does the same).
      outcome.remaining = this.deadCount() - outcome.requeued.length;
      return outcome;
    };

    return options.dryRun
      ? this.read(() => work(new Tally(options.now)))
      : this.tx(work, options.now);
  }

  async purge(
    filter: DeadLetterFilter,
    dryRun: boolean,
    now: number,
  ): Promise<{ purged: number; remaining: number }> {
    void now;
    const where = deadWhere(filter);

    if (dryRun) {
      return this.read(() => {
        const purged = this.filteredDeadCount(filter);
        return { purged, remaining: this.deadCount() - purged };
      });
    }

    return this.tx((tally) => {
      const rows = this.sql(
        `DELETE FROM entries WHERE ${where.sql} RETURNING ${ENTRY_GAUGE_COLUMNS}`,
      ).all(...where.params) as GaugeRow[];
      for (const row of rows) tally.move(row, 'dead', null);
      tally.count('purged', rows.length);
      return { purged: rows.length, remaining: this.deadCount() - rows.length };
    }, now);
  }

  async becameReady(
    after: number,
    upTo: number,
  ): Promise<{ kind: RouteCount['kind']; key: string; count: number }[]> {
    // The live index knows what ripened, whether the sweep or a claim moved it: every route
    // that gained ready entries since the last call is reported once.
    void after;
    const out: { kind: RouteCount['kind']; key: string; count: number }[] = [];
    for (const [key, count] of this.live.drainRipened(upTo)) {
      const route = this.live.existingRoute(key);
      if (route !== undefined) {
        out.push({ kind: route.kind as RouteCount['kind'], key: route.target, count });
      }
    }
    return out;
  }

  async gauges(now: number): Promise<Gauges> {
    return this.read(() => {
      const counters = this.counterValues();

      // Stored "queued" counts every pending row, leased ones included: leases are in memory.
      const inflight = this.live.inflight;
      return {
        queued: Math.max(0, (counters.queued ?? 0) - inflight),
        delayed: this.live.delayed,
        inflight,
        deadLettered: Math.max(0, counters.dead ?? 0),
        oldestReadyAt: this.live.oldestReadyAt(now),
      };
    });
  }

  // Reads run between commits here: any two give one instant.
  async counts(now: number): Promise<{ gauges: Gauges; stats: Stats }> {
    return { gauges: await this.gauges(now), stats: await this.stats() };
  }

  private counterValues(): Record<string, number> {
    const rows = this.sql('SELECT name, value FROM counters').all() as {
      name: string;
      value: number;
    }[];
    return Object.fromEntries(rows.map((row) => [row.name, row.value]));
  }

  async byTopic(): Promise<Record<string, TopicGauges>> {
    const byTopic = dict<TopicGauges>();
    for (const key of [...this.topicGauges.keys()].sort()) {
      const [pending = 0, , dead = 0] = this.topicGauges.get(key) as number[];
      // The stored state of a leased entry is pending: leases are in memory.
      const inflight = this.live.inflightOfTopic(key === NO_TOPIC ? null : key);
      byTopic[key] = { queued: pending - inflight, inflight, deadLettered: dead };
    }
    return byTopic;
  }

  async routeCounts(): Promise<RouteCount[]> {
    return this.live.routeCounts().map(({ route, pending, inflight }) => ({
      kind: route.kind as RouteCount['kind'],
      key: route.target,
      pending,
      inflight,
    }));
  }

  async stats(): Promise<Stats> {
    return this.read(() => {
      const counters = this.counterValues();
      const stats = {} as Stats;
      for (const name of STAT_NAMES) stats[name] = counters[name] ?? 0;
      return stats;
    });
  }

  async rates(since: number): Promise<RateTotals> {
    return this.read(() => {
      const bucket = rateBucket(since);
      const row = this.sql(
        `SELECT COALESCE(SUM(attempts), 0) AS deliveryAttempts,
           COALESCE(SUM(failures), 0) AS deliveryFailures,
           COALESCE(SUM(dead_lettered), 0) AS deadLettered,
           COALESCE(SUM(enqueued), 0) AS enqueued, COALESCE(SUM(delivered), 0) AS delivered,
           (SELECT MIN(bucket) FROM rate_buckets) AS oldest
         FROM rate_buckets WHERE bucket >= ?`,
      ).get(bucket) as Omit<RateTotals, 'from'> & { oldest: number | null };

      const { oldest, ...totals } = row;
      let first = oldest ?? Number.POSITIVE_INFINITY;
      for (const at of this.unsavedRates.keys()) first = Math.min(first, at);
      const out: RateTotals = {
        ...totals,
        from: Number.isFinite(first) ? Math.max(bucket, first) : bucket,
      };

      // What is not written yet counts too.
      for (const [at, r] of this.unsavedRates) {
        if (at < bucket) continue;
        out.deliveryAttempts += r.attempts;
        out.deliveryFailures += r.failures;
        out.deadLettered += r.deadLettered;
        out.enqueued += r.enqueued;
        out.delivered += r.delivered;
      }
      return out;
    });
  }

  // Operator records

  async appendAudit(record: Omit<AuditRecord, 'id'>): Promise<AuditRecord> {
    return this.tx(() => {
      const result = this.sql(
        `INSERT INTO audit (at, scope, token_name, action, parameters, result)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(
        record.at,
        record.scope,
        record.tokenName,
        record.action,
        JSON.stringify(record.parameters),
        JSON.stringify(record.result),
      );
      return { ...record, id: String(result.lastInsertRowid) };
    });
  }

  async listAudit(
    limit: number,
    beforeId?: string,
  ): Promise<{ items: AuditRecord[]; total: number }> {
    return this.read(() => {
      const total = (this.sql('SELECT COUNT(*) AS n FROM audit').get() as { n: number }).n;
      const before = beforeId === undefined ? null : parseQueueId(beforeId);
      const rows = this.sql(
        `SELECT * FROM audit WHERE (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?`,
      ).all(before, before, limit) as AuditRow[];
      return { items: rows.map(toAuditRecord), total };
    });
  }

  async recordCycle(snapshot: CycleSnapshot): Promise<number> {
    return this.tx(() => {
      this.sql('INSERT INTO recovery_cycles (at, action, snapshot) VALUES (?, ?, ?)').run(
        snapshot.at,
        snapshot.action,
        JSON.stringify(snapshot),
      );
      return (this.sql('SELECT COUNT(*) AS n FROM recovery_cycles').get() as { n: number }).n;
    });
  }

  async recentCycles(limit: number): Promise<{ cycles: CycleSnapshot[]; total: number }> {
    return this.read(() => {
      const rows = this.sql('SELECT snapshot FROM recovery_cycles ORDER BY id DESC LIMIT ?').all(
        limit,
      ) as { snapshot: string }[];
      const total = (this.sql('SELECT COUNT(*) AS n FROM recovery_cycles').get() as { n: number })
        .n;
      return {
        cycles: rows.map((row) => JSON.parse(row.snapshot) as CycleSnapshot).reverse(),
        total,
      };
    });
  }

  async getMeta(key: string): Promise<string | null> {
    return this.read(() => {
      const row = this.sql('SELECT value FROM meta WHERE key = ?').get(key) as
        | { value: string }
        | undefined;
      return row?.value ?? null;
    });
  }

  async setMeta(key: string, value: string): Promise<void> {
    this.tx(() => {
      this.sql(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ).run(key, value);
    });
  }
}

interface ClaimedRow {
  queue_id: number;
  attempts: number;
  message: string;
}
