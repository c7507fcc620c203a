// Push delivery. A pass leases ready entries for live agents that have an endpoint, always
// serving the agent with the fewest deliveries in flight next (round robin on ties), sends
// each agent's batch as one POST, and settles it: a 2xx acknowledges the batch, anything
// else fails every entry in it, which retries with backoff or dead-letters.

import type { Logger } from 'pino';

import type { Config } from '../config.ts';
import { pickOrder } from '../core/routing.ts';
import type { Agent } from '../core/types.ts';
import type { BackoffFn, Store } from '../store/store.ts';
import type { Clock } from './clock.ts';
import type { DispatchResult } from './contract.ts';
import type { PushTransport } from './transport.ts';

/** Entries per POST: large enough to amortise the request, small enough to balance agents. */
const PUSH_BATCH = 100;
/** Send-and-settle rounds per pass; a pass that needs more yields and reruns. */
const MAX_ROUNDS = 20;

export interface DispatchStatus {
  lastRunAt: number | null;
  lastDelivered: number;
  lastFailed: number;
}

export class Dispatcher {
  /** The last agent picked per type, for the round robin among equally loaded agents. */
  readonly lastPicked = new Map<string, string>();
  private running: Promise<DispatchResult> | null = null;
  private rerun = false;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly config: Readonly<Config>,
    private readonly transport: PushTransport,
    private readonly backoff: BackoffFn,
    private readonly log: Logger,
  ) {}

  /**
   * Runs one pass of at most `limit` deliveries. Concurrent callers share the pass that is
   * already running, then one more pass runs for whatever arrived meanwhile.
   */
  async pass(limit: number): Promise<DispatchResult> {
    if (this.running !== null) {
      this.rerun = true;
      return this.running;
    }

    this.running = this.runPass(limit).finally(() => {
      this.running = null;
    });
    const result = await this.running;

    if (this.rerun) {
      this.rerun = false;
      void this.pass(limit).catch((err) => this.log.error({ err }, 'dispatch pass failed'));
    }
    return result;
  }

  /** Resolves when no pass is running. */
  async idle(): Promise<void> {
    while (this.running !== null) await this.running.catch(() => undefined);
  }

  private async runPass(limit: number): Promise<DispatchResult> {
    const started = this.clock.now();
    const result: DispatchResult = {
      delivered: 0,
      failed: 0,
      deadLettered: 0,
      pending: 0,
      durationMs: 0,
    };

    const agents = (await this.store.liveAgents(started - this.config.staleAfterMs)).filter(
      (agent) => agent.endpoint !== null,
    );
    const byId = new Map(agents.map((agent) => [agent.id, agent]));
    let budget = limit;

    // Rounds: lease for every agent with room, send, settle, and go again while that freed
    // room and found work — so an agent at maxInflight still drains its backlog in one pass.
    for (let round = 0; round < MAX_ROUNDS && budget > 0 && agents.length > 0; round++) {
      const inflight = await this.store.inflightByAgent();
      const load = new Map(agents.map((agent) => [agent.id, inflight.get(agent.id) ?? 0]));
      const candidates = new Set(agents.map((agent) => agent.id));
      const sends: Promise<void>[] = [];

      while (budget > 0 && candidates.size > 0) {
        const agent = this.nextAgent(candidates, load, byId);
        if (agent === undefined) break;

        const room = agent.maxInflight - (load.get(agent.id) ?? 0);
        if (room <= 0) {
          candidates.delete(agent.id);
          continue;
        }

        const deliveries = await this.store.claim(
          { agentId: agent.id, type: agent.type, capabilities: agent.capabilities },
          {
            limit: Math.min(room, budget, PUSH_BATCH),
            leaseMs: this.config.pushTimeoutMs * 2,
            now: this.clock.now(),
          },
        );
        if (deliveries.length === 0) {
          candidates.delete(agent.id);
          continue;
        }

        budget -= deliveries.length;
        load.set(agent.id, (load.get(agent.id) ?? 0) + deliveries.length);
        this.lastPicked.set(agent.type, agent.id);
        sends.push(this.send(agent, deliveries, result));
      }

      if (sends.length === 0) break;
      await Promise.all(sends);
    }

    const finished = this.clock.now();
    result.pending = (await this.store.gauges(finished)).queued;
    result.durationMs = finished - started;
    await this.store.setMeta(
      'dispatch',
      JSON.stringify({
        lastRunAt: finished,
        lastDelivered: result.delivered,
        lastFailed: result.failed,
      } satisfies DispatchStatus),
    );

    // A full pass means more may be waiting: go again rather than wait for the next tick.
    if (budget === 0) this.rerun = true;
    return result;
  }

  private nextAgent(
    candidates: Set<string>,
    load: Map<string, number>,
    byId: Map<string, Agent>,
  ): Agent | undefined {
    const pool = [...candidates].map((id) => ({ id, inflight: load.get(id) ?? 0 }));
    const first = pickOrder(pool, undefined)[0];
    if (first === undefined) return undefined;

    // Round robin among the least loaded agents of the chosen agent's type.
    const type = (byId.get(first.id) as Agent).type;
    const sameType = pool.filter((c) => (byId.get(c.id) as Agent).type === type);
    const chosen = pickOrder(sameType, this.lastPicked.get(type))[0] ?? first;
    return byId.get(chosen.id);
  }

  private async send(
    agent: Agent,
    deliveries: Awaited<ReturnType<Store['claim']>>,
    result: DispatchResult,
  ): Promise<void> {
    const queueIds = deliveries.map((d) => d.queueId);
    const outcome = await this.transport.push(
      agent.endpoint as string,
      deliveries,
      this.config.pushTimeoutMs,
    );

    if (outcome.ok) {
      const acked = await this.store.ack(queueIds, agent.id, this.clock.now());
      result.delivered += acked.acked;
      return;
    }

    this.log.warn(
      { agentId: agent.id, count: deliveries.length, error: outcome.error },
      'push delivery failed',
    );
    const failed = await this.store.fail(
      queueIds,
      {
        error: outcome.error ?? 'push failed',
        retry: true,
        agentId: agent.id,
        now: this.clock.now(),
      },
      this.backoff,
    );
    result.failed += failed.retried + failed.deadLettered;
    result.deadLettered += failed.deadLettered;
  }
}
