// Numbered PostgreSQL migrations, applied in order at start, each in its own transaction and
// recorded in schema_migrations. Never edit a released migration: add the next number.
//
// The tables mirror the SQLite ones column for column (rows.ts maps both), with two
// differences that come from several coordinators sharing one database: leases are stored
// (state 'inflight', assigned_to, lease_expires_at), and per-route gauges live in a table,
// since no process holds the whole queue in memory. Names users choose (agent ids, topics,
// capabilities) compare in the "C" collation, byte by byte as in SQLite, whatever the
// database's default: page cursors (id > last) must agree with the order pages are read in.

import type { Migration } from '../sqlite/migrations.ts';

export const PG_MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'agents, subscriptions, queue entries, counters, gauges, rates, audit',
    up: `
      CREATE TABLE agents (
        id TEXT COLLATE "C" PRIMARY KEY,
        type TEXT NOT NULL,
        status TEXT NOT NULL,
        capabilities TEXT NOT NULL,
        endpoint TEXT,
        max_inflight INTEGER NOT NULL,
        metadata TEXT NOT NULL,
        registered_at BIGINT NOT NULL,
        last_heartbeat BIGINT NOT NULL
      );
      CREATE INDEX agents_by_type ON agents (type, id);
      CREATE INDEX agents_by_heartbeat ON agents (last_heartbeat);

      CREATE TABLE agent_capabilities (
        capability TEXT COLLATE "C" NOT NULL,
        agent_id TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (capability, agent_id)
      );
      CREATE INDEX agent_capabilities_by_agent ON agent_capabilities (agent_id);

      CREATE TABLE agent_metrics (
        agent_id TEXT COLLATE "C" PRIMARY KEY,
        metrics TEXT NOT NULL,
        reported_at BIGINT NOT NULL
      );

      CREATE TABLE subscriptions (
        topic TEXT COLLATE "C" NOT NULL,
        agent_id TEXT COLLATE "C" NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (topic, agent_id)
      );
      CREATE INDEX subscriptions_by_agent ON subscriptions (agent_id, topic);

      -- A sequence never hands out a value twice, so a late ack cannot hit a newer entry.
      CREATE TABLE entries (
        queue_id BIGSERIAL PRIMARY KEY,
        message_id TEXT NOT NULL,
        dedupe_key TEXT,
        target TEXT NOT NULL,
        route_kind TEXT NOT NULL,
        route_key TEXT COLLATE "C" NOT NULL,
        topic TEXT COLLATE "C",
        priority SMALLINT NOT NULL,
        state TEXT NOT NULL,
        enqueued_at BIGINT NOT NULL,
        available_at BIGINT NOT NULL,
        expires_at BIGINT,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        last_error TEXT,
        assigned_to TEXT,
        lease_expires_at BIGINT,
        reason TEXT,
        dead_lettered_at BIGINT,
        history TEXT,
        -- The message as the sender's request had it, serialized once: poll answers splice it.
        message TEXT NOT NULL
      );

      -- The claim reads one route in claim order: equality on the route, then an ordered
      -- range, so it touches only the rows it takes however deep other routes are.
      CREATE INDEX entries_claim
        ON entries (route_kind, route_key, priority, available_at, queue_id)
        WHERE state = 'pending';
      CREATE INDEX entries_ready ON entries (available_at) WHERE state = 'pending';
      CREATE INDEX entries_leases ON entries (lease_expires_at) WHERE state = 'inflight';
      CREATE INDEX entries_holder ON entries (assigned_to) WHERE state = 'inflight';
      CREATE INDEX entries_expiry ON entries (expires_at)
        WHERE expires_at IS NOT NULL AND state <> 'dead';
      -- Unique: two coordinators enqueueing the same message id at once cannot both insert it.
      CREATE UNIQUE INDEX entries_dedupe ON entries (dedupe_key)
        WHERE dedupe_key IS NOT NULL AND state <> 'dead';
      CREATE INDEX entries_dead ON entries (dead_lettered_at, queue_id) WHERE state = 'dead';

      -- Maintained counters: metrics stay O(1) at a million entries.
      CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value BIGINT NOT NULL
      );
      INSERT INTO counters (name, value) VALUES
        ('enqueued', 0), ('delivered', 0), ('failed', 0), ('retried', 0),
        ('deadLettered', 0), ('expired', 0), ('requeued', 0), ('deduplicated', 0),
        ('purged', 0), ('queued', 0), ('inflight', 0), ('dead', 0);

      -- Per-topic (dim 'topic') and per-route (dim 'route', key "type:analyst") gauges,
      -- changed with the same deltas in the same transaction.
      CREATE TABLE gauges (
        dim TEXT NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        queued BIGINT NOT NULL,
        inflight BIGINT NOT NULL,
        dead BIGINT NOT NULL,
        PRIMARY KEY (dim, key)
      );

      CREATE TABLE rate_buckets (
        bucket BIGINT PRIMARY KEY,
        attempts BIGINT NOT NULL,
        failures BIGINT NOT NULL,
        dead_lettered BIGINT NOT NULL,
        enqueued BIGINT NOT NULL,
        delivered BIGINT NOT NULL
      );

      CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
        scope TEXT NOT NULL,
        token_name TEXT NOT NULL,
        action TEXT NOT NULL,
        parameters TEXT NOT NULL,
        result TEXT NOT NULL
      );

      CREATE TABLE recovery_cycles (
        id BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
        action TEXT NOT NULL,
        snapshot TEXT NOT NULL
      );

      CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );
    `,
  },
];
