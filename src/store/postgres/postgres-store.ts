// The PostgreSQL store, for swarms that outgrow one machine: several coordinators can share
// one database. Nothing a request needs is kept only in this process: leases are rows
// (state 'inflight'), claims take rows with FOR UPDATE SKIP LOCKED so two coordinators never
// lease the same entry, and the counters and gauges change in the transaction they count.
//
// Locks are taken in one order, agents, then entries, then counters, then gauges, then the
// rate bucket, each set sorted by key, so two writers wait for each other but do not
// deadlock on these rows; a deadlock PostgreSQL still reports (two enqueues of one message
// id through two coordinators at once) is retried.

import { randomUUID } from 'node:crypto';

import pg from 'pg';
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
import { RATE_RETENTION_MS, rateBucket, Tally } from '../tally.ts';
import { CommitGroup, type JobResult } from './commit-group.ts';
import { PG_MIGRATIONS } from './migrations.ts';

export interface PostgresStoreOptions {
  /** Connections this coordinator keeps open. */
  poolSize?: number;
  /** Where the pool's errors on idle connections are reported; by default a process warning. */
  warn?: (message: string) => void;
}

/** A deadlock or serialization failure is tried again this many times in all. */
const TX_TRIES = 3;
const RETRY_CODES: ReadonlySet<string> = new Set(['40P01', '40001']);
/** A requeue also runs again when a message id it keeps became live meanwhile (see there). */
const REQUEUE_RETRY_CODES: ReadonlySet<string> = new Set([...RETRY_CODES, '23505']);
/** NOTIFY payloads must stay under 8000 bytes: longer news goes in several. */
const NOTIFY_BYTES = 7_000;
const LISTEN_RETRY_MS = 1_000;
const CONNECT_TIMEOUT_MS = 5_000;
/** Any number that names this project's migration lock among other advisory locks. */
const MIGRATION_LOCK = 7_170_001;

// BIGINT (oid 20) columns hold epoch milliseconds and counts: well inside 2^53, so numbers.
const TYPES = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

type Client = pg.PoolClient;
type Param = string | number | boolean | null | (string | number | null)[];

interface EnqueueJob {
  entries: NewEntry[];
  now: number;
  maxDepth: number;
}

interface AckJob {
  queueIds: string[];
  agentId: string | undefined;
  now: number;
}

interface AckOutcome {
  acked: number;
  rejected: { queueId: string; why: string }[];
}

/** The fields of an entry that its counters and gauges are keyed by. */
interface GaugedRow {
  queue_id: number;
  topic: string | null;
  route_kind: string;
  route_key: string;
}

interface LeasedRow extends GaugedRow {
  attempts: number;
  max_attempts: number;
  assigned_to: string | null;
}

/** Numbers the `?` placeholders of shared SQL ($1, $2, …), after `offset` earlier ones. */
function numbered(sql: string, offset = 0): string {
  let n = offset;
  return sql.replace(/\?/g, () => {
    n += 1;
    return `$${n}`;
  });
}

/**
 * Dedupe keys as stored. The engine joins a broadcast copy's message id and agent with
 * U+0000, which PostgreSQL's text cannot hold; message ids exclude every control character
 * and agent ids are A-Za-z0-9._:-, so U+001F in its place names the same key and no other.
 */
const storedKey = (key: string | null): string | null =>
  key === null ? null : key.replaceAll('\u0000', '\u001f');

/** An agent's error text is kept for operators: a U+0000 in it becomes U+FFFD. */
const storedError = (error: string | null): string | null =>
  error === null ? null : error.replaceAll('\u0000', '\ufffd');

const routeOf = (row: { route_kind: string; route_key: string }) =>
  `${row.route_kind}:${row.route_key}`;

export class PostgresStore implements Store {
  readonly dialect = 'postgres' as const;
  private readonly pool: pg.Pool;
  /** SQL text → prepared statement name, per process; the pool prepares on first use. */
  private readonly names = new Map<string, string>();
  private readonly enqueues = new CommitGroup<EnqueueJob, EnqueueOutcome[]>((jobs) =>
    this.writeEnqueues(jobs),
  );
  private readonly acks = new CommitGroup<AckJob, AckOutcome>((jobs) => this.writeAcks(jobs));
  /** Wake-ups are for polls parked in this process, which began after it opened. */
  private readonly openedAt = Date.now();
  private closed = false;
  /** Names this process in its own notifications, which it then ignores. */
  private readonly node = randomUUID();
  private readonly url: string;
  private readonly warn: (message: string) => void;
  private readyListener: ((routes: Map<string, number>) => void) | null = null;
  private listener: pg.Client | null = null;
  private listenTimer: NodeJS.Timeout | null = null;
  /** The channel of this schema's news; found once the first connection says which it is. */
  private channel: string | null = null;
  private listening: Promise<void>;
  /** The LISTEN connection is down and its loss was reported: the retries stay quiet. */
  private listenFailing = false;
  private heardFirst: () => void = () => {};
  /** When the sweep last deleted old rate buckets and empty gauges. */
  private lastTidy = 0;

