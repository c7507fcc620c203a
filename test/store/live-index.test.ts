// The SQLite store with its in-memory live index, on real files: what a restart rebuilds,
// what it forgets (leases), that queue ids are never reused, that a second server is refused,
// that a version-1 file migrates, and that the group commit keeps every call atomic.

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';

import type { Message } from '../../src/core/types.ts';
import { MIGRATIONS } from '../../src/store/sqlite/migrations.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { tempDir } from '../support/engine.ts';
import { agent, entry, NOW } from '../support/entries.ts';

const ROUTES = { agentId: 'a1', type: 'worker', capabilities: [] };
const open: SqliteStore[] = [];

afterEach(async () => {
  for (const store of open.splice(0)) await store.close();
});

async function openStore(file: string): Promise<SqliteStore> {
  const store = new SqliteStore(file);
  await store.migrate();
  open.push(store);
  return store;
}

async function closeStore(store: SqliteStore): Promise<void> {
  await store.close();
  open.splice(open.indexOf(store), 1);
}

async function conserved(store: SqliteStore): Promise<void> {
  const stats = await store.stats();
  const gauges = await store.gauges(NOW);
  expect(stats.enqueued).toBe(
    stats.delivered + gauges.queued + gauges.inflight + gauges.deadLettered + stats.purged,
  );
}

const payloads = (deliveries: { message: Message }[]) =>
  deliveries.map((d) => (d.message.payload as { n: number }).n);

