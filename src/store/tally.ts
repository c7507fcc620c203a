// Counter deltas gathered while a transaction runs and written once at its end, so a batch of
// a thousand entries costs a handful of counter updates instead of thousands.

import type { EntryState, Stats } from '../core/types.ts';

export type CounterName = keyof Stats | 'queued' | 'inflight' | 'dead';

/** Rate buckets of ten seconds: a five-minute window sums thirty rows. */
export const RATE_BUCKET_MS = 10_000;
/** Rate buckets older than this are deleted; no window reads further back. */
export const RATE_RETENTION_MS = 3_600_000;

/** The bucket a time falls in. */
export const rateBucket = (at: number): number => Math.floor(at / RATE_BUCKET_MS) * RATE_BUCKET_MS;

export interface RateDelta {
  attempts: number;
  failures: number;
  deadLettered: number;
  enqueued: number;
  delivered: number;
}

/** The field of an entry that its stored gauges are keyed by. */
export interface GaugeKey {
  topic: string | null;
}

const GAUGE_OF: Record<EntryState, 0 | 1 | 2> = { pending: 0, inflight: 1, dead: 2 };
const COUNTER_OF: Record<EntryState, CounterName> = {
  pending: 'queued',
  inflight: 'inflight',
  dead: 'dead',
};

/**
 * The byTopic key of messages sent without a topic. A topic is 1 to 256 characters, so the
 * empty string is the one key no real topic can take (a placeholder such as "(none)" could).
 */
export const NO_TOPIC = '';

export class Tally {
  readonly counters = new Map<CounterName, number>();
  /** dim → key → [queued, inflight, dead] deltas; nested so no key string is built per row. */
  private readonly dims = new Map<string, Map<string, number[]>>();
  readonly rate: RateDelta = {
    attempts: 0,
    failures: 0,
    deadLettered: 0,
    enqueued: 0,
    delivered: 0,
  };

  /** Changes to the live index, made only once the transaction has committed. */
  readonly afterCommit: (() => void)[] = [];

  /** The transaction's time, for the rate bucket its deltas land in. */
  constructor(readonly now: number) {}

  /** The counter deltas of several tallies, for one write of each counter. */
  static merge(tallies: Tally[]): Tally {
    const merged = new Tally(tallies[0]?.now ?? 0);
    for (const tally of tallies) {
      for (const [name, delta] of tally.counters) merged.count(name, delta);
    }
    return merged;
  }

  count(name: CounterName, by = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + by);
  }

  /**
   * An entry moves between states; null is "does not exist". `route` ("type:analyst") is
   * given by a store that keeps per-route gauges in its tables (PostgreSQL); the SQLite
   * store counts routes in its live index instead.
   */
  move(entry: GaugeKey, from: EntryState | null, to: EntryState | null, route?: string): void {
    if (from === to) return;

    if (from !== null) this.count(COUNTER_OF[from], -1);
    if (to !== null) this.count(COUNTER_OF[to], 1);

    this.gauge('topic', entry.topic ?? NO_TOPIC, from, to);
    if (route !== undefined) this.gauge('route', route, from, to);
  }

  /** Every gauge row a transaction touched, with its deltas. */
  *gauges(): Generator<[string, string, number[]]> {
    for (const [dim, keys] of this.dims) {
      for (const [key, values] of keys) yield [dim, key, values];
    }
  }

  private gauge(dim: string, key: string, from: EntryState | null, to: EntryState | null): void {
    let keys = this.dims.get(dim);
    if (keys === undefined) {
      keys = new Map();
      this.dims.set(dim, keys);
    }
    let values = keys.get(key);
    if (values === undefined) {
      values = [0, 0, 0];
      keys.set(key, values);
    }

    if (from !== null) values[GAUGE_OF[from]] = (values[GAUGE_OF[from]] ?? 0) - 1;
    if (to !== null) values[GAUGE_OF[to]] = (values[GAUGE_OF[to]] ?? 0) + 1;
  }
}
