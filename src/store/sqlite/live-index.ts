// The live queue in memory: which pending entries are ready, in claim order per route; which
// are delayed until when; which are leased, to whom and until when; which carry a TTL.
//
// Why it exists: with these orders kept as SQLite indexes, every message paid for B-tree
// updates at enqueue, again at claim (the row rewritten from pending to inflight) and again at
// ack — about 45 µs of the server's ~80 µs per message, measured with bench/store-micro.ts.
// The file keeps what must survive a crash (every accepted message, its attempts, dead
// letters, counters); this index is rebuilt from it at start. A lease lives only here, so a
// claim writes nothing: if the process dies, its leased messages are pending again when it
// comes back, exactly as if their leases had expired (at-least-once, as before), minus the one
// attempt that was in flight.
//
// It needs the file to itself: SqliteStore takes a lock file so a second server cannot open
// the same store and build a second, diverging index.

/** ready: in its route's lane. delayed: in the delay heap. inflight: leased. gone: removed. */
export type LiveState = 'ready' | 'delayed' | 'inflight' | 'gone';

export interface LiveEntry {
  readonly id: number;
  readonly route: Route;
  readonly priority: number;
  readonly topic: string | null;
  readonly expiresAt: number | null;
  /** When it is (or was) ready; claim order within a priority is (availableAt, id). */
  availableAt: number;
  state: LiveState;
  /** Attempts including the current lease; the file holds the attempts that ended. */
  attempt: number;
  holder: string | null;
  leaseUntil: number;
}

export interface NewLiveEntry {
  id: number;
  routeKind: string;
  routeKey: string;
  priority: number;
  topic: string | null;
  availableAt: number;
  expiresAt: number | null;
}

const PRIORITIES = 4;

/** One priority of one route: ready entries sorted by (availableAt, id), read from the head. */
class Lane {
  private items: LiveEntry[] = [];
  private head = 0;

  /** New entries are almost always the latest: the scan from the tail stops at once. */
  insert(entry: LiveEntry): void {
    const items = this.items;
    let i = items.length;
    while (i > this.head) {
      const prev = items[i - 1] as LiveEntry;
      if (prev.availableAt < entry.availableAt) break;
      if (prev.availableAt === entry.availableAt && prev.id < entry.id) break;
      i -= 1;
    }
    if (i === items.length) items.push(entry);
    else items.splice(i, 0, entry);
  }

  /** The first ready entry; entries removed while waiting here are dropped on the way. */
  peek(): LiveEntry | undefined {
    const items = this.items;
    while (this.head < items.length) {
      const entry = items[this.head] as LiveEntry;
      if (entry.state === 'ready') return entry;
      this.head += 1;
    }
    this.reset();
    return undefined;
  }

  shift(): void {
    this.head += 1;
    // Drop the consumed prefix once it is most of the array: amortised O(1) per entry.
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    } else if (this.head === this.items.length) {
      this.reset();
    }
  }

  /** Ready entries still waiting here, for walks that must find them all (rare). */
  *ready(): Generator<LiveEntry> {
    for (let i = this.head; i < this.items.length; i += 1) {
      const entry = this.items[i] as LiveEntry;
      if (entry.state === 'ready') yield entry;
    }
  }

  private reset(): void {
    this.items = [];
    this.head = 0;
  }
}

export class Route {
  readonly lanes: Lane[] = Array.from({ length: PRIORITIES }, () => new Lane());
  ready = 0;
  delayed = 0;
  inflight = 0;

  constructor(
    readonly key: string,
    readonly kind: string,
    readonly target: string,
  ) {}

  /**
   * The route's next entry in claim order, without taking it. A lane whose head is not yet
   * available is passed over: entries loaded at start are placed against the wall clock,
   * which may run ahead of the engine's.
   */
  next(now: number): { entry: LiveEntry; lane: Lane } | undefined {
    if (this.ready === 0) return undefined;
    for (const lane of this.lanes) {
      const entry = lane.peek();
      if (entry !== undefined && entry.availableAt <= now) return { entry, lane };
    }
    return undefined;
  }
}