describe('the live index', () => {
  it('rebuilds pending entries at start and returns leased ones to the queue', async () => {
    const file = path.join(tempDir(), 'swarm.db');
    let store = await openStore(file);
    await store.enqueue([entry(1), entry(2), entry(3)], NOW);

    const leased = await store.claim(ROUTES, { limit: 2, leaseMs: 30_000, now: NOW });
    expect(payloads(leased)).toEqual([1, 2]);
    expect(await store.gauges(NOW)).toMatchObject({ queued: 1, inflight: 2 });
    expect((await store.getEntry(leased[0]?.queueId as string))?.state).toBe('inflight');
    await conserved(store);

    // A restart forgets leases: what was in flight is pending again, in its old order.
    await closeStore(store);
    store = await openStore(file);
    expect(await store.gauges(NOW)).toMatchObject({ queued: 3, inflight: 0 });
    expect(await store.byTopic()).toEqual({
      jobs: { queued: 3, inflight: 0, deadLettered: 0 },
    });
    await conserved(store);

    const again = await store.claim(ROUTES, { limit: 10, leaseMs: 30_000, now: NOW });
    expect(payloads(again)).toEqual([1, 2, 3]);
    // The attempt in flight at the restart was not stored: each is on its first again.
    expect(again.map((d) => d.attempt)).toEqual([1, 1, 1]);
  });

  it('reports messages without a topic apart from a topic named like a placeholder', async () => {
    const file = path.join(tempDir(), 'swarm.db');
    let store = await openStore(file);
    await store.enqueue(
      [
        entry(1, { topic: null }),
        entry(2, { topic: '(none)' }),
        entry(3, { topic: 'x' }),
        entry(4, { topic: '__proto__' }),
      ],
      NOW,
    );
    await store.claim(ROUTES, { limit: 1, leaseMs: 30_000, now: NOW });

    const expected = {
      '': { queued: 0, inflight: 1, deadLettered: 0 },
      '(none)': { queued: 1, inflight: 0, deadLettered: 0 },
      x: { queued: 1, inflight: 0, deadLettered: 0 },
      ['__proto__']: { queued: 1, inflight: 0, deadLettered: 0 },
    };
    const byTopic = await store.byTopic();
    expect(byTopic).toEqual(expected);
    // A topic called __proto__ is a key like the others, not the record's prototype.
    expect(Object.keys(byTopic).sort()).toEqual(['', '(none)', '__proto__', 'x']);
    // biome-ignore lint/suspicious/noProto: an own key named __proto__ is what is under test.
    expect(JSON.parse(JSON.stringify(byTopic)).__proto__).toEqual({
      queued: 1,
      inflight: 0,
      deadLettered: 0,
    });

    // Rebuilt from the file at start, the keys stay apart (the lease is forgotten).
    await closeStore(store);
    store = await openStore(file);
    expect(await store.byTopic()).toEqual({
      ...expected,
      '': { queued: 1, inflight: 0, deadLettered: 0 },
    });
    await conserved(store);
  });

  it('claims in priority order, and delayed entries join in availability order', async () => {
    const store = await openStore(path.join(tempDir(), 'swarm.db'));
    await store.enqueue(
      [
        entry(1),
        entry(2, { delayMs: 500 }),
        entry(3, { priority: 'critical' }),
        entry(4, { delayMs: 100 }),
        entry(5, { priority: 'low' }),
      ],
      NOW,
    );

    expect(await store.gauges(NOW)).toMatchObject({ queued: 5, delayed: 2 });
    const first = await store.claim(ROUTES, { limit: 10, leaseMs: 30_000, now: NOW });
    expect(payloads(first)).toEqual([3, 1, 5]);

    // Entry 6 is enqueued after both delays have passed: 4 and 2 were ready before it.
    await store.enqueue([{ ...entry(6), availableAt: NOW + 600 }], NOW + 600);
    const later = await store.claim(ROUTES, { limit: 10, leaseMs: 30_000, now: NOW + 600 });
    expect(payloads(later)).toEqual([4, 2, 6]);

    const ripened = await store.becameReady(NOW, NOW + 600);
    expect(ripened).toEqual([{ kind: 'type', key: 'worker', count: 2 }]);
  });

  it('never reuses a queue id, even after every entry is acknowledged and the server restarts', async () => {
    const file = path.join(tempDir(), 'swarm.db');
    let store = await openStore(file);
    const [a, b] = await store.enqueue([entry(1), entry(2)], NOW);
    const leased = await store.claim(ROUTES, { limit: 2, leaseMs: 30_000, now: NOW });
    await store.ack(
      leased.map((d) => d.queueId),
      'a1',
      NOW,
    );
    await closeStore(store);

    store = await openStore(file);
    const [c] = await store.enqueue([entry(3)], NOW);
    expect(Number(c?.queueId)).toBeGreaterThan(Number(b?.queueId));
    expect(Number(b?.queueId)).toBeGreaterThan(Number(a?.queueId));

    // A late ack of an old id names nothing, not the new entry.
    const late = await store.ack([a?.queueId as string], 'a1', NOW);
    expect(late).toEqual({
      acked: 0,
      rejected: [{ queueId: a?.queueId, why: 'unknown_queue_id' }],
    });
  });

  it('expires a leased entry past its TTL and refuses its late ack', async () => {
    const store = await openStore(path.join(tempDir(), 'swarm.db'));
    await store.enqueue([entry(1, { ttlMs: 1_000 })], NOW);
    const [leased] = await store.claim(ROUTES, { limit: 1, leaseMs: 30_000, now: NOW });

    expect(await store.expireEntries(NOW + 1_000, 100)).toBe(1);
    expect(await store.gauges(NOW)).toMatchObject({ queued: 0, inflight: 0, deadLettered: 1 });
    const ack = await store.ack([leased?.queueId as string], 'a1', NOW + 1_001);
    expect(ack.rejected).toEqual([{ queueId: leased?.queueId, why: 'not_leased (dead)' }]);
    await conserved(store);
  });

  it('releases lapsed leases with their attempt counted, then dead-letters at the limit', async () => {
    const store = await openStore(path.join(tempDir(), 'swarm.db'));
    await store.enqueue([entry(1)], NOW);
    const backoff = () => 0;

    for (let attempt = 1; attempt <= 3; attempt += 1) {
      const now = NOW + attempt * 1_000;
      const [d] = await store.claim(ROUTES, { limit: 1, leaseMs: 100, now });
      expect(d?.attempt).toBe(attempt);
      expect(await store.releaseExpiredLeases(now + 100, backoff, 100)).toBe(1);
    }

    const dead = await store.deadLetters({ limit: 10 });
    expect(dead.items.map((e) => [e.reason, e.attempts, e.lastError])).toEqual([
      ['max_attempts', 3, 'lease expired'],
    ]);
    await conserved(store);
  });
});

