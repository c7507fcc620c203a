// The pull side of an agent: long-poll for leased entries, run the handler on each, ack the
// successes (batched: every ack that completes in the same tick shares one request) and nack
// each failure with its error text.

import type { SwarmClient } from '../client/index.ts';
import { isSwarmClientError } from '../client/index.ts';
import type { Delivery } from '../core/types.ts';
import { type AgentLogger, failureOf, type MessageHandler } from './types.ts';

export interface ConsumeOptions {
  /** Most entries leased per poll (1..1000). Default 20. */
  limit?: number;
  /** How long the server holds a poll open when nothing is ready (0..30000). Default 20000. */
  waitMs?: number;
  /** How long each lease lasts (1000..600000). Default 30000. */
  leaseMs?: number;
  /** Most handlers running at once; a poll never leases more than the free slots. Default 10. */
  concurrency?: number;
  /** Stops this loop alone (running handlers finish, acks are sent); the agent stays registered. */
  signal?: AbortSignal;
  /** Called with the queueIds the server confirmed as acknowledged. */
  onAcked?: (queueIds: string[]) => void;
  /** Called after a failed attempt was reported (retried or dead-lettered by the server). */
  onFailed?: (queueId: string, error: string, retry: boolean) => void;
}

export interface ConsumerStats {
  polls: number;
  received: number;
  acked: number;
  failed: number;
  ackRejected: number;
}

export interface ConsumerHost {
  client: SwarmClient;
  agentId(): string;
  /** Registers again (and re-subscribes) after the server forgot the agent. */
  reRegister(): Promise<void>;
  log: AgentLogger;
}

const ERROR_BACKOFF_MIN_MS = 250;
// Capped at 2 s: a coordinator restart should cost an agent at most that much extra idle time.
const ERROR_BACKOFF_MAX_MS = 2000;

export class PullConsumer {
  readonly stats: ConsumerStats = { polls: 0, received: 0, acked: 0, failed: 0, ackRejected: 0 };

  private readonly limit: number;
  private readonly waitMs: number;
  private readonly leaseMs: number;
  private readonly concurrency: number;

