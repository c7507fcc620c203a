// The ledger of one run: which messages were sent, which were acknowledged, and how long each
// took from its enqueue timestamp to its ack. Delivery is at least once, so a message acked
// twice is counted once for throughput and latency, and once more as a redelivery.

import { LatencyHistogram } from './histogram.ts';

/** What every benchmark message carries, so latency needs no lookup table. */
export interface BenchPayload {
  /** Which run sent it; a stray from another run is acked but not counted. */
  run: string;
  seq: number;
  /** Enqueue time (epoch ms, fractional); the scheduled send time under --rate. */
  sentAt: number;
  /** A small fixed body, the shape of the original benchmark's signal message. */
  signal: { symbol: string; sentiment: number; volume: number };
}

export class DeliveryTracker {
  readonly run: string;
  readonly endToEnd = new LatencyHistogram();

  /** Messages the run expects to see acked: those sent minus those whose enqueue failed. */
  expected: number;
  acked = 0;
  redelivered = 0;
  stray = 0;
  ackRejected = 0;
  firstSendAt = 0;
  lastAckAt = 0;
  finished = false;
  timedOut = false;

  private readonly seen: Uint8Array;
  private resolveDone!: () => void;
  readonly done: Promise<void>;

  constructor(run: string, messages: number) {
    this.run = run;
    this.expected = messages;
    this.seen = new Uint8Array(messages);
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  /** One acknowledged delivery, at `ackAt` (epoch ms). */
  acknowledged(payload: unknown, ackAt: number): void {
    const p = payload as Partial<BenchPayload> | null;
    if (!p || p.run !== this.run || typeof p.seq !== 'number' || typeof p.sentAt !== 'number') {
      this.stray += 1;
      return;
    }

    if (this.seen[p.seq] === 1) {
      this.redelivered += 1;
      return;
    }

    this.seen[p.seq] = 1;
    this.acked += 1;
    this.endToEnd.recordMs(ackAt - p.sentAt);
    if (ackAt > this.lastAckAt) this.lastAckAt = ackAt;

    if (this.acked >= this.expected) this.finish(false);
  }

  /** Messages that will never arrive because their enqueue failed. */
  abandoned(count: number): void {
    this.expected -= count;
    if (this.acked >= this.expected) this.finish(false);
  }

  finish(timedOut: boolean): void {
    if (this.finished) return;

    this.finished = true;
    this.timedOut = timedOut;
    this.resolveDone();
  }
}
