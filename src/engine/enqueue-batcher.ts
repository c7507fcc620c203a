// Group commit for enqueues. Requests that arrive in the same turn of the event loop share
// one store transaction: at 16 concurrent senders that turns ~16 commits into one, and a
// commit, not the insert, is what a write costs.

import type { EnqueueOutcome, NewEntry } from '../store/store.ts';

interface Pending {
  entries: NewEntry[];
  resolve: (outcomes: EnqueueOutcome[]) => void;
  reject: (err: unknown) => void;
}

/** Above this many entries a group commits at once rather than waiting for the turn to end. */
const MAX_GROUP_ENTRIES = 5000;

export class EnqueueBatcher {
  private queue: Pending[] = [];
  private queued = 0;
  private scheduled = false;
  private inflight: Promise<void> = Promise.resolve();

  constructor(private readonly write: (entries: NewEntry[]) => Promise<EnqueueOutcome[]>) {}

  enqueue(entries: NewEntry[]): Promise<EnqueueOutcome[]> {
    if (entries.length === 0) return Promise.resolve([]);

    return new Promise((resolve, reject) => {
      this.queue.push({ entries, resolve, reject });
      this.queued += entries.length;

      if (this.queued >= MAX_GROUP_ENTRIES) {
        this.flush();
      } else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Resolves when every group handed in so far has committed. */
  async idle(): Promise<void> {
    this.flush();
    await this.inflight;
  }

  private flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;

    const group = this.queue;
    this.queue = [];
    this.queued = 0;

    const all = group.flatMap((p) => p.entries);
    this.inflight = this.write(all).then(
      (outcomes) => {
        let offset = 0;
        for (const pending of group) {
          pending.resolve(outcomes.slice(offset, offset + pending.entries.length));
          offset += pending.entries.length;
        }
      },
      // One transaction: if it fails, nothing of the group was written, and all are told.
      (err) => {
        for (const pending of group) pending.reject(err);
      },
    );
  }
}