describe('what the break-it session found', () => {
  it('a hand-out by /registry/queue/poll leaves no TTL deadline behind to expire later', async () => {
    const store = await openStore(path.join(tempDir(), 'swarm.db'));
    await store.enqueue([entry(1, { ttlMs: 1_000 }), entry(2, { ttlMs: 1_000 })], NOW);
    expect(await store.claimAndAck(ROUTES, 10, NOW)).toHaveLength(2);

    expect(await store.expireEntries(NOW + 2_000, 100)).toBe(0);
    expect(await store.stats()).toMatchObject({ enqueued: 2, delivered: 2, expired: 0 });
    expect(await store.gauges(NOW + 2_000)).toMatchObject({ queued: 0, deadLettered: 0 });
    expect(await store.byTopic()).toEqual({});
    await conserved(store);
  });

  it('an ack whose commit fails keeps the lease and its TTL, so the message still expires', async () => {
    const file = path.join(tempDir(), 'swarm.db');
    const store = await openStore(file);
    await store.enqueue([entry(1, { ttlMs: 5_000 })], NOW);
    const [d] = await store.claim(ROUTES, { limit: 1, leaseMs: 30_000, now: NOW });

    // Another tool holds the write lock: the ack's commit cannot happen.
    const tool = new Database(file);
    tool.exec('BEGIN IMMEDIATE');
    await expect(store.ack([d?.queueId as string], 'a1', NOW)).rejects.toMatchObject({
      code: 'unavailable',
    });
    tool.exec('ROLLBACK');
    tool.close();

    expect(await store.inflightOf('a1')).toBe(1);
    expect(await store.expireEntries(NOW + 5_000, 100)).toBe(1);
    expect((await store.getEntry(d?.queueId as string))?.reason).toBe('expired');
    await conserved(store);
  });

  it('removing the holder of a lease that spent the last attempt dead-letters it', async () => {
    const store = await openStore(path.join(tempDir(), 'swarm.db'));
    await store.upsertAgent(agent('a1'));
    await store.enqueue([{ ...entry(1), maxAttempts: 1 }, entry(2)], NOW);
    await store.claim(ROUTES, { limit: 2, leaseMs: 30_000, now: NOW });

    const outcome = await store.removeAgents(['a1'], 'target_pruned', NOW);
    expect(outcome).toMatchObject({ removed: ['a1'], released: 1, deadLettered: 1 });
    const dead = await store.deadLetters({ limit: 10 });
    expect(dead.items.map((e) => [e.reason, e.attempts, e.lastError])).toEqual([
      ['max_attempts', 1, 'lease holder a1 removed'],
    ]);
    await conserved(store);
  });
});

describe('the group commit', () => {
  it('commits enqueues and acks of one turn together and counts a double ack once', async () => {
    const store = await openStore(path.join(tempDir(), 'swarm.db'));
    await store.enqueue([entry(1), entry(2)], NOW);
    const leased = await store.claim(ROUTES, { limit: 2, leaseMs: 30_000, now: NOW });
    const id = leased[0]?.queueId as string;

    const [first, second, enqueued] = await Promise.all([
      store.ack([id], 'a1', NOW),
      store.ack([id], 'a1', NOW),
      store.enqueue([entry(3)], NOW),
    ]);
    expect(first.acked).toBe(1);
    expect(second).toEqual({ acked: 0, rejected: [{ queueId: id, why: 'not_leased (pending)' }] });
    expect(enqueued).toHaveLength(1);

    const stats = await store.stats();
    expect(stats).toMatchObject({ enqueued: 3, delivered: 1 });
    expect(await store.gauges(NOW)).toMatchObject({ queued: 1, inflight: 1 });
    await conserved(store);
  });

  it('refuses an ack by an agent that does not hold the lease', async () => {
    const store = await openStore(path.join(tempDir(), 'swarm.db'));
    await store.upsertAgent(agent('a1'));
    await store.enqueue([entry(1)], NOW);
    const [d] = await store.claim(ROUTES, { limit: 1, leaseMs: 30_000, now: NOW });

    const wrong = await store.ack([d?.queueId as string], 'a2', NOW);
    expect(wrong.rejected).toEqual([{ queueId: d?.queueId, why: 'not_lease_holder' }]);
    expect(await store.inflightOf('a1')).toBe(1);
  });
});