/** A binary min-heap; stale items are skipped by the caller, never searched for. */
class Heap<T> {
  private readonly items: T[] = [];

  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(items[i] as T, items[parent] as T)) break;
      [items[i], items[parent]] = [items[parent] as T, items[i] as T];
      i = parent;
    }
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;

    items[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < items.length && this.less(items[l] as T, items[m] as T)) m = l;
      if (r < items.length && this.less(items[r] as T, items[m] as T)) m = r;
      if (m === i) break;
      [items[i], items[m]] = [items[m] as T, items[i] as T];
      i = m;
    }
    return top;
  }

  values(): readonly T[] {
    return this.items;
  }
}

/**
 * Entries by deadline, in buckets of `grain` ms. Unlike a heap, an entry leaves at once when
 * it is acknowledged: a heap kept every acknowledged lease (and its entry) until the lease
 * would have run out, which at 20,000 msg/s with 30 s leases was tens of MB of garbage held.
 */
class Deadlines {
  private readonly buckets = new Map<number, Set<LiveEntry>>();
  private readonly slot = new Map<LiveEntry, number>();

  constructor(private readonly grain: number) {}

  add(entry: LiveEntry, at: number): void {
    this.delete(entry);
    const bucket = Math.floor(at / this.grain);
    let set = this.buckets.get(bucket);
    if (set === undefined) {
      set = new Set();
      this.buckets.set(bucket, set);
    }
    set.add(entry);
    this.slot.set(entry, bucket);
  }

  delete(entry: LiveEntry): void {
    const bucket = this.slot.get(entry);
    if (bucket === undefined) return;
    this.slot.delete(entry);
    const set = this.buckets.get(bucket);
    set?.delete(entry);
    if (set?.size === 0) this.buckets.delete(bucket);
  }

  /** Entries whose deadline (per `deadlineOf`) is at or before `now`, earliest first. */
  due(now: number, limit: number, deadlineOf: (entry: LiveEntry) => number): LiveEntry[] {
    const last = Math.floor(now / this.grain);
    const keys = [...this.buckets.keys()].filter((key) => key <= last).sort((a, b) => a - b);
    const out: LiveEntry[] = [];
    for (const key of keys) {
      const ripe = [...(this.buckets.get(key) ?? [])]
        .filter((entry) => deadlineOf(entry) <= now)
        .sort((a, b) => deadlineOf(a) - deadlineOf(b) || a.id - b.id);
      for (const entry of ripe) {
        if (out.length >= limit) return out;
        out.push(entry);
      }
    }
    return out;
  }
}

const NO_TOPIC_KEY = '\u0000';

export class LiveIndex {
  private readonly routes = new Map<string, Route>();
  private readonly delays = new Heap<LiveEntry>(
    (a, b) => a.availableAt < b.availableAt || (a.availableAt === b.availableAt && a.id < b.id),
  );
  private readonly expiries = new Deadlines(1_000);
  private readonly leaseEnds = new Deadlines(100);
  private readonly leases = new Map<number, LiveEntry>();
  private readonly holders = new Map<string, Set<LiveEntry>>();
  private readonly topicInflight = new Map<string, number>();
  /** Routes whose delayed entries became ready since the last drainRipened(). */
  private ripened = new Map<string, number>();

  private lastRoute: Route | null = null;
  private delayedTotal = 0;
  private inflightTotal = 0;

  route(kind: string, target: string): Route {
    // A batch goes to one route: skip building its key for every entry.
    const last = this.lastRoute;
    if (last !== null && last.target === target && last.kind === kind) return last;

    const key = `${kind}:${target}`;
    let route = this.routes.get(key);
    if (route === undefined) {
      route = new Route(key, kind, target);
      this.routes.set(key, route);
    }
    this.lastRoute = route;
    return route;
  }

  existingRoute(key: string): Route | undefined {
    return this.routes.get(key);
  }

  /** A pending entry: ready now, or delayed until its availableAt. */
  add(fields: NewLiveEntry, now: number, attempt = 0): LiveEntry {
    const entry: LiveEntry = {
      id: fields.id,
      route: this.route(fields.routeKind, fields.routeKey),
      priority: Math.min(PRIORITIES - 1, Math.max(0, fields.priority)),
      topic: fields.topic,
      expiresAt: fields.expiresAt,
      availableAt: fields.availableAt,
      state: 'gone',
      attempt,
      holder: null,
      leaseUntil: 0,
    };
    if (entry.expiresAt !== null) this.expiries.add(entry, entry.expiresAt);
    this.makePending(entry, now);
    return entry;
  }

