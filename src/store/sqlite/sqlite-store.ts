// The embedded store: one SQLite file in WAL mode through better-sqlite3.
//
// better-sqlite3 is synchronous, so each method runs its transaction to completion before it
// returns: with one process owning the file there are no interleavings to reason about, and
// "one method, one transaction" is literal. WAL with synchronous=NORMAL keeps every commit
// across a kill -9 of the process (the OS holds the written pages); only a power loss can
// take the last commits, which is the trade every embedded queue of this kind makes.

import fs from 'node:fs';
import path from 'node:path';

import Database from 'better-sqlite3';

import type { CycleSnapshot } from '../../core/escalation.ts';
import type {
  Agent,
  AgentStatus,
  DeadLetterReason,
  DeadLetterRecord,
  Delivery,
  Message,
  QueueEntry,
  Stats,
  TopicGauges,
} from '../../core/types.ts';
import { MESSAGE_JSON, STAT_NAMES } from '../../core/types.ts';
import type { AuditRecord } from '../../engine/contract.ts';
import { mapDriverError } from '../errors.ts';
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
} from '../store.ts';
import { Checkpointer } from './checkpointer.ts';
import { MIGRATIONS } from './migrations.ts';
import { type AgentRow, type EntryRow, parseQueueId, toAgent, toEntry } from './rows.ts';
import { NO_TOPIC, Tally } from './tally.ts';

type Statement = Database.Statement;

/** How often the worker checkpoints the WAL into the database file. */
const CHECKPOINT_INTERVAL_MS = 500;

/** Requeue reads dead letters a page at a time, and passes at most this many per call. */
const REQUEUE_PAGE = 500;
const REQUEUE_SCAN_MAX = 10_000;

/** Rate buckets of ten seconds: a five-minute window sums thirty rows. */
export const RATE_BUCKET_MS = 10_000;

const ENTRY_GAUGE_COLUMNS = 'queue_id, topic, route_kind, route_key, state, assigned_to';

interface GaugeRow {
  queue_id: number;
  topic: string | null;
  route_kind: string;
  route_key: string;
  state: QueueEntry['state'];
  assigned_to: string | null;
}

export class SqliteStore implements Store {
  readonly dialect = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Statement>();
  private readonly checkpointer: Checkpointer | null = null;