describe('one server per store', () => {
  const HOLDER = path.join(import.meta.dirname, 'fixtures', 'hold-store.ts');
  const children: ChildProcess[] = [];

  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
  });

  /** Another process opening the store: resolves with its first line, "held" or "refused…". */
  function holder(file: string): { child: ChildProcess; said: Promise<string> } {
    const child = spawn(process.execPath, ['--import', 'tsx', HOLDER, file], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    const said = new Promise<string>((resolve) => {
      let out = '';
      child.stdout?.on('data', (chunk) => {
        out += chunk;
        if (out.includes('\n')) resolve(out.trim());
      });
    });
    return { child, said };
  }

  it('refuses a second open in this process and in another, and frees the file on close', async () => {
    const file = path.join(tempDir(), 'swarm.db');
    const store = await openStore(file);
    expect(() => new SqliteStore(file)).toThrow(/in use by another server/);
    expect(await holder(file).said).toMatch(/^refused: .*in use by another server \(pid \d+\)/);

    await closeStore(store);
    expect(await holder(file).said).toBe('held');
  });

  it('finds the same lock through a symlink to the database', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'swarm.db');
    const store = await openStore(file);
    fs.symlinkSync(file, path.join(dir, 'alias.db'));

    expect(await holder(path.join(dir, 'alias.db')).said).toMatch(/in use by another server/);
    await closeStore(store);
  });

  it('takes the store over from a server killed with SIGKILL, and lets only one of two racers win', async () => {
    const file = path.join(tempDir(), 'swarm.db');
    const first = holder(file);
    expect(await first.said).toBe('held');
    const gone = new Promise((resolve) => first.child.once('exit', resolve));
    first.child.kill('SIGKILL');
    await gone;

    // The kernel dropped the dead server's lock: of two servers starting at once, one wins.
    const said = await Promise.all([holder(file).said, holder(file).said]);
    expect(said.filter((line) => line === 'held')).toHaveLength(1);
    expect(said.filter((line) => line.startsWith('refused:'))).toHaveLength(1);
  });
});

describe('migration 2', () => {
  it('turns a version-1 file with leases into pending entries and keeps the counts', async () => {
    const file = path.join(tempDir(), 'swarm.db');
    const db = new Database(file);
    db.exec(`CREATE TABLE schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
    const v1 = MIGRATIONS[0];
    if (v1 === undefined) throw new Error('no migration 1');
    db.exec(v1.up);
    db.prepare('INSERT INTO schema_migrations VALUES (1, ?, ?)').run(v1.name, NOW);
    const insert = db.prepare(
      `INSERT INTO entries (message_id, target, route_kind, route_key, topic, priority, state,
         enqueued_at, available_at, attempts, max_attempts, assigned_to, lease_expires_at, message)
       VALUES (?, 'type:worker', 'type', 'worker', 'jobs', 2, ?, ?, ?, ?, 3, ?, ?, ?)`,
    );
    insert.run('m-1', 'pending', NOW, NOW, 0, null, null, JSON.stringify(entry(1).message));
    insert.run(
      'm-2',
      'inflight',
      NOW,
      NOW,
      1,
      'a1',
      NOW + 30_000,
      JSON.stringify(entry(2).message),
    );
    db.exec(`UPDATE counters SET value = 2 WHERE name = 'enqueued';
      UPDATE counters SET value = 1 WHERE name IN ('queued', 'inflight');
      INSERT INTO gauge_counts VALUES ('topic', 'jobs', 1, 1, 0);`);
    db.close();

    const store = await openStore(file);
    expect(await store.gauges(NOW)).toMatchObject({ queued: 2, inflight: 0, deadLettered: 0 });
    await conserved(store);

    const claimed = await store.claim(ROUTES, { limit: 10, leaseMs: 30_000, now: NOW });
    expect(payloads(claimed)).toEqual([1, 2]);
    // The old lease's attempt was stored by version 1: this is the second.
    expect(claimed.map((d) => d.attempt)).toEqual([1, 2]);

    const [next] = await store.enqueue([entry(3)], NOW);
    expect(Number(next?.queueId)).toBe(3);
  });
});