  private makePending(entry: LiveEntry, now: number): void {
    if (entry.availableAt > now) {
      entry.state = 'delayed';
      entry.route.delayed += 1;
      this.delayedTotal += 1;
      this.delays.push(entry);
      return;
    }
    entry.state = 'ready';
    entry.route.ready += 1;
    entry.route.lanes[entry.priority]?.insert(entry);
  }

  /** Moves delayed entries whose time has come into their lanes. */
  promote(now: number): void {
    for (;;) {
      const top = this.delays.peek();
      if (top === undefined || top.availableAt > now) return;
      this.delays.pop();
      if (top.state !== 'delayed') continue;

      top.route.delayed -= 1;
      this.delayedTotal -= 1;
      top.state = 'ready';
      top.route.ready += 1;
      top.route.lanes[top.priority]?.insert(top);
      this.ripened.set(top.route.key, (this.ripened.get(top.route.key) ?? 0) + 1);
    }
  }

  /** Routes that gained ready entries from delays since the last call, with how many. */
  drainRipened(now: number): Map<string, number> {
    this.promote(now);
    const ripened = this.ripened;
    this.ripened = new Map();
    return ripened;
  }

  /**
   * Takes up to `limit` ready entries from `routeKeys` in claim order (priority, availableAt,
   * id) and leaves them in no lane: the caller leases them with lease() or returns them with
   * putBack(). Entries past their TTL are passed over; the expiry sweep dead-letters them.
   */
  take(routeKeys: string[], limit: number, now: number): LiveEntry[] {
    this.promote(now);

    const routes: Route[] = [];
    for (const key of routeKeys) {
      const route = this.routes.get(key);
      if (route !== undefined && route.ready > 0) routes.push(route);
    }
    if (routes.length === 0) return [];

    const taken: LiveEntry[] = [];
    while (taken.length < limit) {
      let best: { entry: LiveEntry; lane: Lane } | undefined;
      for (const route of routes) {
        const next = route.next(now);
        if (next === undefined) continue;
        if (best === undefined || before(next.entry, best.entry)) best = next;
      }
      if (best === undefined) break;

      best.lane.shift();
      if (best.entry.expiresAt !== null && best.entry.expiresAt <= now) {
        // Still counted as ready (and still among the TTL deadlines) until the sweep takes it.
        continue;
      }
      best.entry.route.ready -= 1;
      best.entry.state = 'gone';
      taken.push(best.entry);
    }
    return taken;
  }

  /** Taken entries that could not be leased go back where they were. */
  putBack(entries: LiveEntry[], now: number): void {
    for (const entry of entries) this.makePending(entry, now);
  }

  lease(entry: LiveEntry, holder: string, until: number, attempt: number): void {
    entry.state = 'inflight';
    entry.holder = holder;
    entry.leaseUntil = until;
    entry.attempt = attempt;
    entry.route.inflight += 1;
    this.inflightTotal += 1;
    this.leases.set(entry.id, entry);
    this.leaseEnds.add(entry, until);

    let held = this.holders.get(holder);
    if (held === undefined) {
      held = new Set();
      this.holders.set(holder, held);
    }
    held.add(entry);

    const topic = entry.topic ?? NO_TOPIC_KEY;
    this.topicInflight.set(topic, (this.topicInflight.get(topic) ?? 0) + 1);
  }

  leased(id: number): LiveEntry | undefined {
    return this.leases.get(id);
  }

  /**
   * An ack is decided: the lease ends now, so no sweep or second ack acts on the entry while
   * its row waits for the commit. Its TTL deadline stays (expired() passes it over) until
   * remove() after the commit, or lease() puts it back if the commit fails.
   */
  unlease(entry: LiveEntry): void {
    this.endLease(entry);
  }

  /** A lease ends without an ack: the entry is pending again from `availableAt`. */
  release(entry: LiveEntry, availableAt: number, now: number): void {
    this.endLease(entry);
    entry.availableAt = availableAt;
    this.makePending(entry, now);
  }

