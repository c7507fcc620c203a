// The stored text of entries enqueued since start and not yet claimed, up to a budget. A claim
// of such an entry reads no row: a message's text never changes once written, and an entry
// that was never claimed has made no attempt, so its row can only say attempts = 0. Reading
// rows back by primary key was ~3 µs of server CPU per message under single enqueues, for
// text the server had in hand a few milliseconds before.
//
// Whatever is not here (evicted, enqueued before a restart, claimed before) is read from the
// file as usual. An id leaves when it is claimed; one that leaves the queue unclaimed (expired,
// dead-lettered) is harmless until it ages out, since queue ids are never reused and its text
// is still its text.

/**
 * Characters of message text kept: ~1 MB, some 3,000 ordinary messages, far more than a
 * healthy queue holds between enqueue and claim. Kept small on purpose: every text held here
 * outlives a young-generation GC and is then collected as old garbage, which in the batch
 * benchmark showed as resident memory (8 Mi characters cost ~10 MB of peak RSS).
 */
export const FRESH_BUDGET = 1024 * 1024;

// A message this large is rare and would push out hundreds of ordinary ones.
const LARGEST_SHARE = 64;

export class FreshMessages {
  private readonly texts = new Map<number, string>();
  private size = 0;

  constructor(private readonly budget = FRESH_BUDGET) {}

  /** Just committed, never claimed. */
  add(id: number, text: string): void {
    if (text.length > this.budget / LARGEST_SHARE) return;
    this.texts.set(id, text);
    this.size += text.length;

    // Oldest first: a Map iterates in insertion order, and ids are added in commit order.
    while (this.size > this.budget) {
      const oldest = this.texts.keys().next();
      if (oldest.done === true) break;
      this.take(oldest.value);
    }
  }

  /** The text of `id` if it is here, and it is here no longer: a claim comes once. */
  take(id: number): string | undefined {
    const text = this.texts.get(id);
    if (text === undefined) return undefined;

    this.texts.delete(id);
    this.size -= text.length;
    return text;
  }

  /** Characters held: for tests. */
  get held(): number {
    return this.size;
  }

  get count(): number {
    return this.texts.size;
  }
}