  constructor(url: string, options: PostgresStoreOptions = {}) {
    this.url = url;
    this.listening = new Promise((resolve) => {
      this.heardFirst = resolve;
    });
    this.warn = (line) => {
      if (options.warn === undefined) process.emitWarning(line);
      else options.warn(line);
    };
    this.pool = new pg.Pool({
      connectionString: url,
      max: options.poolSize ?? 10,
      types: TYPES,
      application_name: 'owokx-swarm',
      // A database that does not answer fails the request that needed it, not hangs it.
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    // An idle connection the server drops (a restart, a failover) must not end this process:
    // the pool replaces it, and the next request that needs the database sees the outage.
    this.pool.on('error', (err) => this.warn(`PostgreSQL connection lost: ${err.message}`));
  }

  /**
   * Coordinators sharing this database tell each other, by NOTIFY in the transaction that
   * made them, of entries ready now: the polls parked on another coordinator wake at once
   * instead of at the end of their wait. Retries and delays that ripen later are found by
   * every coordinator's sweep (becameReady reads the table), so they need no message.
   */
  onReady(listener: (routes: Map<string, number>) => void): void {
    this.readyListener = listener;
    void this.listen();
  }

  /** Resolves once news from other coordinators can be heard (after onReady). */
  whenListening(): Promise<void> {
    return this.listening;
  }

  private async listen(): Promise<void> {
    if (this.closed || this.readyListener === null) return;

    const client = new pg.Client({
      connectionString: this.url,
      types: TYPES,
      application_name: 'owokx-swarm',
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    // Lost, it is opened again; meanwhile parked polls still end at their wait and claim.
    const retry = () => {
      if (this.listener !== client) return;
      this.listener = null;
      client.end().catch(() => {});
      if (this.closed) return;
      this.listenTimer = setTimeout(() => void this.listen(), LISTEN_RETRY_MS);
      this.listenTimer.unref();
    };
    client.on('error', (err) => {
      if (!this.closed && !this.listenFailing) {
        this.warn(`PostgreSQL notification connection lost: ${err.message}`);
      }
      this.listenFailing = true;
      retry();
    });
    client.on('end', retry);
    client.on('notification', (note) => this.heard(note.payload));
    this.listener = client;

    try {
      await client.connect();
      this.channel ??= await this.channelOf(client);
      await client.query(`LISTEN "${this.channel}"`);
      this.heardFirst();
      if (this.listenFailing) this.warn("listening for other coordinators' enqueues again");
      this.listenFailing = false;
    } catch (err) {
      // Said once per outage: it is tried again every second until the database is back.
      if (!this.closed && !this.listenFailing) {
        this.warn(`cannot listen for other coordinators' enqueues: ${(err as Error).message}`);
      }
      this.listenFailing = true;
      retry();
    }
  }

  /** One channel per schema: coordinators on other schemas of the database are not ours. */
  private async channelOf(client: pg.Client | pg.Pool): Promise<string> {
    const { rows } = await client.query<{ schema: string }>('SELECT current_schema() AS schema');
    return `owokx_ready_${rows[0]?.schema ?? 'public'}`.slice(0, 63);
  }

  private heard(payload: string | undefined): void {
    if (payload === undefined || this.readyListener === null) return;
    let news: { node?: string; routes?: Record<string, number> };
    try {
      news = JSON.parse(payload);
    } catch {
      return;
    }
    if (news.node === this.node || typeof news.routes !== 'object' || news.routes === null) return;

    const routes = new Map<string, number>();
    for (const [route, count] of Object.entries(news.routes)) {
      if (typeof count === 'number' && count > 0) routes.set(route, count);
    }
    if (routes.size > 0) this.readyListener(routes);
  }

  /** Tells the other coordinators, when this transaction commits, of entries ready now. */
  private async announce(client: Client, routes: Map<string, number>): Promise<void> {
    if (routes.size === 0) return;
    this.channel ??= await this.channelOf(client);

    let part: Record<string, number> = {};
    let bytes = 0;
    const parts: Record<string, number>[] = [part];
    for (const [route, count] of routes) {
      // What the route takes in the payload's JSON: escapes included, in UTF-8 bytes.
      const size = Buffer.byteLength(JSON.stringify(route)) + 12;
      bytes += size;
      if (bytes > NOTIFY_BYTES && Object.keys(part).length > 0) {
        part = {};
        parts.push(part);
        bytes = size;
      }
      part[route] = count;
    }
    for (const routesOfPart of parts) {
      await this.query(client, 'SELECT pg_notify($1, $2)', [
        this.channel,
        JSON.stringify({ node: this.node, routes: routesOfPart }),
      ]);
    }
  }

  private async query<T>(
    client: Client | pg.Pool,
    text: string,
    values: Param[] = [],
    prepared = true,
  ): Promise<T[]> {
    if (!prepared) return (await client.query(text, values)).rows as T[];

    let name = this.names.get(text);
    if (name === undefined) {
      name = `owokx_${this.names.size + 1}`;
      this.names.set(text, name);
    }
    return (await client.query({ name, text, values })).rows as T[];
  }

  private async read<T>(work: (db: pg.Pool) => Promise<T>): Promise<T> {
    try {
      return await work(this.pool);
    } catch (err) {
      throw mapDriverError(err);
    }
  }

  /**
   * One transaction: the work, then its counter, gauge and rate deltas, then COMMIT. With
   * `durable` false the commit does not wait for the disk: for writes a crash may lose without
   * losing a message (a lease, which then runs again; a heartbeat).
   */
  private async tx<T>(
    now: number,
    work: (client: Client, tally: Tally) => Promise<T>,
    durable = true,
    retryOn: ReadonlySet<string> = RETRY_CODES,
  ): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      let client: Client;
      try {
        client = await this.borrow();
      } catch (err) {
        throw mapDriverError(err);
      }

      try {
        // One round trip for both: a claim is only four or five, and each one counts.
        await client.query(durable ? 'BEGIN' : 'BEGIN; SET LOCAL synchronous_commit = off');
        const tally = new Tally(now);
        const value = await work(client, tally);
        await this.flush(client, tally);
        await client.query('COMMIT');
        this.giveBack(client);
        return value;
      } catch (err) {
        const broken = await client.query('ROLLBACK').then(
          () => false,
          () => true,
        );
        this.giveBack(client, broken);
        const code = (err as { code?: unknown }).code;
        if (attempt < TX_TRIES && typeof code === 'string' && retryOn.has(code)) continue;
        throw mapDriverError(err);
      }
    }
  }

  /**
   * A pooled connection for a transaction. While it is borrowed the pool does not listen for
   * its errors, and a socket that ends then (the server restarting, an administrator's
   * pg_terminate_backend) emits an 'error' nobody handles, which ends the process: this
   * listens until it is given back. The query in progress fails on its own.
   */
  private async borrow(): Promise<Client> {
    const client = await this.pool.connect();
    client.on('error', ignoreBorrowedError);
    return client;
  }

  private giveBack(client: Client, broken = false): void {
    client.removeListener('error', ignoreBorrowedError);
    client.release(broken);
  }

  /**
   * A transaction's deltas in one statement: counters, gauges, then the rate bucket, each
   * inserted in key order, so concurrent writers lock these rows in the same order.
   */
  private async flush(client: Client, tally: Tally): Promise<void> {
    const names: string[] = [];
    const deltas: number[] = [];
    for (const [name, delta] of [...tally.counters].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (delta === 0) continue;
      names.push(name);
      deltas.push(delta);
    }

    const dims: string[] = [];
    const keys: string[] = [];
    const queued: number[] = [];
    const inflight: number[] = [];
    const dead: number[] = [];
    const rows = [...tally.gauges()].sort(([d1, k1], [d2, k2]) =>
      d1 === d2 ? (k1 < k2 ? -1 : k1 > k2 ? 1 : 0) : d1 < d2 ? -1 : 1,
    );
    for (const [dim, key, values] of rows) {
      const [q = 0, i = 0, d = 0] = values;
      if (q === 0 && i === 0 && d === 0) continue;
      dims.push(dim);
      keys.push(key);
      queued.push(q);
      inflight.push(i);
      dead.push(d);
    }

    const r = tally.rate;
    const rated = r.attempts + r.failures + r.deadLettered + r.enqueued + r.delivered > 0;
    if (names.length === 0 && dims.length === 0 && !rated) return;

    await this.query(
      client,
      `WITH c AS (
         INSERT INTO counters (name, value)
         SELECT name, delta FROM unnest($1::text[], $2::bigint[]) AS d(name, delta) ORDER BY name
         ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value
         RETURNING 1),
       g AS (
         INSERT INTO gauges (dim, key, queued, inflight, dead)
         SELECT * FROM unnest($3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[])
           AS d(dim, key, queued, inflight, dead)
         ORDER BY dim, key
         ON CONFLICT (dim, key) DO UPDATE SET queued = gauges.queued + excluded.queued,
           inflight = gauges.inflight + excluded.inflight, dead = gauges.dead + excluded.dead
         RETURNING 1),
       r AS (
         INSERT INTO rate_buckets (bucket, attempts, failures, dead_lettered, enqueued, delivered)
         SELECT $8::bigint, $9::bigint, $10::bigint, $11::bigint, $12::bigint, $13::bigint
         WHERE $14::boolean
         ON CONFLICT (bucket) DO UPDATE SET attempts = rate_buckets.attempts + excluded.attempts,
           failures = rate_buckets.failures + excluded.failures,
           dead_lettered = rate_buckets.dead_lettered + excluded.dead_lettered,
           enqueued = rate_buckets.enqueued + excluded.enqueued,
           delivered = rate_buckets.delivered + excluded.delivered
         RETURNING 1)
       SELECT (SELECT count(*) FROM c) + (SELECT count(*) FROM g) + (SELECT count(*) FROM r)`,
      [
        names,
        deltas,
        dims,
        keys,
        queued,
        inflight,
        dead,
        rateBucket(tally.now),
        r.attempts,
        r.failures,
        r.deadLettered,
        r.enqueued,
        r.delivered,
        rated,
      ],
    );
  }

  async migrate(): Promise<void> {
    await this.createSchema();
    try {
      await this.pool.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`);
    } catch (err) {
      // Two coordinators starting at once can race on CREATE TABLE IF NOT EXISTS itself.
      if ((err as { code?: string }).code !== '23505') throw mapDriverError(err);
    }

    for (const migration of PG_MIGRATIONS) {
      const client = await this.borrow().catch((err) => {
        throw mapDriverError(err);
      });
      try {
        await client.query('BEGIN');
        // One coordinator migrates; the others wait here and then find the version applied.
        await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
        const applied = await client.query('SELECT 1 FROM schema_migrations WHERE version = $1', [
          migration.version,
        ]);
        if (applied.rowCount === 0) {
          await client.query(migration.up);
          await client.query(
            'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
            [migration.version, migration.name, Date.now()],
          );
        }
        await client.query('COMMIT');
        this.giveBack(client);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        this.giveBack(client, true);
        throw mapDriverError(err);
      }
    }
  }

  /**
   * A URL whose search_path names a schema that does not exist yet gets it, as a fresh
   * database gets its tables: the first schema of the path, "$user" aside.
   */
  private async createSchema(): Promise<void> {
    let row: { schema: string | null; path: string } | undefined;
    try {
      ({
        rows: [row],
      } = await this.pool.query<{ schema: string | null; path: string }>(
        `SELECT current_schema() AS schema, current_setting('search_path') AS path`,
      ));
    } catch (err) {
      throw mapDriverError(err);
    }
    if (row === undefined || row.schema !== null) return;

    const first = row.path
      .split(',')
      .map((part) => part.trim().replace(/^"(.*)"$/, '$1'))
      .find((part) => part !== '' && part !== '$user');
    if (first === undefined) return;
    try {
      await this.pool.query(`CREATE SCHEMA IF NOT EXISTS "${first.replaceAll('"', '""')}"`);
    } catch (err) {
      // Another coordinator created it a moment before.
      const code = (err as { code?: string }).code;
      if (code !== '23505' && code !== '42P06') throw mapDriverError(err);
    }
  }

  async ping(): Promise<boolean> {
    try {
      await this.pool.query('SELECT 1');
      return true;
    } catch {
      return false;
    }
  }

  fileSizes(): StoreFileSizes | null {
    return null;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Writes already accepted into a group are committed, not dropped.
    await this.enqueues.settled();
    await this.acks.settled();
    if (this.listenTimer !== null) clearTimeout(this.listenTimer);
    const listener = this.listener;
    this.listener = null;
    await listener?.end().catch(() => {});
    await this.pool.end();
  }

  // Agents

  async upsertAgent(agent: Agent): Promise<Agent> {
    return this.tx(Date.now(), async (client) => {
      const [row] = await this.query<{ registered_at: number }>(
        client,
        `INSERT INTO agents (id, type, status, capabilities, endpoint, max_inflight, metadata,
           registered_at, last_heartbeat)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (id) DO UPDATE SET type = excluded.type, status = excluded.status,
           capabilities = excluded.capabilities, endpoint = excluded.endpoint,
           max_inflight = excluded.max_inflight, metadata = excluded.metadata,
           last_heartbeat = excluded.last_heartbeat
         RETURNING registered_at`,
        [
          agent.id,
          agent.type,
          agent.status,
          JSON.stringify(agent.capabilities),
          agent.endpoint,
          agent.maxInflight,
          JSON.stringify(agent.metadata),
          agent.registeredAt,
          agent.lastHeartbeat,
        ],
      );

      await this.query(client, 'DELETE FROM agent_capabilities WHERE agent_id = $1', [agent.id]);
      await this.query(
        client,
        `INSERT INTO agent_capabilities (capability, agent_id)
         SELECT DISTINCT c, $1 FROM unnest($2::text[]) AS c ON CONFLICT DO NOTHING`,
        [agent.id, agent.capabilities],
      );
      return { ...agent, registeredAt: row?.registered_at ?? agent.registeredAt };
    });
  }

  async heartbeat(
    id: string,
    at: number,
    status?: AgentStatus,
    metrics?: Record<string, unknown>,
  ): Promise<boolean> {
    return this.tx(
      at,
      async (client) => {
        const rows = await this.query(
          client,
          `UPDATE agents SET last_heartbeat = $1, status = COALESCE($2, status) WHERE id = $3
           RETURNING 1`,
          [at, status ?? null, id],
        );
        if (rows.length > 0 && metrics !== undefined) {
          await this.query(
            client,
            `INSERT INTO agent_metrics (agent_id, metrics, reported_at) VALUES ($1, $2, $3)
             ON CONFLICT (agent_id) DO UPDATE SET metrics = excluded.metrics,
               reported_at = excluded.reported_at`,
            [id, JSON.stringify(metrics), at],
          );
        }
        return rows.length > 0;
      },
      false,
    );
  }

  async agentMetrics(id: string): Promise<{ metrics: Record<string, unknown>; at: number } | null> {
    const [row] = await this.read((db) =>
      this.query<{ metrics: string; reported_at: number }>(
        db,
        'SELECT metrics, reported_at FROM agent_metrics WHERE agent_id = $1',
        [id],
      ),
    );
    return row === undefined ? null : { metrics: JSON.parse(row.metrics), at: row.reported_at };
  }

  async getAgent(id: string): Promise<Agent | null> {
    const [row] = await this.read((db) =>
      this.query<AgentRow>(db, 'SELECT * FROM agents WHERE id = $1', [id]),
    );
    return row === undefined ? null : toAgent(row);
  }

  async listAgents(filter: AgentFilter): Promise<{ items: Agent[]; total: number }> {
    return this.read(async (db) => {
      const { count, page } = agentWhere(filter);
      const [total] = await this.query<{ n: number }>(
        db,
        numbered(`SELECT count(*) AS n FROM agents ${count.sql}`),
        count.params,
      );
      // agents.id is COLLATE "C" (migrations.ts), so this order is the cursor's id > ?.
      const rows = await this.query<AgentRow>(
        db,
        numbered(`SELECT * FROM agents ${page.sql} ORDER BY id LIMIT ?`),
        [...page.params, filter.limit],
      );
      return { items: rows.map(toAgent), total: total?.n ?? 0 };
    });
  }

  async liveAgents(since: number): Promise<Agent[]> {
    const rows = await this.read((db) =>
      this.query<AgentRow>(
        db,
        `SELECT * FROM agents WHERE last_heartbeat >= $1 AND status <> 'offline'
         ORDER BY id`,
        [since],
      ),
    );
    return rows.map(toAgent);
  }

  async agentCounts(staleBefore: number): Promise<AgentCounts> {
    const rows = await this.read((db) =>
      this.query<AgentCountRow>(
        db,
        `SELECT type, status, last_heartbeat < $1 AS stale, count(*) AS n
         FROM agents GROUP BY type, status, stale`,
        [staleBefore],
      ),
    );
    return toAgentCounts(rows);
  }

  async removeAgents(
    ids: string[],
    reason: DeadLetterReason,
    now: number,
  ): Promise<RemoveAgentsOutcome> {
    return this.tx(now, async (client, tally) => {
      const gone = await this.query<{ id: string }>(
        client,
        'DELETE FROM agents WHERE id = ANY($1::text[]) RETURNING id',
        [ids],
      );
      const removed = gone.map((row) => row.id).sort();
      if (removed.length === 0) return { removed, released: 0, deadLettered: 0 };
      for (const table of ['agent_capabilities', 'subscriptions', 'agent_metrics']) {
        await this.query(client, `DELETE FROM ${table} WHERE agent_id = ANY($1::text[])`, [
          removed,
        ]);
      }

      // Leases held by the agents go back at once, their attempt counted; those addressed to
      // their holder alone have nowhere to go. Their pending direct entries are left to
      // deadLetterUnroutable, which takes them in batches.
      const held = await this.leasedRows(client, 'assigned_to = ANY($1::text[])', [removed]);
      const direct = held.filter((row) => fateOfLease(row) === 'direct');
      const released = held.filter((row) => fateOfLease(row) === 'released');
      let deadLettered = await this.deadLetterRows(client, direct, reason, null, now, tally);
      // A spent lease ends as a lapsed one would, its error naming the holder removed.
      for (const holder of removed) {
        const spent = held.filter(
          (row) => row.assigned_to === holder && fateOfLease(row) === 'spent',
        );
        deadLettered += await this.deadLetterRows(
          client,
          spent,
          'max_attempts',
          `lease holder ${holder} removed`,
          now,
          tally,
        );
      }
      await this.releaseRows(client, released, () => now, null, tally);
      return { removed, released: released.length, deadLettered };
    });
  }

  async removalPreview(ids: string[]): Promise<{ released: number; deadLettered: number }> {
    return this.read(async (db) => {
      const registered = await this.query<{ id: string }>(
        db,
        'SELECT id FROM agents WHERE id = ANY($1::text[])',
        [ids],
      );
      const known = registered.map((row) => row.id);
      const held = await this.query<LeasedRow>(
        db,
        `SELECT queue_id, topic, route_kind, route_key, attempts, max_attempts, assigned_to
         FROM entries WHERE state = 'inflight' AND assigned_to = ANY($1::text[])`,
        [known],
      );
      let released = 0;
      let deadLettered = 0;
      for (const row of held) {
        if (fateOfLease(row) === 'released') released += 1;
        else deadLettered += 1;
      }
      const [direct] = await this.query<{ n: number }>(
        db,
        `SELECT count(*) AS n FROM entries
         WHERE state = 'pending' AND route_kind = 'agent' AND route_key = ANY($1::text[])`,
        [known],
      );
      return { released, deadLettered: deadLettered + (direct?.n ?? 0) };
    });
  }

  async staleAgentIds(before: number): Promise<string[]> {
    const rows = await this.read((db) =>
      this.query<{ id: string }>(
        db,
        'SELECT id FROM agents WHERE last_heartbeat < $1 ORDER BY id',
        [before],
      ),
    );
    return rows.map((row) => row.id);
  }

  async inflightByAgent(): Promise<Map<string, number>> {
    const rows = await this.read((db) =>
      this.query<{ holder: string; n: number }>(
        db,
        `SELECT assigned_to AS holder, count(*) AS n FROM entries WHERE state = 'inflight'
         GROUP BY assigned_to`,
      ),
    );
    return new Map(rows.map((row) => [row.holder, row.n]));
  }

  async inflightOf(agentId: string): Promise<number> {
    const [row] = await this.read((db) =>
      this.query<{ n: number }>(
        db,
        `SELECT count(*) AS n FROM entries WHERE state = 'inflight' AND assigned_to = $1`,
        [agentId],
      ),
    );
    return row?.n ?? 0;
  }

  // Subscriptions

  async subscribe(agentId: string, topic: string, now: number): Promise<void> {
    await this.tx(now, async (client) => {
      await this.query(
        client,
        `INSERT INTO subscriptions (topic, agent_id, created_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING`,
        [topic, agentId, now],
      );
    });
  }

  async unsubscribe(agentId: string, topic: string): Promise<void> {
    await this.tx(Date.now(), async (client) => {
      await this.query(client, 'DELETE FROM subscriptions WHERE topic = $1 AND agent_id = $2', [
        topic,
        agentId,
      ]);
    });
  }

  async subscribers(topic: string): Promise<string[]> {
    const rows = await this.read((db) =>
      this.query<{ agent_id: string }>(
        db,
        'SELECT agent_id FROM subscriptions WHERE topic = $1 ORDER BY agent_id',
        [topic],
      ),
    );
    return rows.map((row) => row.agent_id);
  }

  async subscriptions(topic?: string): Promise<Record<string, string[]>> {
    const rows = await this.read((db) =>
      topic === undefined
        ? this.query<{ topic: string; agent_id: string }>(
            db,
            `SELECT topic, agent_id FROM subscriptions
             ORDER BY topic, agent_id`,
          )
        : this.query<{ topic: string; agent_id: string }>(
            db,
            `SELECT topic, agent_id FROM subscriptions WHERE topic = $1
             ORDER BY agent_id`,
            [topic],
          ),
    );
    return toSubscriptions(rows);
  }

  async subscriptionsOf(agentId: string): Promise<string[]> {
    const rows = await this.read((db) =>
      this.query<{ topic: string }>(
        db,
        'SELECT topic FROM subscriptions WHERE agent_id = $1 ORDER BY topic',
        [agentId],
      ),
    );
    return rows.map((row) => row.topic);
  }

  // Queue

  async enqueue(entries: NewEntry[], now: number, maxDepth = 0): Promise<EnqueueOutcome[]> {
    if (entries.length === 0) return [];
    return this.enqueues.submit({ entries, now, maxDepth });
  }

  /** The enqueue calls of one group, in one transaction and a handful of statements. */
  private writeEnqueues(jobs: EnqueueJob[]): Promise<JobResult<EnqueueOutcome[]>[]> {
    const now = Math.max(...jobs.map((job) => job.now));
    return this.tx(now, async (client, tally) => {
      const results: JobResult<EnqueueOutcome[]>[] = [];

      // A direct target must be registered now; FOR KEY SHARE keeps it so until this commits
      // (a removal waits, then finds these entries and dead-letters them) without holding up
      // its heartbeats. Taken before the counters: agents, then entries, then counters is
      // the order every writer locks in.
      const direct = [
        ...new Set(
          jobs.flatMap((job) =>
            job.entries.filter((entry) => entry.requireRegistered).map((entry) => entry.routeKey),
          ),
        ),
      ].sort();
      const registered = new Set<string>();
      if (direct.length > 0) {
        const rows = await this.query<{ id: string }>(
          client,
          'SELECT id FROM agents WHERE id = ANY($1::text[]) ORDER BY id FOR KEY SHARE',
          [direct],
        );
        for (const row of rows) registered.add(row.id);
      }

      // Backpressure, in two readings. This one, without a lock, picks the calls that fit;
      // the one at the end (see below) checks again under the counter rows' locks, so the
      // limit is exact across coordinators while those rows are held only for the commit,
      // not for the whole insert of a large batch.
      const limited = jobs.some((job) => job.maxDepth > 0);
      let depth = limited ? await this.depth(client, false) : 0;
      const accepted: EnqueueJob[] = [];
      for (const job of jobs) {
        if (job.maxDepth > 0 && depth + job.entries.length > job.maxDepth) {
          results.push({ error: queueFull(depth, job.maxDepth, job.entries.length) });
          continue;
        }
        depth += job.entries.length;
        accepted.push(job);
        results.push({ value: [] });
      }
      const all = accepted.flatMap((job) => job.entries.map((entry) => ({ entry, now: job.now })));
      if (all.length === 0) return results;

      // Messages already queued or in flight under the same key are not queued again.
      const keys = [...new Set(all.flatMap(({ entry }) => storedKey(entry.dedupeKey) ?? []))];
      const live = new Map<string, number>();
      if (keys.length > 0) {
        const rows = await this.query<{ dedupe_key: string; queue_id: number }>(
          client,
          `SELECT dedupe_key, queue_id FROM entries
           WHERE dedupe_key = ANY($1::text[]) AND state <> 'dead'`,
          [keys],
        );
        for (const row of rows) live.set(row.dedupe_key, row.queue_id);
      }

      const [ids] = await this.query<{ ids: number[] }>(
        client,
        `SELECT array_agg(nextval('entries_queue_id_seq')) AS ids FROM generate_series(1, $1)`,
        [all.length],
      );
      const fresh = (ids?.ids ?? []).map(Number);

      const cols = {
        id: [] as number[],
        messageId: [] as string[],
        dedupe: [] as (string | null)[],
        target: [] as string[],
        kind: [] as string[],
        key: [] as string[],
        topic: [] as (string | null)[],
        priority: [] as number[],
        state: [] as string[],
        enqueuedAt: [] as number[],
        availableAt: [] as number[],
        expiresAt: [] as (number | null)[],
        maxAttempts: [] as number[],
        reason: [] as (string | null)[],
        deadAt: [] as (number | null)[],
        message: [] as string[],
      };
      const outcomes: EnqueueOutcome[] = [];
      /** The dedupe key of each outcome, to repair those a concurrent insert took. */
      const outcomeKeys: (string | null)[] = [];
      for (const [i, { entry, now: at }] of all.entries()) {
        const key = storedKey(entry.dedupeKey);
        outcomeKeys.push(key);
        const existing = key === null ? undefined : live.get(key);
        if (existing !== undefined) {
          outcomes.push({ queueId: String(existing), duplicate: true });
          continue;
        }
        const id = fresh[i] as number;
        const dead = entry.requireRegistered && !registered.has(entry.routeKey);
        // A later entry of this group with the same key is a duplicate of this one.
        if (key !== null && !dead) live.set(key, id);
        cols.id.push(id);
        cols.messageId.push(entry.message.id);
        cols.dedupe.push(key);
        cols.target.push(entry.message.target);
        cols.kind.push(entry.routeKind);
        cols.key.push(entry.routeKey);
        cols.topic.push(entry.message.topic);
        cols.priority.push(entry.priority);
        cols.state.push(dead ? 'dead' : 'pending');
        cols.enqueuedAt.push(at);
        cols.availableAt.push(entry.availableAt);
        cols.expiresAt.push(entry.expiresAt);
        cols.maxAttempts.push(entry.maxAttempts);
        cols.reason.push(dead ? 'no_route' : null);
        cols.deadAt.push(dead ? at : null);
        cols.message.push(entry.messageJson);
        outcomes.push({ queueId: String(id), duplicate: false });
      }

      const inserted = new Set<number>();
      if (cols.id.length > 0) {
        const rows = await this.query<{ queue_id: number }>(
          client,
          `INSERT INTO entries (queue_id, message_id, dedupe_key, target, route_kind, route_key,
             topic, priority, state, enqueued_at, available_at, expires_at, max_attempts, reason,
             dead_lettered_at, message)
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::smallint[], $9::text[], $10::bigint[], $11::bigint[],
             $12::bigint[], $13::integer[], $14::text[], $15::bigint[], $16::text[])
           ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND state <> 'dead' DO NOTHING
           RETURNING queue_id`,
          Object.values(cols),
        );
        for (const row of rows) inserted.add(row.queue_id);
      }

      // Keys another coordinator inserted after the check above: its entry stands, and every
      // outcome that named ours (the entry itself, later duplicates of it) names its instead.
      const lost = new Set(cols.id.filter((id) => !inserted.has(id)));
      if (lost.size > 0) {
        const rows = await this.query<{ dedupe_key: string; queue_id: number }>(
          client,
          `SELECT dedupe_key, queue_id FROM entries
           WHERE dedupe_key = ANY($1::text[]) AND state <> 'dead'`,
          [cols.dedupe.filter((_, i) => lost.has(cols.id[i] as number))],
        );
        const winner = new Map(rows.map((row) => [row.dedupe_key, row.queue_id]));
        for (const [i, outcome] of outcomes.entries()) {
          if (!lost.has(Number(outcome.queueId))) continue;
          const other = winner.get(outcomeKeys[i] as string);
          if (other !== undefined) outcome.queueId = String(other);
          outcome.duplicate = true;
        }
      }

      // Counted, and the routes made ready now told to the other coordinators (announce).
      const ready = new Map<string, number>();
      for (const [i, id] of cols.id.entries()) {
        if (!inserted.has(id)) continue;
        const dead = cols.state[i] === 'dead';
        const route = `${cols.kind[i]}:${cols.key[i]}`;
        tally.count('enqueued');
        tally.rate.enqueued += 1;
        tally.move({ topic: cols.topic[i] ?? null }, null, dead ? 'dead' : 'pending', route);
        if (dead) {
          tally.count('deadLettered');
          tally.rate.deadLettered += 1;
        } else if ((cols.availableAt[i] as number) <= now) {
          ready.set(route, (ready.get(route) ?? 0) + 1);
        }
      }
      tally.count('deduplicated', outcomes.filter((o) => o.duplicate).length);

      // The second reading: others may have committed since the first. Should the calls no
      // longer fit, the group fails whole and each call runs again alone (commit-group.ts),
      // where the one that does not fit is refused by itself.
      if (limited) {
        const committed = await this.depth(client, true);
        const adding = accepted.reduce((n, job) => n + job.entries.length, 0);
        const limit = Math.min(...accepted.map((job) => job.maxDepth || Number.POSITIVE_INFINITY));
        if (committed + adding > limit) throw queueFull(committed, limit, adding);
      }

      await this.announce(client, ready);

      // Hand each accepted call its own outcomes, in the order of its entries.
      let next = 0;
      for (const [i, job] of jobs.entries()) {
        const result = results[i];
        if (result === undefined || 'error' in result) continue;
        result.value = outcomes.slice(next, next + job.entries.length);
        next += job.entries.length;
      }
      return results;
    });
  }

  /**
   * Messages queued, delayed and in flight, as committed. `lock` takes every counter row, in
   * key order, until this transaction ends: the order every writer's flush takes them in.
   */
  private async depth(client: Client, lock: boolean): Promise<number> {
    const rows = await this.query<{ name: string; value: number }>(
      client,
      lock
        ? 'SELECT name, value FROM counters ORDER BY name FOR UPDATE'
        : `SELECT name, value FROM counters WHERE name IN ('inflight', 'queued')`,
    );
    return rows.reduce(
      (sum, row) => (row.name === 'queued' || row.name === 'inflight' ? sum + row.value : sum),
      0,
    );
  }

  /**
   * Leases ready entries of the agent's routes in claim order (priority, availability,
   * enqueue order). Each route is read through its own ordered index range, locking what
   * it takes with SKIP LOCKED: entries another coordinator is taking are passed over, not
   * waited for.
   */
  private pickSql(routesParam: number): string {
    return `SELECT c.queue_id FROM unnest($${routesParam}::text[], $${routesParam + 1}::text[])
        AS r(kind, key)
      CROSS JOIN LATERAL (
        SELECT queue_id, priority, available_at FROM entries
        WHERE state = 'pending' AND route_kind = r.kind AND route_key = r.key
          AND available_at <= $${routesParam + 2}
        ORDER BY priority, available_at, queue_id
        LIMIT $${routesParam + 3}
        FOR UPDATE SKIP LOCKED) c
      ORDER BY c.priority, c.available_at, c.queue_id
      LIMIT $${routesParam + 3}`;
  }

  private routeParams(routes: AgentRoutes): [string[], string[]] {
    const kinds = ['agent', 'type', ...routes.capabilities.map(() => 'capability')];
    const keys = [routes.agentId, routes.type, ...routes.capabilities];
    return [kinds, keys];
  }

  async claim(routes: AgentRoutes, options: ClaimOptions): Promise<Delivery[]> {
    const leaseExpiresAt = options.now + options.leaseMs;
    const [kinds, keys] = this.routeParams(routes);

    // Not durable: a lease lost in a crash leaves its entry pending, and it is delivered again.
    const rows = await this.tx(
      options.now,
      async (client, tally) => {
        const claimed = await this.query<ClaimedRow>(
          client,
          `WITH picked AS (${this.pickSql(1)})
           UPDATE entries e SET state = 'inflight', attempts = e.attempts + 1,
             assigned_to = $5, lease_expires_at = $6
           FROM picked WHERE e.queue_id = picked.queue_id
           RETURNING e.queue_id, e.attempts, e.message, e.topic, e.route_kind, e.route_key,
             e.priority, e.available_at`,
          [kinds, keys, options.now, options.limit, routes.agentId, leaseExpiresAt],
        );
        for (const row of claimed) tally.move(row, 'pending', 'inflight', routeOf(row));
        tally.rate.attempts += claimed.length;
        return claimed;
      },
      false,
    );

    return inClaimOrder(rows).map((row) =>
      toDelivery(row.queue_id, row.attempts, row.message, leaseExpiresAt),
    );
  }

  async claimAndAck(routes: AgentRoutes, limit: number, now: number): Promise<Delivery[]> {
    const [kinds, keys] = this.routeParams(routes);
    const rows = await this.tx(now, async (client, tally) => {
      const taken = await this.query<ClaimedRow>(
        client,
        `WITH picked AS (${this.pickSql(1)})
         DELETE FROM entries e USING picked WHERE e.queue_id = picked.queue_id
         RETURNING e.queue_id, e.attempts, e.message, e.topic, e.route_kind, e.route_key,
           e.priority, e.available_at`,
        [kinds, keys, now, limit],
      );
      for (const row of taken) tally.move(row, 'pending', null, routeOf(row));
      tally.count('delivered', taken.length);
      tally.rate.delivered += taken.length;
      tally.rate.attempts += taken.length;
      return taken;
    });
    return inClaimOrder(rows).map((row) =>
      toDelivery(row.queue_id, row.attempts + 1, row.message, now),
    );
  }

  async ack(
    queueIds: string[],
    agentId: string | undefined,
    now: number,
  ): Promise<{ acked: number; rejected: { queueId: string; why: string }[] }> {
    if (queueIds.length === 0) return { acked: 0, rejected: [] };
    return this.acks.submit({ queueIds, agentId, now });
  }

  /** The acks of one group: one DELETE for all, then each call's share of it. */
  private writeAcks(jobs: AckJob[]): Promise<JobResult<AckOutcome>[]> {
    const now = Math.max(...jobs.map((job) => job.now));
    return this.tx(now, async (client, tally) => {
      const ids: number[] = [];
      const holders: (string | null)[] = [];
      for (const job of jobs) {
        for (const queueId of job.queueIds) {
          const id = parseQueueId(queueId);
          if (id === null) continue;
          ids.push(id);
          holders.push(job.agentId ?? null);
        }
      }

      const deleted = new Map<number, GaugedRow & { assigned_to: string }>();
      if (ids.length > 0) {
        const rows = await this.query<GaugedRow & { assigned_to: string }>(
          client,
          `DELETE FROM entries e USING unnest($1::bigint[], $2::text[]) AS a(id, holder)
           WHERE e.queue_id = a.id AND e.state = 'inflight'
             AND (a.holder IS NULL OR e.assigned_to = a.holder)
           RETURNING e.queue_id, e.assigned_to, e.topic, e.route_kind, e.route_key`,
          [ids, holders],
        );
        for (const row of rows) deleted.set(row.queue_id, row);
      }

      const credited = new Set<number>();
      const outcomes: AckOutcome[] = [];
      const unexplained: { refusal: { why: string }; id: number | null; agentId?: string }[] = [];
      for (const job of jobs) {
        const outcome: AckOutcome = { acked: 0, rejected: [] };
        outcomes.push(outcome);
        for (const queueId of job.queueIds) {
          const id = parseQueueId(queueId);
          const row = id === null ? undefined : deleted.get(id);
          const holds =
            row !== undefined && (job.agentId === undefined || row.assigned_to === job.agentId);
          if (id !== null && row !== undefined && holds && !credited.has(id)) {
            credited.add(id);
            outcome.acked += 1;
            tally.move(row, 'inflight', null, routeOf(row));
            continue;
          }
          const refusal = { queueId, why: '' };
          outcome.rejected.push(refusal);
          unexplained.push({
            refusal,
            id,
            ...(job.agentId === undefined ? {} : { agentId: job.agentId }),
          });
        }
      }

      if (unexplained.length > 0) {
        const stored = await this.storedStates(
          client,
          unexplained.map((u) => u.id),
        );
        for (const u of unexplained) {
          u.refusal.why = whyNotLeased(u.id, u.agentId, deleted, stored);
        }
      }

      tally.count('delivered', credited.size);
      tally.rate.delivered += credited.size;
      return outcomes.map((value) => ({ value }));
    });
  }

  /** The state and holder of each entry still stored, for why an ack or a nack was refused. */
  private async storedStates(
    client: Client,
    ids: (number | null)[],
  ): Promise<Map<number, { state: string; assigned_to: string | null }>> {
    const rows = await this.query<{ queue_id: number; state: string; assigned_to: string | null }>(
      client,
      'SELECT queue_id, state, assigned_to FROM entries WHERE queue_id = ANY($1::bigint[])',
      [ids.filter((id): id is number => id !== null)],
    );
    return new Map(rows.map((row) => [row.queue_id, row]));
  }

  /** Inflight rows matching `where`, locked, in id order. */
  private leasedRows(client: Client, where: string, params: Param[]): Promise<LeasedRow[]> {
    return this.query<LeasedRow>(
      client,
      `SELECT queue_id, topic, route_kind, route_key, attempts, max_attempts, assigned_to
       FROM entries WHERE state = 'inflight' AND ${where} ORDER BY queue_id FOR UPDATE`,
      params,
    );
  }

  async fail(queueIds: string[], options: FailOptions, backoff: BackoffFn): Promise<FailOutcome> {
    const ids = queueIds.map(parseQueueId);
    return this.tx(options.now, async (client, tally) => {
      const rows = await this.leasedRows(client, 'queue_id = ANY($1::bigint[])', [
        ids.filter((id): id is number => id !== null),
      ]);
      const leased = new Map(rows.map((row) => [row.queue_id, row]));

      const outcome: FailOutcome = { retried: 0, deadLettered: 0, rejected: [] };
      const failing: LeasedRow[] = [];
      const seen = new Set<number>();
      const unexplained: { queueId: string; id: number | null }[] = [];
      for (const [i, queueId] of queueIds.entries()) {
        const id = ids[i] ?? null;
        const row = id === null ? undefined : leased.get(id);
        if (
          row === undefined ||
          seen.has(row.queue_id) ||
          (options.agentId !== undefined && row.assigned_to !== options.agentId)
        ) {
          unexplained.push({ queueId, id });
          continue;
        }
        seen.add(row.queue_id);
        failing.push(row);
      }

      if (unexplained.length > 0) {
        const byId = await this.storedStates(
          client,
          unexplained.map((u) => u.id),
        );
        for (const u of unexplained) {
          outcome.rejected.push({
            queueId: u.queueId,
            why: whyNotLeased(u.id, options.agentId, new Map(), byId),
          });
        }
      }

      const dead = failing.filter((row) => !options.retry || row.attempts >= row.max_attempts);
      const retried = failing.filter((row) => options.retry && row.attempts < row.max_attempts);
      tally.count('failed', failing.length);
      tally.rate.failures += failing.length;
      await this.deadLetterRows(
        client,
        dead,
        options.retry ? 'max_attempts' : 'rejected',
        options.error,
        options.now,
        tally,
      );
      await this.releaseRows(
        client,
        retried,
        (row) => options.now + (options.delayMs ?? backoff(row.attempts)),
        options.error,
        tally,
      );
      tally.count('retried', retried.length);
      outcome.deadLettered = dead.length;
      outcome.retried = retried.length;
      return outcome;
    });
  }

  /**
   * Leased rows back to pending, each available at what `at` gives it; `error` replaces the
   * last error when given. Their attempt stays counted.
   */
  private async releaseRows(
    client: Client,
    rows: LeasedRow[],
    at: (row: LeasedRow) => number,
    error: string | null,
    tally: Tally,
  ): Promise<void> {
    if (rows.length === 0) return;
    await this.query(
      client,
      `UPDATE entries e SET state = 'pending', available_at = x.at, assigned_to = NULL,
         lease_expires_at = NULL, last_error = COALESCE($3, e.last_error)
       FROM unnest($1::bigint[], $2::bigint[]) AS x(id, at) WHERE e.queue_id = x.id`,
      [rows.map((row) => row.queue_id), rows.map(at), storedError(error)],
    );
    for (const row of rows) tally.move(row, 'inflight', 'pending', routeOf(row));
  }

  /**
   * Live rows (pending or leased) to the dead-letter queue; `error` replaces the stored last
   * error when given, and the attempts stored are those made. Answers how many moved: the
   * counters follow the rows that moved, not the ones asked for.
   */
  private async deadLetterRows(
    client: Client,
    rows: { queue_id: number }[],
    reason: DeadLetterReason,
    error: string | null,
    now: number,
    tally: Tally,
  ): Promise<number> {
    if (rows.length === 0) return 0;
    const moved = await this.query<GaugedRow & { was: 'pending' | 'inflight' }>(
      client,
      `UPDATE entries e SET state = 'dead', reason = $2, dead_lettered_at = $3,
         last_error = COALESCE($4, e.last_error), assigned_to = NULL, lease_expires_at = NULL
       FROM (SELECT queue_id, state AS was FROM entries
             WHERE queue_id = ANY($1::bigint[]) AND state <> 'dead' FOR UPDATE) old
       WHERE e.queue_id = old.queue_id
       RETURNING e.queue_id, e.topic, e.route_kind, e.route_key, old.was`,
      [rows.map((row) => row.queue_id), reason, now, storedError(error)],
    );
    for (const row of moved) tally.move(row, row.was, 'dead', routeOf(row));
    tally.count('deadLettered', moved.length);
    tally.rate.deadLettered += moved.length;
    return moved.length;
  }

  async releaseExpiredLeases(now: number, backoff: BackoffFn, limit: number): Promise<number> {
    return this.tx(now, async (client, tally) => {
      const expired = await this.query<LeasedRow>(
        client,
        `SELECT queue_id, topic, route_kind, route_key, attempts, max_attempts, assigned_to
         FROM entries WHERE state = 'inflight' AND lease_expires_at <= $1
         ORDER BY lease_expires_at, queue_id LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [now, limit],
      );
      const dead = expired.filter((row) => row.attempts >= row.max_attempts);
      const retried = expired.filter((row) => row.attempts < row.max_attempts);
      tally.count('failed', expired.length);
      tally.rate.failures += expired.length;
      await this.deadLetterRows(client, dead, 'max_attempts', 'lease expired', now, tally);
      await this.releaseRows(
        client,
        retried,
        (row) => now + backoff(row.attempts),
        'lease expired',
        tally,
      );
      tally.count('retried', retried.length);
      return expired.length;
    });
  }

  async expireEntries(now: number, limit: number): Promise<number> {
    const count = await this.tx(now, async (client, tally) => {
      const expired = await this.query<GaugedRow>(
        client,
        `SELECT queue_id, topic, route_kind, route_key FROM entries
         WHERE expires_at <= $1 AND expires_at IS NOT NULL AND state <> 'dead'
         ORDER BY expires_at, queue_id LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [now, limit],
      );
      const moved = await this.deadLetterRows(client, expired, 'expired', null, now, tally);
      tally.count('expired', moved);
      return moved;
    });

    // The sweep is what tidies up: rate buckets past the window, gauges back at zero.
    if (count === 0) await this.tidy(now);
    return count;
  }

  private async tidy(now: number): Promise<void> {
    if (now - this.lastTidy < 60_000) return;
    this.lastTidy = now;
    await this.read(async (db) => {
      await this.query(db, 'DELETE FROM rate_buckets WHERE bucket < $1', [now - RATE_RETENTION_MS]);
      await this.query(db, 'DELETE FROM gauges WHERE queued = 0 AND inflight = 0 AND dead = 0');
    });
  }

  async deadLetterUnroutable(
    agentIds: string[],
    reason: DeadLetterReason,
    now: number,
    limit: number,
  ): Promise<number> {
    if (agentIds.length === 0) return 0;
    return this.tx(now, async (client, tally) => {
      // An agent that registered again in the meantime keeps its messages.
      const rows = await this.query<GaugedRow>(
        client,
        `SELECT queue_id, topic, route_kind, route_key FROM entries e
         WHERE state = 'pending' AND route_kind = 'agent' AND route_key = ANY($1::text[])
           AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = e.route_key)
         ORDER BY queue_id LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [agentIds, limit],
      );
      return this.deadLetterRows(client, rows, reason, null, now, tally);
    });
  }

  async getEntry(queueId: string): Promise<QueueEntry | null> {
    const id = parseQueueId(queueId);
    if (id === null) return null;
    const [row] = await this.read((db) =>
      this.query<EntryRow>(db, 'SELECT * FROM entries WHERE queue_id = $1', [id]),
    );
    return row === undefined ? null : toEntry(row);
  }

  private async deadCount(db: pg.Pool | Client): Promise<number> {
    const [row] = await this.query<{ value: number }>(
      db,
      `SELECT value FROM counters WHERE name = 'dead'`,
    );
    return row?.value ?? 0;
  }

  private async filteredDeadCount(db: pg.Pool | Client, filter: DeadLetterFilter): Promise<number> {
    if (isUnfiltered(filter)) return this.deadCount(db);
    const where = deadWhere(filter);
    const [row] = await this.query<{ n: number }>(
      db,
      numbered(`SELECT count(*) AS n FROM entries WHERE ${where.sql}`),
      where.params,
      false,
    );
    return row?.n ?? 0;
  }

  async deadLetters(query: DeadLetterPageQuery): Promise<{ items: QueueEntry[]; total: number }> {
    return this.read(async (db) => {
      const where = deadWhere(query);
      const total = await this.filteredDeadCount(db, query);

      let pageSql = where.sql;
      const params = [...where.params];
      if (query.after !== undefined) {
        pageSql += ' AND (dead_lettered_at > ? OR (dead_lettered_at = ? AND queue_id > ?))';
        const afterId = parseQueueId(query.after.queueId) ?? 0;
        params.push(query.after.deadLetteredAt, query.after.deadLetteredAt, afterId);
      }
      const rows = await this.query<EntryRow>(
        db,
        numbered(
          `SELECT * FROM entries WHERE ${pageSql} ORDER BY dead_lettered_at, queue_id LIMIT ?`,
        ),
        [...params, query.limit],
        false,
      );
      return { items: rows.map(toEntry), total };
    });
  }

  async requeue(options: RequeueOptions): Promise<RequeueOutcome> {
    const work = async (db: pg.Pool | Client, tally: Tally): Promise<RequeueOutcome> => {
      const where = deadWhere(options.filter);
      const n = where.params.length;
      const lock = options.dryRun ? '' : 'FOR UPDATE OF e SKIP LOCKED';
      const pageSql = `SELECT e.*, EXISTS (SELECT 1 FROM agents a WHERE a.id = e.route_key) AS registered
         FROM entries e WHERE ${numbered(where.sql)}
           AND (dead_lettered_at > $${n + 1} OR (dead_lettered_at = $${n + 1} AND queue_id > $${n + 2}))
         ORDER BY dead_lettered_at, queue_id LIMIT $${n + 3} ${lock}`;

      // `limit` counts what is requeued; dead letters that cannot be routed are reported as
      // they are passed and do not use it up. The walk is bounded so one call stays short.
      const rows: (EntryRow & { registered: boolean })[] = [];
      let routable = 0;
      let after = { at: -1, id: 0 };
      while (routable < options.limit && rows.length < REQUEUE_SCAN_MAX) {
        const batch = await this.query<EntryRow & { registered: boolean }>(
          db,
          pageSql,
          [...where.params, after.at, after.id, REQUEUE_PAGE],
          false,
        );
        for (const row of batch) {
          if (routable >= options.limit) break;
          rows.push(row);
          if (row.route_kind !== 'agent' || row.registered) routable += 1;
        }
        const last = batch[batch.length - 1];
        if (last === undefined || batch.length < REQUEUE_PAGE) break;
        after = { at: last.dead_lettered_at ?? 0, id: last.queue_id };
      }

      // A real requeue holds the direct targets it found registered until it commits, so a
      // removal cannot slip between the check and the requeue and strand their messages.
      if (!options.dryRun) {
        const targets = [
          ...new Set(rows.filter((row) => row.route_kind === 'agent').map((row) => row.route_key)),
        ].sort();
        if (targets.length > 0) {
          const held = await this.query<{ id: string }>(
            db,
            'SELECT id FROM agents WHERE id = ANY($1::text[]) ORDER BY id FOR KEY SHARE',
            [targets],
          );
          const present = new Set(held.map((row) => row.id));
          for (const row of rows) {
            if (row.route_kind === 'agent') row.registered = present.has(row.route_key);
          }
        }
      }

      const outcome: RequeueOutcome = { requeued: [], skipped: [], remaining: 0 };
      if (options.filter.ids !== undefined) {
        const found = new Set(rows.map((row) => String(row.queue_id)));
        for (const queueId of options.filter.ids) {
          if (!found.has(queueId) && outcome.skipped.length < 1000) {
            outcome.skipped.push({ queueId, why: 'not_a_dead_letter' });
          }
        }
      }

      const ids: number[] = [];
      const histories: string[] = [];
      const expiries: (number | null)[] = [];
      const keys: (string | null)[] = [];
      for (const row of rows) {
        if (row.route_kind === 'agent' && !row.registered) {
          outcome.skipped.push({
            queueId: String(row.queue_id),
            why: `target agent ${row.route_key} is not registered`,
          });
          continue;
        }
        outcome.requeued.push(String(row.queue_id));
        // A fresh budget: attempts from zero, and a fresh TTL (see requeued()).
        const { history, expiresAt } = requeued(row, options.now);
        ids.push(row.queue_id);
        histories.push(history);
        expiries.push(expiresAt);
        keys.push(row.dedupe_key);
        tally.move(row, 'dead', 'pending', routeOf(row));
        tally.count('requeued');
      }

      if (!options.dryRun && ids.length > 0) {
        // One message id may be live once. A requeued message whose id a live message holds,
        // or another requeued one already took, keeps no dedupe key: both are delivered, as
        // they would be had neither been dead-lettered. One that another coordinator makes
        // live meanwhile fails this transaction on the unique index, and it runs again.
        const wanted = [...new Set(keys.filter((key): key is string => key !== null))];
        const taken = new Set<string>();
        if (wanted.length > 0) {
          const live = await this.query<{ dedupe_key: string }>(
            db,
            `SELECT dedupe_key FROM entries WHERE dedupe_key = ANY($1::text[]) AND state <> 'dead'`,
            [wanted],
          );
          for (const row of live) taken.add(row.dedupe_key);
        }
        const kept = keys.map((key) => {
          if (key === null || taken.has(key)) return null;
          taken.add(key);
          return key;
        });
        await this.query(
          db,
          `UPDATE entries e SET state = 'pending', attempts = 0, available_at = $5,
             reason = NULL, dead_lettered_at = NULL, history = x.history, expires_at = x.expires_at,
             assigned_to = NULL, lease_expires_at = NULL, dedupe_key = x.dedupe_key
           FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[])
             AS x(id, history, expires_at, dedupe_key)
           WHERE e.queue_id = x.id`,
          [ids, histories, expiries, kept, options.now],
        );
        const ready = new Map<string, number>();
        const requeued = new Set(ids);
        for (const row of rows) {
          if (!requeued.has(row.queue_id)) continue;
          ready.set(routeOf(row), (ready.get(routeOf(row)) ?? 0) + 1);
        }
        await this.announce(db as Client, ready);
      }

      // What stays in the dead-letter queue afterwards; for a dry run, what would.
      outcome.remaining = (await this.deadCount(db)) - outcome.requeued.length;
      return outcome;
    };

    if (options.dryRun) return this.read((db) => work(db, new Tally(options.now)));
    return this.tx(options.now, (client, tally) => work(client, tally), true, REQUEUE_RETRY_CODES);
  }

  async purge(
    filter: DeadLetterFilter,
    dryRun: boolean,
    now: number,
  ): Promise<{ purged: number; remaining: number }> {
    if (dryRun) {
      return this.read(async (db) => {
        const purged = await this.filteredDeadCount(db, filter);
        return { purged, remaining: (await this.deadCount(db)) - purged };
      });
    }

    const where = deadWhere(filter);
    return this.tx(now, async (client, tally) => {
      const rows = await this.query<GaugedRow>(
        client,
        numbered(
          `DELETE FROM entries WHERE ${where.sql} RETURNING queue_id, topic, route_kind, route_key`,
        ),
        where.params,
        false,
      );
      for (const row of rows) tally.move(row, 'dead', null, routeOf(row));
      tally.count('purged', rows.length);
      // Read before this commit's counter deltas are written: subtract what this call takes.
      return { purged: rows.length, remaining: (await this.deadCount(client)) - rows.length };
    });
  }

  async becameReady(
    after: number,
    upTo: number,
  ): Promise<{ kind: RouteCount['kind']; key: string; count: number }[]> {
    const rows = await this.read((db) =>
      this.query<{ kind: RouteCount['kind']; key: string; count: number }>(
        db,
        `SELECT route_kind AS kind, route_key AS key, count(*)::integer AS count FROM entries
         WHERE state = 'pending' AND available_at > $1 AND available_at <= $2
         GROUP BY route_kind, route_key`,
        [Math.max(after, this.openedAt), upTo],
      ),
    );
    return rows;
  }

  async gauges(now: number): Promise<Gauges> {
    return (await this.counts(now)).gauges;
  }

  /** The counters alone: no reading of the delayed entries, which grows with them. */
  async stats(): Promise<Stats> {
    const [row] = await this.read((db) =>
      this.query<{ counters: Record<string, number> }>(
        db,
        'SELECT json_object_agg(name, value) AS counters FROM counters',
      ),
    );
    return statsOf(row?.counters ?? {});
  }

  /** One statement, so one snapshot: the counters and the gauges of the same commits. */
  async counts(now: number): Promise<{ gauges: Gauges; stats: Stats }> {
    const [row] = await this.read((db) =>
      this.query<{ counters: Record<string, number>; delayed: number; oldest: number | null }>(
        db,
        `SELECT (SELECT json_object_agg(name, value) FROM counters) AS counters,
           (SELECT count(*) FROM entries WHERE state = 'pending' AND available_at > $1) AS delayed,
           (SELECT min(available_at) FROM entries WHERE state = 'pending' AND available_at <= $1)
             AS oldest`,
        [now],
      ),
    );
    const counters = row?.counters ?? {};
    return {
      stats: statsOf(counters),
      gauges: {
        queued: Math.max(0, Number(counters.queued ?? 0)),
        delayed: row?.delayed ?? 0,
        inflight: Math.max(0, Number(counters.inflight ?? 0)),
        deadLettered: Math.max(0, Number(counters.dead ?? 0)),
        oldestReadyAt: row?.oldest ?? null,
      },
    };
  }

  async byTopic(): Promise<Record<string, TopicGauges>> {
    const rows = await this.read((db) =>
      this.query<{ key: string; queued: number; inflight: number; dead: number }>(
        db,
        `SELECT key, queued, inflight, dead FROM gauges
         WHERE dim = 'topic' AND (queued <> 0 OR inflight <> 0 OR dead <> 0)
         ORDER BY key`,
      ),
    );
    const byTopic = dict<TopicGauges>();
    for (const row of rows) {
      byTopic[row.key] = { queued: row.queued, inflight: row.inflight, deadLettered: row.dead };
    }
    return byTopic;
  }

  async routeCounts(): Promise<RouteCount[]> {
    const rows = await this.read((db) =>
      this.query<{ key: string; queued: number; inflight: number }>(
        db,
        `SELECT key, queued, inflight FROM gauges
         WHERE dim = 'route' AND (queued <> 0 OR inflight <> 0) ORDER BY key`,
      ),
    );
    return rows.map((row) => {
      const colon = row.key.indexOf(':');
      return {
        kind: row.key.slice(0, colon) as RouteCount['kind'],
        key: row.key.slice(colon + 1),
        pending: row.queued,
        inflight: row.inflight,
      };
    });
  }

  async rates(since: number): Promise<RateTotals> {
    const bucket = rateBucket(since);
    const [row] = await this.read((db) =>
      this.query<Omit<RateTotals, 'from'> & { oldest: number | null }>(
        db,
        `SELECT COALESCE(SUM(attempts), 0)::bigint AS "deliveryAttempts",
           COALESCE(SUM(failures), 0)::bigint AS "deliveryFailures",
           COALESCE(SUM(dead_lettered), 0)::bigint AS "deadLettered",
           COALESCE(SUM(enqueued), 0)::bigint AS enqueued,
           COALESCE(SUM(delivered), 0)::bigint AS delivered,
           (SELECT min(bucket) FROM rate_buckets) AS oldest
         FROM rate_buckets WHERE bucket >= $1`,
        [bucket],
      ),
    );
    const { oldest = null, ...totals } = row ?? {
      deliveryAttempts: 0,
      deliveryFailures: 0,
      deadLettered: 0,
      enqueued: 0,
      delivered: 0,
    };
    return { ...totals, from: oldest === null ? bucket : Math.max(bucket, oldest) };
  }

  // Operator records

  async appendAudit(record: Omit<AuditRecord, 'id'>): Promise<AuditRecord> {
    return this.tx(record.at, async (client) => {
      const [row] = await this.query<{ id: number }>(
        client,
        `INSERT INTO audit (at, scope, token_name, action, parameters, result)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
        [
          record.at,
          record.scope,
          record.tokenName,
          record.action,
          JSON.stringify(record.parameters),
          JSON.stringify(record.result),
        ],
      );
      return { ...record, id: String(row?.id) };
    });
  }

  async listAudit(
    limit: number,
    beforeId?: string,
  ): Promise<{ items: AuditRecord[]; total: number }> {
    const before = beforeId === undefined ? null : parseQueueId(beforeId);
    return this.read(async (db) => {
      const [count] = await this.query<{ n: number }>(db, 'SELECT count(*) AS n FROM audit');
      const rows = await this.query<AuditRow>(
        db,
        'SELECT * FROM audit WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2',
        [before, limit],
      );
      return { items: rows.map(toAuditRecord), total: count?.n ?? 0 };
    });
  }

  async recordCycle(snapshot: CycleSnapshot): Promise<number> {
    return this.tx(snapshot.at, async (client) => {
      await this.query(
        client,
        'INSERT INTO recovery_cycles (at, action, snapshot) VALUES ($1, $2, $3)',
        [snapshot.at, snapshot.action, JSON.stringify(snapshot)],
      );
      const [row] = await this.query<{ n: number }>(
        client,
        'SELECT count(*) AS n FROM recovery_cycles',
      );
      return row?.n ?? 0;
    });
  }

  async recentCycles(limit: number): Promise<{ cycles: CycleSnapshot[]; total: number }> {
    return this.read(async (db) => {
      const rows = await this.query<{ snapshot: string }>(
        db,
        'SELECT snapshot FROM recovery_cycles ORDER BY id DESC LIMIT $1',
        [limit],
      );
      const [count] = await this.query<{ n: number }>(
        db,
        'SELECT count(*) AS n FROM recovery_cycles',
      );
      return {
        cycles: rows.map((row) => JSON.parse(row.snapshot) as CycleSnapshot).reverse(),
        total: count?.n ?? 0,
      };
    });
  }

  async getMeta(key: string): Promise<string | null> {
    const [row] = await this.read((db) =>
      this.query<{ value: string }>(db, 'SELECT value FROM meta WHERE key = $1', [key]),
    );
    return row?.value ?? null;
  }

  async setMeta(key: string, value: string): Promise<void> {
    await this.tx(Date.now(), async (client) => {
      await this.query(
        client,
        `INSERT INTO meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [key, value],
      );
    });
  }
}

/** The contract's stats from the counters table, read as one JSON object. */
function statsOf(counters: Record<string, number>): Stats {
  const stats = {} as Stats;
  for (const name of STAT_NAMES) stats[name] = Number(counters[name] ?? 0);
  return stats;
}

/** See borrow(): the error also fails the query in progress, which is where it is handled. */
function ignoreBorrowedError(): void {}

interface ClaimedRow extends GaugedRow {
  attempts: number;
  message: string;
  priority: number;
  available_at: number;
}

/** Rows come back from UPDATE … RETURNING in no promised order: put them in claim order. */
function inClaimOrder(rows: ClaimedRow[]): ClaimedRow[] {
  return [...rows].sort(
    (a, b) => a.priority - b.priority || a.available_at - b.available_at || a.queue_id - b.queue_id,
  );
}

/**
 * What becomes of a lease when its holder is removed: one addressed to the holder alone has
 * nowhere to go (`direct`); one on its last attempt ends as a lapsed lease would (`spent`);
 * any other goes back to the queue.
 */
function fateOfLease(row: LeasedRow): 'direct' | 'spent' | 'released' {
  if (row.route_kind === 'agent' && row.route_key === row.assigned_to) return 'direct';
  return row.attempts >= row.max_attempts ? 'spent' : 'released';
}

/** Why an id cannot be acknowledged or failed: it is not leased (to this agent) right now. */
function whyNotLeased(
  id: number | null,
  agentId: string | undefined,
  deletedNow: Map<number, { assigned_to: string }>,
  stored: Map<number, { state: string; assigned_to: string | null }>,
): string {
  if (id === null) return 'unknown_queue_id';
  const gone = deletedNow.get(id);
  if (gone !== undefined) {
    return agentId !== undefined && gone.assigned_to !== agentId
      ? 'not_lease_holder'
      : 'not_leased';
  }
  const row = stored.get(id);
  if (row === undefined) return 'unknown_queue_id';
  if (row.state === 'inflight') {
    return agentId !== undefined && row.assigned_to !== agentId ? 'not_lease_holder' : 'not_leased';
  }
  return `not_leased (${row.state})`;
}
