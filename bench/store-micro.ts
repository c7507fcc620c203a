import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { NewEntry } from '../src/store/store.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mb-'));
const store = new SqliteStore(path.join(dir, 's.db'));
await store.migrate();
const now = Date.now();
await store.upsertAgent({
  id: 'a1',
  type: 't',
  status: 'active',
  capabilities: [],
  endpoint: null,
  maxInflight: 100,
  metadata: {},
  registeredAt: now,
  lastHeartbeat: now,
} as never);
const N = Number(process.argv[2] ?? 20000);
const B = 500;
function entry(i: number): NewEntry {
  const message = {
    id: `m${i}`,
    source: 'bench',
    target: 'type:t',
    type: 'EVENT',
    topic: 't',
    payload: { i, sentAt: now, pad: 'x'.repeat(40) },
    timestamp: new Date(now).toISOString(),
    priority: 'normal',
  } as never;
  return {
    message,
    messageJson: JSON.stringify(message),
    routeKind: 'type',
    routeKey: 't',
    dedupeKey: null,
    priority: 1,
    availableAt: now,
    expiresAt: null,
    maxAttempts: 5,
    requireRegistered: false,
  } as NewEntry;
}
const batches: NewEntry[][] = [];
for (let i = 0; i < N; i += B) batches.push(Array.from({ length: B }, (_, j) => entry(i + j)));
let t = performance.now();
for (const b of batches) await store.enqueue(b, now);
const te = performance.now() - t;
const routes = { agentId: 'a1', type: 't', capabilities: [] };
const L = Number(process.argv[3] ?? 250);
t = performance.now();
const claimed: string[][] = [];
for (;;) {
  const d = await store.claim(routes, { limit: L, leaseMs: 30000, now });
  if (d.length === 0) break;
  claimed.push(d.map((x) => x.queueId));
}
const tc = performance.now() - t;
t = performance.now();
for (const ids of claimed) await store.ack(ids, 'a1', now);
const ta = performance.now() - t;
const us = (ms: number) => ((ms * 1000) / N).toFixed(2);
console.log(
  `N=${N} enqueue ${us(te)} us/msg, claim(limit ${L}) ${us(tc)} us/msg, ack ${us(ta)} us/msg, total ${us(te + tc + ta)}`,
);
await store.close();
fs.rmSync(dir, { recursive: true });
{
  const dir2 = fs.mkdtempSync(path.join(os.tmpdir(), 'mb-'));
  const s2 = new SqliteStore(path.join(dir2, 's.db'));
  await s2.migrate();
  const M = 5000;
  let t2 = performance.now();
  for (let i = 0; i < M; i++) await s2.enqueue([entry(i)], now);
  const e1 = performance.now() - t2;
  t2 = performance.now();
  const ids: string[] = [];
  for (;;) {
    const d = await s2.claim(routes, { limit: 1, leaseMs: 30000, now });
    if (d.length === 0) break;
    for (const x of d) ids.push(x.queueId);
  }
  const c1 = performance.now() - t2;
  t2 = performance.now();
  for (const id of ids) await s2.ack([id], 'a1', now);
  const a1 = performance.now() - t2;
  console.log(
    `one per tx: enqueue ${((e1 * 1000) / M).toFixed(1)} us, claim ${((c1 * 1000) / M).toFixed(1)} us, ack ${((a1 * 1000) / M).toFixed(1)} us`,
  );
  await s2.close();
}
{
  const dir3 = fs.mkdtempSync(path.join(os.tmpdir(), 'mb-'));
  const s3 = new SqliteStore(path.join(dir3, 's.db'));
  await s3.migrate();
  for (const group of [1, 10]) {
    const M = 5000;
    const t3 = performance.now();
    for (let i = 0; i < M; i += group) {
      await Promise.all(Array.from({ length: group }, (_, j) => s3.enqueue([entry(i + j)], now)));
    }
    console.log(
      `grouped ${group}: ${(((performance.now() - t3) * 1000) / M).toFixed(1)} us per enqueue`,
    );
  }
  await s3.close();
}