  private running = false;
  private readonly abort = new AbortController();
  private readonly active = new Set<Promise<void>>();
  private slotFreed: (() => void) | null = null;
  private pendingAcks: string[] = [];
  private ackFlush: Promise<void> | null = null;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly host: ConsumerHost,
    private readonly handler: MessageHandler,
    private readonly options: ConsumeOptions = {},
  ) {
    this.limit = options.limit ?? 20;
    this.waitMs = options.waitMs ?? 20_000;
    this.leaseMs = options.leaseMs ?? 30_000;
    this.concurrency = Math.max(1, options.concurrency ?? 10);
  }

  /** Starts the loop; the promise settles once stop() has drained it. */
  start(): Promise<void> {
    if (this.loop) return this.loop;
    if (this.abort.signal.aborted) return Promise.resolve();

    this.running = true;
    this.loop = this.run();
    return this.loop;
  }

  /** Stops polling, lets running handlers finish, and sends their acks. */
  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    this.slotFreed?.();

    await this.loop;
    await Promise.allSettled(this.active);
    await this.flushAcks();
  }

  private async run(): Promise<void> {
    let failures = 0;

    while (this.running) {
      await this.waitForSlot();
      if (!this.running) break;

      let deliveries: Delivery[];
      try {
        this.stats.polls++;
        deliveries = await this.host.client.poll(
          this.host.agentId(),
          {
            limit: Math.min(this.limit, this.concurrency - this.active.size),
            waitMs: this.waitMs,
            leaseMs: this.leaseMs,
          },
          { signal: this.abort.signal },
        );
        failures = 0;
      } catch (err) {
        if (!this.running) break;
        failures++;
        await this.recover(err, failures);
        continue;
      }

      this.stats.received += deliveries.length;
      for (const delivery of deliveries) this.track(this.handle(delivery));
    }
  }

  /** After a failed poll: re-register when the server forgot us, else back off and retry. */
  private async recover(err: unknown, failures: number): Promise<void> {
    if (isSwarmClientError(err) && err.code === 'not_found') {
      this.host.log('warn', 'agent unknown to the server on poll; registering again', {
        agentId: this.host.agentId(),
      });
      try {
        await this.host.reRegister();
        return;
      } catch (regErr) {
        err = regErr;
      }
    }

    const delay = Math.min(ERROR_BACKOFF_MAX_MS, ERROR_BACKOFF_MIN_MS * 2 ** (failures - 1));
    this.host.log('warn', 'poll failed; retrying', {
      agentId: this.host.agentId(),
      error: (err as Error)?.message ?? String(err),
      retryInMs: delay,
    });
    await sleep(delay, this.abort.signal);
  }

  private track(task: Promise<void>): void {
    this.active.add(task);
    void task.finally(() => {
      this.active.delete(task);
      const wake = this.slotFreed;
      this.slotFreed = null;
      wake?.();
    });
  }

  private waitForSlot(): Promise<void> {
    if (this.active.size < this.concurrency) return Promise.resolve();
    return new Promise((resolve) => {
      this.slotFreed = resolve;
    });
  }

  private async handle(delivery: Delivery): Promise<void> {
    try {
      await this.handler(delivery.message, {
        queueId: delivery.queueId,
        attempt: delivery.attempt,
        leaseExpiresAt: delivery.leaseExpiresAt,
        mode: 'pull',
        agentId: this.host.agentId(),
      });
    } catch (err) {
      await this.fail(delivery.queueId, err);
      return;
    }

    this.queueAck(delivery.queueId);
  }

  private async fail(queueId: string, err: unknown): Promise<void> {
    const { error, retry, delayMs } = failureOf(err);
    this.stats.failed++;

    try {
      await this.host.client.nack({
        queueIds: [queueId],
        error,
        retry,
        delayMs,
        agentId: this.host.agentId(),
      });
      this.options.onFailed?.(queueId, error, retry);
    } catch (nackErr) {
      // The lease runs out on its own and counts as the attempt, so nothing is lost here.
      this.host.log('warn', 'nack failed; the lease will expire instead', {
        queueId,
        error: (nackErr as Error).message,
      });
    }
  }

  private queueAck(queueId: string): void {
    this.pendingAcks.push(queueId);
    if (!this.ackFlush) this.ackFlush = this.scheduleFlush();
  }

  private async scheduleFlush(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));

    while (this.pendingAcks.length > 0) {
      const batch = this.pendingAcks.splice(0, 1000);
      await this.sendAcks(batch);
    }

    this.ackFlush = null;
  }

  private async flushAcks(): Promise<void> {
    if (this.ackFlush) await this.ackFlush;
    if (this.pendingAcks.length > 0) {
      this.ackFlush = this.scheduleFlush();
      await this.ackFlush;
    }
  }

  private async sendAcks(queueIds: string[]): Promise<void> {
    try {
      const result = await this.host.client.ack(queueIds, { agentId: this.host.agentId() });
      const rejected = new Set(result.rejected.map((r) => r.queueId));
      const acked = rejected.size === 0 ? queueIds : queueIds.filter((id) => !rejected.has(id));

      this.stats.acked += acked.length;
      this.stats.ackRejected += rejected.size;
      if (rejected.size > 0) {
        // Usually a lease that ran out while the handler worked: the entry is delivered again.
        this.host.log('warn', 'acks rejected', { rejected: result.rejected.slice(0, 10) });
      }
      if (acked.length > 0) this.options.onAcked?.(acked);
    } catch (err) {
      this.host.log('warn', 'ack failed; the leases will expire and the entries come back', {
        count: queueIds.length,
        error: (err as Error).message,
      });
    }
  }
}

/** Resolves after `ms`, or at once when the signal fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();

  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
