// Numbered SQLite migrations, applied in order at start, each in its own transaction and
// recorded in schema_migrations. Never edit a released migration: add the next number.

export interface Migration {
  version: number;
  name: string;
  up: string;
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'agents, subscriptions, queue entries, counters, audit',
    up: `
      CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        status TEXT NOT NULL,
        capabilities TEXT NOT NULL,
        endpoint TEXT,
        max_inflight INTEGER NOT NULL,
        metadata TEXT NOT NULL,
        registered_at INTEGER NOT NULL,
        last_heartbeat INTEGER NOT NULL
      );
      CREATE INDEX agents_by_type ON agents (type, id);
      CREATE INDEX agents_by_heartbeat ON agents (last_heartbeat);

      CREATE TABLE agent_capabilities (
        capability TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        PRIMARY KEY (capability, agent_id)
      ) WITHOUT ROWID;
      CREATE INDEX agent_capabilities_by_agent ON agent_capabilities (agent_id);

      CREATE TABLE subscriptions (
        topic TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (topic, agent_id)
      ) WITHOUT ROWID;
      CREATE INDEX subscriptions_by_agent ON subscriptions (agent_id, topic);

      -- AUTOINCREMENT: a queueId is never reused, so a late ack cannot hit a newer entry.
      CREATE TABLE entries (
        queue_id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        -- NULL for server-generated ids: they cannot collide, so they skip the dedupe index.
        dedupe_key TEXT,
        target TEXT NOT NULL,
        route_kind TEXT NOT NULL,
        route_key TEXT NOT NULL,
        topic TEXT,
        priority INTEGER NOT NULL,
        state TEXT NOT NULL,
        enqueued_at INTEGER NOT NULL,
        available_at INTEGER NOT NULL,
        expires_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        last_error TEXT,
        assigned_to TEXT,
        lease_expires_at INTEGER,
        reason TEXT,
        dead_lettered_at INTEGER,
        history TEXT,
        message TEXT NOT NULL
      );

      -- The claim reads one route in claim order (priority, availability, enqueue order):
      -- equality on the route, then an ordered range, so a claim touches only the rows it
      -- returns however deep other routes are.
      CREATE INDEX entries_claim
        ON entries (route_kind, route_key, priority, available_at, queue_id)
        WHERE state = 'pending';
      CREATE INDEX entries_ready ON entries (available_at) WHERE state = 'pending';
      -- In-flight counts per lease holder are maintained in gauge_counts (dim 'holder'),
      -- not indexed: one index fewer to touch on every claim and every ack.
      CREATE INDEX entries_leases ON entries (lease_expires_at) WHERE state = 'inflight';
      CREATE INDEX entries_expiry ON entries (expires_at)
        WHERE expires_at IS NOT NULL AND state <> 'dead';
      CREATE INDEX entries_dedupe ON entries (dedupe_key)
        WHERE dedupe_key IS NOT NULL AND state <> 'dead';
      CREATE INDEX entries_dead ON entries (dead_lettered_at, queue_id) WHERE state = 'dead';

      -- Maintained counters: metrics stay O(1) at a million entries.
      CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
      ) WITHOUT ROWID;
      INSERT INTO counters (name, value) VALUES
        ('enqueued', 0), ('delivered', 0), ('failed', 0), ('retried', 0),
        ('deadLettered', 0), ('expired', 0), ('requeued', 0), ('deduplicated', 0),
        ('purged', 0), ('queued', 0), ('inflight', 0), ('dead', 0);

      -- Per-topic and per-route gauges, maintained with the same deltas.
      CREATE TABLE gauge_counts (
        dim TEXT NOT NULL,
        key TEXT NOT NULL,
        queued INTEGER NOT NULL,
        inflight INTEGER NOT NULL,
        dead INTEGER NOT NULL,
        PRIMARY KEY (dim, key)
      ) WITHOUT ROWID;

      CREATE TABLE rate_buckets (
        bucket INTEGER PRIMARY KEY,
        attempts INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        dead_lettered INTEGER NOT NULL,
        enqueued INTEGER NOT NULL,
        delivered INTEGER NOT NULL
      );

      CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        scope TEXT NOT NULL,
        token_name TEXT NOT NULL,
        action TEXT NOT NULL,
        parameters TEXT NOT NULL,
        result TEXT NOT NULL
      );

      CREATE TABLE recovery_cycles (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        snapshot TEXT NOT NULL
      );

      CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    name: 'leases and claim order move to the live index',
    // Leases are held in memory from now on (live-index.ts): what was in flight is pending
    // again, as after any restart. The indexes that kept claim order, delays, leases and TTLs
    // are rebuilt in memory at start instead of being updated by every message; per-topic
    // gauges likewise. The table is rebuilt without AUTOINCREMENT, whose sequence table was
    // one more page in every enqueue commit: queue ids now come from the counter
    // nextQueueId, written in the same commit as the rows that use them, so an id is still
    // never reused.
    up: `
      CREATE TABLE entries_v2 (
        queue_id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL,
        dedupe_key TEXT,
        target TEXT NOT NULL,
        route_kind TEXT NOT NULL,
        route_key TEXT NOT NULL,
        topic TEXT,
        priority INTEGER NOT NULL,
        state TEXT NOT NULL,
        enqueued_at INTEGER NOT NULL,
        available_at INTEGER NOT NULL,
        expires_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        last_error TEXT,
        assigned_to TEXT,
        lease_expires_at INTEGER,
        reason TEXT,
        dead_lettered_at INTEGER,
        history TEXT,
        message TEXT NOT NULL
      );
      INSERT INTO entries_v2 (queue_id, message_id, dedupe_key, target, route_kind, route_key,
        topic, priority, state, enqueued_at, available_at, expires_at, attempts, max_attempts,
        last_error, assigned_to, lease_expires_at, reason, dead_lettered_at, history, message)
      SELECT queue_id, message_id, dedupe_key, target, route_kind, route_key, topic, priority,
        CASE state WHEN 'inflight' THEN 'pending' ELSE state END, enqueued_at, available_at,
        expires_at, attempts, max_attempts, last_error, NULL, NULL, reason, dead_lettered_at,
        history, message
      FROM entries;

      INSERT INTO counters (name, value) VALUES ('nextQueueId', 1 + MAX(
        COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'entries'), 0),
        COALESCE((SELECT MAX(queue_id) FROM entries), 0)));
      UPDATE counters SET value = value + (SELECT value FROM counters WHERE name = 'inflight')
        WHERE name = 'queued';
      UPDATE counters SET value = 0 WHERE name = 'inflight';

      DROP TABLE entries;
      ALTER TABLE entries_v2 RENAME TO entries;
      CREATE INDEX entries_dedupe ON entries (dedupe_key)
        WHERE dedupe_key IS NOT NULL AND state <> 'dead';
      CREATE INDEX entries_dead ON entries (dead_lettered_at, queue_id) WHERE state = 'dead';
      DROP TABLE gauge_counts;
    `,
  },
  {
    version: 3,
    name: 'heartbeat metrics',
    // The last metrics an agent reported with a heartbeat, kept apart from the agents table:
    // only the single-agent view shows them, and the listing stays small.
    up: `
      CREATE TABLE agent_metrics (
        agent_id TEXT PRIMARY KEY,
        metrics TEXT NOT NULL,
        reported_at INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
];