  /** Acknowledged, dead-lettered or expired: the entry leaves the live queue. */
  remove(entry: LiveEntry): void {
    switch (entry.state) {
      case 'inflight':
        this.endLease(entry);
        break;
      case 'ready':
        entry.route.ready -= 1;
        break;
      case 'delayed':
        entry.route.delayed -= 1;
        this.delayedTotal -= 1;
        break;
      case 'gone':
        break;
    }
    // Left in its lane or the delay heap, skipped there when reached.
    entry.state = 'gone';
    if (entry.expiresAt !== null) this.expiries.delete(entry);
  }

  private endLease(entry: LiveEntry): void {
    this.leases.delete(entry.id);
    this.leaseEnds.delete(entry);
    entry.route.inflight -= 1;
    this.inflightTotal -= 1;

    if (entry.holder !== null) {
      const held = this.holders.get(entry.holder);
      held?.delete(entry);
      if (held?.size === 0) this.holders.delete(entry.holder);
    }
    entry.holder = null;

    const topic = entry.topic ?? NO_TOPIC_KEY;
    const n = (this.topicInflight.get(topic) ?? 1) - 1;
    if (n === 0) this.topicInflight.delete(topic);
    else this.topicInflight.set(topic, n);
    entry.state = 'gone';
  }

  /** Leases past their expiry, oldest first, still leased (the caller ends them). */
  expiredLeases(now: number, limit: number): LiveEntry[] {
    return this.leaseEnds.due(now, limit, (entry) => entry.leaseUntil);
  }

  /** Live entries past their TTL, earliest first, still in place (the caller removes them). */
  expired(now: number, limit: number): LiveEntry[] {
    return this.expiries
      .due(now, limit, (entry) => entry.expiresAt as number)
      .filter((entry) => entry.state !== 'gone');
  }

  /** Everything leased to `holder`. */
  heldBy(holder: string): LiveEntry[] {
    return [...(this.holders.get(holder) ?? [])];
  }

  /** Pending (ready or delayed) entries of one route, up to `limit`. */
  pendingOf(routeKey: string, limit: number): LiveEntry[] {
    const route = this.routes.get(routeKey);
    if (route === undefined || route.ready + route.delayed === 0) return [];

    const out: LiveEntry[] = [];
    for (const lane of route.lanes) {
      for (const entry of lane.ready()) {
        if (out.length >= limit) return out;
        out.push(entry);
      }
    }
    if (route.delayed > 0) {
      for (const entry of this.delays.values()) {
        if (out.length >= limit) return out;
        if (entry.route === route && entry.state === 'delayed') out.push(entry);
      }
    }
    return out;
  }

  get inflight(): number {
    return this.inflightTotal;
  }

  get delayed(): number {
    return this.delayedTotal;
  }

  inflightOf(holder: string): number {
    return this.holders.get(holder)?.size ?? 0;
  }

  inflightByHolder(): Map<string, number> {
    return new Map([...this.holders].map(([holder, held]) => [holder, held.size]));
  }

  /** In-flight count of a topic (null: messages without one). */
  inflightOfTopic(topic: string | null): number {
    return this.topicInflight.get(topic ?? NO_TOPIC_KEY) ?? 0;
  }

  /** The earliest availableAt among ready entries: how long the oldest has waited. */
  oldestReadyAt(now: number): number | null {
    this.promote(now);
    let oldest: number | null = null;
    for (const route of this.routes.values()) {
      const next = route.next(Number.POSITIVE_INFINITY);
      if (next !== undefined && (oldest === null || next.entry.availableAt < oldest)) {
        oldest = next.entry.availableAt;
      }
    }
    return oldest;
  }

  /** Routes holding pending or leased entries. Routes left empty are forgotten here. */
  routeCounts(): { route: Route; pending: number; inflight: number }[] {
    const out: { route: Route; pending: number; inflight: number }[] = [];
    for (const [key, route] of this.routes) {
      const pending = route.ready + route.delayed;
      if (pending === 0 && route.inflight === 0) {
        // Lanes may still hold removed entries; an empty route has nothing live in them.
        this.routes.delete(key);
        if (this.lastRoute === route) this.lastRoute = null;
        continue;
      }
      out.push({ route, pending, inflight: route.inflight });
    }
    return out;
  }
}

function before(a: LiveEntry, b: LiveEntry): boolean {
  if (a.priority !== b.priority) return a.priority < b.priority;
  if (a.availableAt !== b.availableAt) return a.availableAt < b.availableAt;
  return a.id < b.id;
}