  constructor(file: string) {
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });

    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = OFF');
    // Another process (a second `serve` by mistake, a backup) may hold the lock briefly.
    this.db.pragma('busy_timeout = 5000');
    // 64 MiB of page cache: the claim and gauge indexes of a million entries stay hot.
    this.db.pragma('cache_size = -65536');
    this.db.pragma('temp_store = MEMORY');

    // Checkpoints run in a worker (see checkpointer.ts), never inside a commit here.
    if (file !== ':memory:') {
      this.db.pragma('wal_autocheckpoint = 0');
      this.checkpointer = new Checkpointer(file, CHECKPOINT_INTERVAL_MS, (message) => {
        process.emitWarning(`WAL checkpoint failed: ${message}`);
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
    try {
      return this.db
        .transaction(() => {
          const tally = new Tally(now);
          const result = work(tally);
          this.flush(tally);
          return result;
        })
        .immediate();
    } catch (err) {
      throw mapDriverError(err);
    }
  }

  private read<T>(work: () => T): T {
    try {
      return work();
    } catch (err) {
      throw mapDriverError(err);
    }
  }

  /** Writes a transaction's counter deltas: one statement per counter and gauge touched. */
  private flush(tally: Tally): void {
    for (const [name, delta] of tally.counters) {
      if (delta !== 0) {
        this.sql('UPDATE counters SET value = value + ? WHERE name = ?').run(delta, name);
      }
    }

    for (const [dim, key, [queued, inflight, dead]] of tally.gauges()) {
      if (queued === 0 && inflight === 0 && dead === 0) continue;
      this.sql(
        `INSERT INTO gauge_counts (dim, key, queued, inflight, dead) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (dim, key) DO UPDATE SET queued = queued + excluded.queued,
           inflight = inflight + excluded.inflight, dead = dead + excluded.dead`,
      ).run(dim, key, queued, inflight, dead);

      // Keep the table as small as the set of topics and routes that hold entries.
      if ((queued ?? 0) < 0 || (inflight ?? 0) < 0 || (dead ?? 0) < 0) {
        this.sql(
          `DELETE FROM gauge_counts
           WHERE dim = ? AND key = ? AND queued = 0 AND inflight = 0 AND dead = 0`,
        ).run(dim, key);
      }
    }

    const r = tally.rate;
    if (r.attempts || r.failures || r.deadLettered || r.enqueued || r.delivered) {
      const bucket = Math.floor(tally.now / RATE_BUCKET_MS) * RATE_BUCKET_MS;
      this.sql(
        `INSERT INTO rate_buckets (bucket, attempts, failures, dead_lettered, enqueued, delivered)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (bucket) DO UPDATE SET attempts = attempts + excluded.attempts,
           failures = failures + excluded.failures,
           dead_lettered = dead_lettered + excluded.dead_lettered,
           enqueued = enqueued + excluded.enqueued, delivered = delivered + excluded.delivered`,
      ).run(bucket, r.attempts, r.failures, r.deadLettered, r.enqueued, r.delivered);
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

  async close(): Promise<void> {
    if (!this.db.open) return;
    await this.checkpointer?.stop();
    // A clean close checkpoints the WAL into the main file.
    this.db.close();
  }

  // Agents

  async upsertAgent(agent: Agent): Promise<Agent> {
    return this.tx(() => {
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

      return { ...agent, registeredAt };
    });
  }

  async heartbeat(id: string, at: number, status?: AgentStatus): Promise<boolean> {
    return this.tx(() => {
      const result =
        status === undefined
          ? this.sql('UPDATE agents SET last_heartbeat = ? WHERE id = ?').run(at, id)
          : this.sql('UPDATE agents SET last_heartbeat = ?, status = ? WHERE id = ?').run(
              at,
              status,
              id,
            );
      return result.changes > 0;
    });
  }

  async getAgent(id: string): Promise<Agent | null> {
    return this.read(() => {
      const row = this.sql('SELECT * FROM agents WHERE id = ?').get(id) as AgentRow | undefined;
      return row === undefined ? null : toAgent(row);
    });
  }

  async listAgents(filter: AgentFilter): Promise<{ items: Agent[]; total: number }> {
    return this.read(() => {
      const where: string[] = [];
      const params: (string | number)[] = [];

      if (filter.type !== undefined) {
        where.push('type = ?');
        params.push(filter.type);
      }
      if (filter.status !== undefined) {
        where.push('status = ?');
        params.push(filter.status);
      }
      if (filter.stale !== undefined) {
        where.push(filter.stale ? 'last_heartbeat < ?' : 'last_heartbeat >= ?');
        params.push(filter.staleBefore);
      }

      const whereSql = where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`;
      const total = (
        this.sql(`SELECT COUNT(*) AS n FROM agents ${whereSql}`).get(...params) as { n: number }
      ).n;

      const pageWhere = [...where];
      const pageParams = [...params];
      if (filter.afterId !== undefined) {
        pageWhere.push('id > ?');
        pageParams.push(filter.afterId);
      }
      const pageSql = pageWhere.length === 0 ? '' : `WHERE ${pageWhere.join(' AND ')}`;
      const rows = this.sql(`SELECT * FROM agents ${pageSql} ORDER BY id LIMIT ?`).all(
        ...pageParams,
        filter.limit,
      ) as AgentRow[];

      return { items: rows.map(toAgent), total };
    });
  }

  async liveAgents(since: number): Promise<Agent[]> {
    return this.read(() =>
      (
        this.sql(
          `SELECT * FROM agents WHERE last_heartbeat >= ? AND status <> 'offline' ORDER BY id`,
        ).all(since) as AgentRow[]
      ).map(toAgent),
    );
  }

  async agentCounts(staleBefore: number): Promise<AgentCounts> {
    return this.read(() => {
      const rows = this.sql(
        `SELECT type, status, last_heartbeat < ? AS stale, COUNT(*) AS n
         FROM agents GROUP BY type, status, stale`,
      ).all(staleBefore) as { type: string; status: string; stale: number; n: number }[];

      const counts: AgentCounts = { total: 0, stale: 0, live: 0, byType: {}, byStatus: {} };
      for (const row of rows) {
        counts.total += row.n;
        if (row.stale) counts.stale += row.n;
        else if (row.status !== 'offline') counts.live += row.n;
        counts.byType[row.type] = (counts.byType[row.type] ?? 0) + row.n;
        counts.byStatus[row.status] = (counts.byStatus[row.status] ?? 0) + row.n;
      }
      return counts;
    });
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

        this.sql('DELETE FROM agent_capabilities WHERE agent_id = ?').run(id);
        this.sql('DELETE FROM subscriptions WHERE agent_id = ?').run(id);

        // Leases held by the agent go back at once; those addressed to it alone have
        // nowhere to go and join its pending direct entries in the dead-letter queue.
        // Walks the in-flight set (the lease index), not the queue: rare, and bounded by
        // what is leased right now.
        const leased = this.sql(
          `SELECT * FROM entries INDEXED BY entries_leases
           WHERE state = 'inflight' AND lease_expires_at IS NOT NULL AND assigned_to = ?`,
        ).all(id) as EntryRow[];
        for (const row of leased) {
          if (row.route_kind === 'agent' && row.route_key === id) {
            this.deadLetter(row, reason, row.last_error, now, tally);
            deadLettered += 1;
            continue;
          }
          this.sql(
            `UPDATE entries SET state = 'pending', assigned_to = NULL, lease_expires_at = NULL,
               available_at = ? WHERE queue_id = ?`,
          ).run(now, row.queue_id);
          tally.move(row, 'inflight', 'pending');
          released += 1;
        }
      }

      // Pending direct entries can number in the hundreds of thousands: they are left to
      // deadLetterUnroutable, in batches, so removal never holds the server for seconds.

      return { removed, released, deadLettered };
    }, now);
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
    return this.read(() => {
      const rows = this.sql(
        `SELECT key AS id, inflight AS n FROM gauge_counts WHERE dim = 'holder' AND inflight > 0`,
      ).all() as { id: string; n: number }[];
      return new Map(rows.map((row) => [row.id, row.n]));
    });
  }

  async inflightOf(agentId: string): Promise<number> {
    return this.read(
      () =>
        (
          (this.sql(`SELECT inflight AS n FROM gauge_counts WHERE dim = 'holder' AND key = ?`).get(
            agentId,
          ) as { n: number } | undefined) ?? { n: 0 }
        ).n,
    );
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

      const byTopic: Record<string, string[]> = {};
      for (const row of rows) {
        const agents = byTopic[row.topic] ?? [];
        agents.push(row.agent_id);
        byTopic[row.topic] = agents;
      }
      return byTopic;
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

  async enqueue(entries: NewEntry[], now: number): Promise<EnqueueOutcome[]> {
    return this.tx((tally) => {
      const findLive = this.sql(
        `SELECT queue_id FROM entries
         WHERE dedupe_key = ? AND dedupe_key IS NOT NULL AND state <> 'dead' LIMIT 1`,
      );
      // Positional parameters: binding fifteen named ones cost ~8 µs a row in
      // better-sqlite3 (measured on the 2-core machine), a third of the whole insert.
      const insert = this.sql(
        `INSERT INTO entries (message_id, dedupe_key, target, route_kind, route_key, topic,
           priority, state, enqueued_at, available_at, expires_at, attempts, max_attempts,
           reason, dead_lettered_at, message)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)`,
      );

      return entries.map((entry) => {
        const existing =
          entry.dedupeKey === null
            ? undefined
            : (findLive.get(entry.dedupeKey) as { queue_id: number } | undefined);
        if (existing !== undefined) {
          tally.count('deduplicated');
          return { queueId: String(existing.queue_id), duplicate: true };
        }

        const dead =
          entry.requireRegistered &&
          this.sql('SELECT 1 FROM agents WHERE id = ?').get(entry.routeKey) === undefined;
        const result = insert.run(
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

        const key = {
          topic: entry.message.topic,
          route_kind: entry.routeKind,
          route_key: entry.routeKey,
        };
        tally.count('enqueued');
        tally.rate.enqueued += 1;
        tally.move(key, null, dead ? 'dead' : 'pending');
        if (dead) {
          tally.count('deadLettered');
          tally.rate.deadLettered += 1;
        }

        return { queueId: String(result.lastInsertRowid), duplicate: false };
      });
    }, now);
  }

  /**
   * The claim: one UPDATE over the union of the agent's routes, each read from the claim
   * index in claim order and cut at `limit`, so the work is O(routes × limit) whatever the
   * depth of the queue. Statements are cached per number of routes.
   */
  private claimStatement(routeCount: number): Statement {
    const filter = `state = 'pending' AND route_kind = ? AND route_key = ? AND available_at <= @now
          AND (expires_at IS NULL OR expires_at > @now)`;

    // One route reads the claim index in order and needs no merge.
    if (routeCount === 1) {
      return this.sql(
        `UPDATE entries SET state = 'inflight', attempts = attempts + 1, assigned_to = @agentId,
           lease_expires_at = @leaseUntil
         WHERE queue_id IN (SELECT queue_id FROM entries WHERE ${filter}
           ORDER BY priority, available_at, queue_id LIMIT @limit)
         RETURNING queue_id, attempts, message, topic, route_kind, route_key, priority,
           available_at, assigned_to`,
      );
    }

    const branch = `SELECT * FROM (SELECT queue_id, priority, available_at FROM entries
        WHERE ${filter} ORDER BY priority, available_at, queue_id LIMIT @limit)`;
    const union = Array.from({ length: routeCount }, () => branch).join(' UNION ALL ');

    return this.sql(
      `UPDATE entries SET state = 'inflight', attempts = attempts + 1, assigned_to = @agentId,
         lease_expires_at = @leaseUntil
       WHERE queue_id IN (
         SELECT queue_id FROM (${union}) ORDER BY priority, available_at, queue_id LIMIT @limit)
       RETURNING queue_id, attempts, message, topic, route_kind, route_key, priority,
         available_at, assigned_to`,
    );
  }

  /**
   * The agent's routes that hold pending entries, from the maintained route gauges: most
   * agents have no direct messages, and a claim that skips their empty routes is a plain
   * index range read instead of a merge of several.
   */
  private routesWithWork(routes: AgentRoutes): string[] {
    const keys = [`agent:${routes.agentId}`, `type:${routes.type}`];
    for (const capability of routes.capabilities) keys.push(`capability:${capability}`);

    const present = this.sql(
      `SELECT key FROM gauge_counts WHERE dim = 'route' AND queued > 0
         AND key IN (SELECT value FROM json_each(?))`,
    ).all(JSON.stringify(keys)) as { key: string }[];
    const withWork = new Set(present.map((row) => row.key));

    const params: string[] = [];
    for (const key of keys) {
      if (!withWork.has(key)) continue;
      const split = key.indexOf(':');
      params.push(key.slice(0, split), key.slice(split + 1));
    }
    return params;
  }

  /** `routeParams` are routesWithWork(routes), read in this same synchronous turn. */
  private claimRows(
    routes: AgentRoutes,
    routeParams: string[],
    options: ClaimOptions,
    tally: Tally,
  ): ClaimedRow[] {
    if (routeParams.length === 0) return [];

    const leaseUntil = options.now + options.leaseMs;
    const rows = this.claimStatement(routeParams.length / 2).all(...routeParams, {
      now: options.now,
      limit: options.limit,
      agentId: routes.agentId,
      leaseUntil,
    }) as ClaimedRow[];

    // RETURNING comes back in rowid order; deliveries go out in claim order.
    rows.sort(
      (a, b) =>
        a.priority - b.priority || a.available_at - b.available_at || a.queue_id - b.queue_id,
    );

    for (const row of rows) tally.move(row, 'pending', 'inflight');
    tally.rate.attempts += rows.length;
    return rows;
  }

  async claim(routes: AgentRoutes, options: ClaimOptions): Promise<Delivery[]> {
    // Most polls of an idle or keeping-up agent find nothing: answer those from the route
    // gauges without taking the write lock or committing an empty transaction.
    // better-sqlite3 is synchronous and nothing awaits between this read and the
    // transaction, so the routes it found are still the ones with work inside it.
    const routeParams = this.read(() => this.routesWithWork(routes));
    if (routeParams.length === 0) return [];

    return this.tx((tally) => {
      const leaseExpiresAt = options.now + options.leaseMs;
      return this.claimRows(routes, routeParams, options, tally).map((row) =>
        toDelivery(row, leaseExpiresAt),
      );
    }, options.now);
  }

  async claimAndAck(routes: AgentRoutes, limit: number, now: number): Promise<Delivery[]> {
    return this.tx((tally) => {
      const rows = this.claimRows(
        routes,
        this.routesWithWork(routes),
        { limit, leaseMs: 0, now },
        tally,
      );
      const remove = this.sql('DELETE FROM entries WHERE queue_id = ?');
      for (const row of rows) {
        remove.run(row.queue_id);
        tally.move(row, 'inflight', null);
      }
      tally.count('delivered', rows.length);
      tally.rate.delivered += rows.length;
      return rows.map((row) => toDelivery(row, now));
    }, now);
  }

  async ack(
    queueIds: string[],
    agentId: string | undefined,
    now: number,
  ): Promise<{ acked: number; rejected: { queueId: string; why: string }[] }> {
    void now;
    return this.tx((tally) => {
      const ids = queueIds.map(parseQueueId);

      // One set-based DELETE for the whole batch: a statement per id cost about twice as
      // much per acknowledged message (measured with a 250-id batch).
      const rows = this.sql(
        `DELETE FROM entries
         WHERE queue_id IN (SELECT value FROM json_each(?)) AND state = 'inflight'
           AND (? IS NULL OR assigned_to = ?)
         RETURNING ${ENTRY_GAUGE_COLUMNS}`,
      ).all(
        JSON.stringify(ids.filter((id) => id !== null)),
        agentId ?? null,
        agentId ?? null,
      ) as GaugeRow[];

      for (const row of rows) tally.move(row, 'inflight', null);
      tally.count('delivered', rows.length);
      tally.rate.delivered += rows.length;

      const rejected: { queueId: string; why: string }[] = [];
      if (rows.length < queueIds.length) {
        const removed = new Set(rows.map((row) => row.queue_id));
        for (const [i, queueId] of queueIds.entries()) {
          const id = ids[i] ?? null;
          if (id !== null && removed.has(id)) {
            // The same id twice in one request: the first acknowledged it.
            removed.delete(id);
            continue;
          }
          rejected.push({ queueId, why: this.whyNotLeased(id, agentId) });
        }
      }

      return { acked: rows.length, rejected };
    }, now);
  }

  private whyNotLeased(id: number | null, agentId: string | undefined): string {
    if (id === null) return 'unknown_queue_id';
    const row = this.sql('SELECT state, assigned_to FROM entries WHERE queue_id = ?').get(id) as
      | { state: string; assigned_to: string | null }
      | undefined;
    if (row === undefined) return 'unknown_queue_id';
    if (row.state !== 'inflight') return `not_leased (${row.state})`;
    return agentId !== undefined && row.assigned_to !== agentId ? 'not_lease_holder' : 'not_leased';
  }

  async fail(queueIds: string[], options: FailOptions, backoff: BackoffFn): Promise<FailOutcome> {
    return this.tx((tally) => {
      const outcome: FailOutcome = { retried: 0, deadLettered: 0, rejected: [] };
      const find = this.sql(`SELECT * FROM entries WHERE queue_id = ? AND state = 'inflight'`);

      for (const queueId of queueIds) {
        const id = parseQueueId(queueId);
        const row = id === null ? undefined : (find.get(id) as EntryRow | undefined);
        if (
          row === undefined ||
          (options.agentId !== undefined && row.assigned_to !== options.agentId)
        ) {
          outcome.rejected.push({ queueId, why: this.whyNotLeased(id, options.agentId) });
          continue;
        }

        const verdict = this.failOne(
          row,
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

  /** One failed attempt: retry after backoff, or dead-letter when the budget is spent. */
  private failOne(
    row: EntryRow,
    error: string,
    retry: boolean,
    delayMs: number | undefined,
    now: number,
    backoff: BackoffFn,
    tally: Tally,
  ): 'retried' | 'dead' {
    tally.count('failed');
    tally.rate.failures += 1;

    if (!retry || row.attempts >= row.max_attempts) {
      this.deadLetter(row, retry ? 'max_attempts' : 'rejected', error, now, tally);
      return 'dead';
    }

    this.sql(
      `UPDATE entries SET state = 'pending', assigned_to = NULL, lease_expires_at = NULL,
         available_at = ?, last_error = ? WHERE queue_id = ?`,
    ).run(now + (delayMs ?? backoff(row.attempts)), error, row.queue_id);
    tally.move(row, 'inflight', 'pending');
    tally.count('retried');
    return 'retried';
  }

  private deadLetter(
    row: EntryRow,
    reason: DeadLetterReason,
    error: string | null,
    now: number,
    tally: Tally,
  ): void {
    this.sql(
      `UPDATE entries SET state = 'dead', reason = ?, dead_lettered_at = ?, last_error = ?,
         assigned_to = NULL, lease_expires_at = NULL WHERE queue_id = ?`,
    ).run(reason, now, error, row.queue_id);
    tally.move(row, row.state, 'dead');
    tally.count('deadLettered');
    tally.rate.deadLettered += 1;
  }

  async releaseExpiredLeases(now: number, backoff: BackoffFn, limit: number): Promise<number> {
    return this.tx((tally) => {
      const rows = this.sql(
        `SELECT * FROM entries WHERE state = 'inflight' AND lease_expires_at <= ?
         ORDER BY lease_expires_at LIMIT ?`,
      ).all(now, limit) as EntryRow[];

      for (const row of rows)
        this.failOne(row, 'lease expired', true, undefined, now, backoff, tally);
      return rows.length;
    }, now);
  }

  async expireEntries(now: number, limit: number): Promise<number> {
    return this.tx((tally) => {
      const rows = this.sql(
        `SELECT * FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ? AND state <> 'dead'
         ORDER BY expires_at LIMIT ?`,
      ).all(now, limit) as EntryRow[];

      for (const row of rows) {
        this.deadLetter(row, 'expired', row.last_error, now, tally);
        tally.count('expired');
      }

      // The sweeper runs every fraction of a second, so it also keeps the rate buckets to
      // the last hour: no window reads further back.
      this.sql('DELETE FROM rate_buckets WHERE bucket < ?').run(now - 3_600_000);
      return rows.length;
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
        const rows = this.sql(
          `SELECT * FROM entries
           WHERE route_kind = 'agent' AND route_key = ? AND state = 'pending'
             AND NOT EXISTS (SELECT 1 FROM agents WHERE id = ?)
           LIMIT ?`,
        ).all(id, id, limit - count) as EntryRow[];
        for (const row of rows) {
          this.deadLetter(row, reason, row.last_error, now, tally);
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
      return row === undefined ? null : toEntry(row);
    });
  }

  private deadWhere(filter: DeadLetterFilter): { sql: string; params: (string | number)[] } {
    const where = [`state = 'dead'`];
    const params: (string | number)[] = [];

    if (filter.topic !== undefined) {
      where.push('topic = ?');
      params.push(filter.topic);
    }
    if (filter.target !== undefined) {
      // Fan-out copies keep "broadcast" as their target; their agent is the route key.
      where.push(`(target = ? OR (route_kind = 'agent' AND route_key = ?))`);
      params.push(filter.target, filter.target);
    }
    if (filter.reason !== undefined) {
      where.push('reason = ?');
      params.push(filter.reason);
    }
    if (filter.deadBefore !== undefined) {
      where.push('dead_lettered_at <= ?');
      params.push(filter.deadBefore);
    }
    if (filter.ids !== undefined) {
      const ids = filter.ids.map(parseQueueId).filter((id): id is number => id !== null);
      where.push(`queue_id IN (${ids.map(() => '?').join(', ') || 'NULL'})`);
      params.push(...ids);
    }

    return { sql: where.join(' AND '), params };
  }

  private deadCount(): number {
    return (this.sql(`SELECT value FROM counters WHERE name = 'dead'`).get() as { value: number })
      .value;
  }

  private filteredDeadCount(filter: DeadLetterFilter): number {
    const where = this.deadWhere(filter);
    const unfiltered = Object.values(filter).every((value) => value === undefined);
    if (unfiltered) return this.deadCount();
    return (
      this.sql(`SELECT COUNT(*) AS n FROM entries WHERE ${where.sql}`).get(...where.params) as {
        n: number;
      }
    ).n;
  }

  async deadLetters(query: DeadLetterPageQuery): Promise<{ items: QueueEntry[]; total: number }> {
    return this.read(() => {
      const where = this.deadWhere(query);
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
      const where = this.deadWhere(options.filter);
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

        const history: DeadLetterRecord[] = row.history === null ? [] : JSON.parse(row.history);
        history.push({
          reason: row.reason as DeadLetterReason,
          deadLetteredAt: row.dead_lettered_at ?? options.now,
          lastError: row.last_error,
          attempts: row.attempts,
        });

        // A fresh budget: attempts from zero and, for messages with a TTL, a fresh TTL from
        // now — otherwise a requeued expired message would expire again on the next sweep.
        const ttlMs = (JSON.parse(row.message) as { ttlMs?: number }).ttlMs;
        this.sql(
          `UPDATE entries SET state = 'pending', attempts = 0, available_at = ?, reason = NULL,
             dead_lettered_at = NULL, history = ?, expires_at = ?, assigned_to = NULL,
             lease_expires_at = NULL
           WHERE queue_id = ?`,
        ).run(
          options.now,
          JSON.stringify(history),
          ttlMs === undefined ? null : options.now + ttlMs,
          row.queue_id,
        );
        tally.move(row, 'dead', 'pending');
        tally.count('requeued');
      }

      const dead = this.deadCount();
      outcome.remaining = options.dryRun ? dead : dead - outcome.requeued.length;
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
    const where = this.deadWhere(filter);

    if (dryRun) {
      return this.read(() => {
        const purged = this.filteredDeadCount(filter);
        return { purged, remaining: this.deadCount() };
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
    // A range of entries_ready no wider than one sweep interval: only what just ripened.
    return this.read(
      () =>
        this.sql(
          `SELECT route_kind AS kind, route_key AS key, COUNT(*) AS count FROM entries
           WHERE state = 'pending' AND available_at > ? AND available_at <= ?
           GROUP BY route_kind, route_key`,
        ).all(after, upTo) as { kind: RouteCount['kind']; key: string; count: number }[],
    );
  }

  async gauges(now: number): Promise<Gauges> {
    return this.read(() => {
      const counters = this.counterValues();

      // Both reads use entries_ready: a range count over delayed entries only, and the
      // first index entry at or before now.
      const delayed = (
        this.sql(
          `SELECT COUNT(*) AS n FROM entries WHERE state = 'pending' AND available_at > ?`,
        ).get(now) as { n: number }
      ).n;
      const oldest = this.sql(
        `SELECT MIN(available_at) AS at FROM entries WHERE state = 'pending' AND available_at <= ?`,
      ).get(now) as { at: number | null };

      return {
        queued: Math.max(0, counters.queued ?? 0),
        delayed,
        inflight: Math.max(0, counters.inflight ?? 0),
        deadLettered: Math.max(0, counters.dead ?? 0),
        oldestReadyAt: oldest.at,
      };
    });
  }

  private counterValues(): Record<string, number> {
    const rows = this.sql('SELECT name, value FROM counters').all() as {
      name: string;
      value: number;
    }[];
    return Object.fromEntries(rows.map((row) => [row.name, row.value]));
  }

  async byTopic(): Promise<Record<string, TopicGauges>> {
    return this.read(() => {
      const rows = this.sql(
        `SELECT key, queued, inflight, dead FROM gauge_counts WHERE dim = 'topic' ORDER BY key`,
      ).all() as { key: string; queued: number; inflight: number; dead: number }[];

      const byTopic: Record<string, TopicGauges> = {};
      for (const row of rows) {
        if (row.queued === 0 && row.inflight === 0 && row.dead === 0) continue;
        byTopic[row.key === NO_TOPIC ? NO_TOPIC : row.key] = {
          queued: row.queued,
          inflight: row.inflight,
          deadLettered: row.dead,
        };
      }
      return byTopic;
    });
  }

  async routeCounts(): Promise<RouteCount[]> {
    return this.read(() => {
      const rows = this.sql(
        `SELECT key, queued, inflight FROM gauge_counts
         WHERE dim = 'route' AND (queued > 0 OR inflight > 0)`,
      ).all() as { key: string; queued: number; inflight: number }[];

      return rows.map((row) => {
        const split = row.key.indexOf(':');
        return {
          kind: row.key.slice(0, split) as RouteCount['kind'],
          key: row.key.slice(split + 1),
          pending: row.queued,
          inflight: row.inflight,
        };
      });
    });
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
      const bucket = Math.floor(since / RATE_BUCKET_MS) * RATE_BUCKET_MS;
      const row = this.sql(
        `SELECT COALESCE(SUM(attempts), 0) AS deliveryAttempts,
           COALESCE(SUM(failures), 0) AS deliveryFailures,
           COALESCE(SUM(dead_lettered), 0) AS deadLettered,
           COALESCE(SUM(enqueued), 0) AS enqueued, COALESCE(SUM(delivered), 0) AS delivered
         FROM rate_buckets WHERE bucket >= ?`,
      ).get(bucket) as RateTotals;
      return row;
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
      ).all(before, before, limit) as {
        id: number;
        at: number;
        scope: AuditRecord['scope'];
        token_name: string;
        action: string;
        parameters: string;
        result: string;
      }[];

      return {
        items: rows.map((row) => ({
          id: String(row.id),
          at: row.at,
          timestamp: new Date(row.at).toISOString(),
          scope: row.scope,
          tokenName: row.token_name,
          action: row.action,
          parameters: JSON.parse(row.parameters),
          result: JSON.parse(row.result),
        })),
        total,
      };
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
  topic: string | null;
  route_kind: string;
  route_key: string;
  priority: number;
  available_at: number;
  assigned_to: string;
}

/**
 * The message is parsed only if someone reads it: a poll answer splices the stored text
 * (MESSAGE_JSON) and never needs the object.
 */
function toDelivery(row: ClaimedRow, leaseExpiresAt: number): Delivery {
  const json = row.message;
  let parsed: Message | undefined;
  const delivery: Delivery = {
    queueId: String(row.queue_id),
    attempt: row.attempts,
    leaseExpiresAt,
    get message(): Message {
      parsed ??= JSON.parse(json) as Message;
      return parsed;
    },
  };
  Object.defineProperty(delivery, MESSAGE_JSON, { value: json });
  return delivery;
}
