// The swarm itself: every operation of the contract, and the background loops that keep the
// queue moving (push dispatch, lease and TTL sweeps, auto-prune). It owns the clock and the
// long-poll wake-ups; it never builds SQL and never touches HTTP objects.

import { randomUUID } from 'node:crypto';

import type { Logger } from 'pino';

import type { Config } from '../config.ts';
import { backoffDelay } from '../core/backoff.ts';
import { invalidRequest, isSwarmError, notFound, SwarmError } from '../core/errors.ts';
import { type ParsedTarget, parseTarget } from '../core/targets.ts';
import type {
  Agent,
  AgentView,
  DeadLetterReason,
  Delivery,
  Message,
  QueueEntry,
} from '../core/types.ts';
import type {
  AgentRoutes,
  BackoffFn,
  EnqueueOutcome,
  NewEntry,
  Store,
  StoreFileSizes,
} from '../store/store.ts';
import { type Clock, systemClock } from './clock.ts';
import type {
  AckResult,
  Actor,
  AgentDetail,
  AgentQuery,
  AuditRecord,
  CancelSignal,
  DeadLetterQuery,
  DispatchResult,
  EnqueueInput,
  EnqueueResult,
  HeartbeatInput,
  Liveness,
  NackInput,
  NackResult,
  Page,
  PollInput,
  PruneInput,
  PruneResult,
  PublishInput,
  PublishResult,
  PurgeInput,
  PurgeResult,
  QueueSummary,
  RegisterAgentInput,
  RegisterAgentResult,
  RequeueInput,
  RequeueResult,
  RoutingForType,
  RoutingOverview,
  SwarmApi,
  SwarmHealth,
  SwarmMetrics,
} from './contract.ts';
import { decodeCursor, encodeCursor } from './cursor.ts';
import { Dispatcher } from './dispatcher.ts';
import { buildCopies, buildEntry, normalizeMessage } from './messages.ts';
import { Observer, queueGauges } from './observe.ts';
import { createHttpTransport, type PushTransport } from './transport.ts';
import { type RouteKey, routeKey, Waiters } from './waiters.ts';

export const VERSION = '0.1.0';

/** Enqueue rate above which a woken long-poll lingers to collect a batch. */
const LINGER_ABOVE_PER_SEC = 2000;
const LINGER_MS = 1;

/** The dispatcher's own passes take this many deliveries at most before yielding. */
const BACKGROUND_DISPATCH_LIMIT = 1000;
const SWEEP_BATCH = 1000;

export interface EngineOptions {
  store: Store;
  config: Readonly<Config>;
  log: Logger;
  clock?: Clock;
  transport?: PushTransport;
  /** Background loops; tests drive passes by hand with `false`. */
  loops?: boolean;
}

export class SwarmEngine implements SwarmApi {
  readonly store: Store;
  readonly config: Readonly<Config>;
  readonly clock: Clock;
  private readonly log: Logger;
  private readonly transport: PushTransport;
  private readonly startedAt: number;
  private readonly waiters = new Waiters();
  private readonly dispatcher: Dispatcher;
  private readonly observer: Observer;
  private readonly backoff: BackoffFn;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly loops: boolean;
  private stopped = false;
  private sweeping = false;
  private lastSweepAt: number;
  /** Routes with a live push agent: an enqueue to one of them starts a dispatch pass at once. */
  private pushRoutes = new Set<RouteKey>();
  private readonly enqueueRate = new RateMeter();

  constructor(options: EngineOptions) {
    this.store = options.store;
    this.config = options.config;
    this.log = options.log;
    this.clock = options.clock ?? systemClock;
    this.transport = options.transport ?? createHttpTransport();
    this.loops = options.loops ?? true;
    this.startedAt = this.clock.now();
    this.lastSweepAt = this.startedAt;

    this.backoff = (attempt) =>
      backoffDelay(attempt, this.config.backoffBaseMs, this.config.backoffCapMs);
    this.dispatcher = new Dispatcher(
      this.store,
      this.clock,
      this.config,
      this.transport,
      this.backoff,
      this.log,
    );
    this.observer = new Observer(
      this.store,
      this.clock,
      this.config,
      this.startedAt,
      this.dispatcher.lastPicked,
    );
  }

  /** Starts the background loops. */
  async start(): Promise<void> {
    await this.refreshPushRoutes();
    // Another coordinator on the same database enqueued or requeued: wake our polls for it
    // as our own enqueues would.
    this.store.onReady?.((routes) => {
      if (this.stopped) return;
      this.waiters.notifyCounted(routes);
      for (const route of routes.keys()) {
        if (this.pushRoutes.has(route)) {
          this.pokeDispatcher();
          break;
        }
      }
    });
    if (!this.loops) return;

    this.every(this.config.dispatchIntervalMs, () => this.dispatchTick());
    this.every(this.config.sweepIntervalMs, () => this.sweep());
    if (this.config.autoPruneAfterMs > 0) {
      // Checking ten times per auto-prune period bounds the overshoot to a tenth of it.
      const period = Math.max(
        1000,
        Math.min(60_000, Math.floor(this.config.autoPruneAfterMs / 10)),
      );
      this.every(period, () => this.autoPrune());
    }
  }

  /** Stops the loops and answers parked long-polls with what they have: nothing. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.waiters.notifyAll();
    await this.dispatcher.idle();
    await this.transport.close();
  }

  private every(ms: number, task: () => Promise<unknown>): void {
    let busy = false;
    // A store that is away (a PostgreSQL restart) fails every pass, four times a second for
    // the sweep: say so once, and once more when it answers again, not at every pass.
    let unavailable = false;
    const timer = setInterval(() => {
      if (busy || this.stopped) return;
      busy = true;
      task()
        .then(() => {
          if (!unavailable) return;
          unavailable = false;
          this.log.info('the store answers again: background tasks resumed');
        })
        .catch((err) => {
          if (!isSwarmError(err) || err.code !== 'unavailable') {
            this.log.error({ err }, 'background task failed');
          } else if (!unavailable) {
            unavailable = true;
            this.log.warn({ err }, 'the store is unavailable: background tasks wait for it');
          }
        })
        .finally(() => {
          busy = false;
        });
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  // Health and observation

  liveness(): Liveness {
    const now = this.clock.now();
    return {
      status: 'ok',
      version: VERSION,
      uptimeMs: now - this.startedAt,
      startedAt: this.startedAt,
    };
  }

  ready(): Promise<boolean> {
    return this.store.ping();
  }

  storeFileSizes(): StoreFileSizes | null {
    return this.store.fileSizes();
  }

  swarmHealth(): Promise<SwarmHealth> {
    return this.observer.health();
  }

  metrics(): Promise<SwarmMetrics> {
    return this.observer.metrics();
  }

  routing(type: string | undefined, count: number): Promise<RoutingOverview | RoutingForType> {
    return this.observer.routing(type, count);
  }

  async queueSummary(): Promise<QueueSummary> {
    const now = this.clock.now();
    const [{ gauges, stats }, byTopic] = await Promise.all([
      this.store.counts(now),
      this.store.byTopic(),
    ]);
    return { ...queueGauges(gauges, now), byTopic, stats };
  }

  // Agents

  private view(agent: Agent, inflight: number, now = this.clock.now()): AgentView {
    return { ...agent, stale: agent.lastHeartbeat < now - this.config.staleAfterMs, inflight };
  }

  async listAgents(query: AgentQuery): Promise<Page<AgentView>> {
    const now = this.clock.now();
    const after =
      query.cursor === undefined ? undefined : decodeCursor(query.cursor, { id: 'text' });
    const page = await this.store.listAgents({
      type: query.type,
      status: query.status,
      stale: query.stale,
      staleBefore: now - this.config.staleAfterMs,
      limit: query.limit,
      afterId: after === undefined ? undefined : String(after.id),
    });
    const inflight = await this.store.inflightByAgent();
    const last = page.items[page.items.length - 1];

    return {
      items: page.items.map((agent) => this.view(agent, inflight.get(agent.id) ?? 0, now)),
      total: page.total,
      nextCursor:
        page.items.length === query.limit && last !== undefined
          ? encodeCursor({ id: last.id })
          : null,
    };
  }

  async getAgent(id: string): Promise<AgentDetail> {
    const agent = await this.requireAgent(id);
    const [inflight, subscriptions, metrics] = await Promise.all([
      this.store.inflightOf(id),
      this.store.subscriptionsOf(id),
      this.store.agentMetrics(id),
    ]);
    return {
      ...this.view(agent, inflight),
      subscriptions,
      lastMetrics: metrics?.metrics ?? null,
      lastMetricsAt: metrics?.at ?? null,
    };
  }

  private async requireAgent(id: string): Promise<Agent> {
    const agent = await this.store.getAgent(id);
    if (agent === null) throw notFound('agent', id);
    return agent;
  }

  async registerAgent(input: RegisterAgentInput): Promise<RegisterAgentResult> {
    const now = this.clock.now();
    const existing = input.id === undefined ? null : await this.store.getAgent(input.id);

    const agent = await this.store.upsertAgent({
      id: input.id ?? `${input.type}-${randomUUID().slice(0, 8)}`,
      type: input.type,
      status: input.status ?? 'active',
      capabilities: [...new Set(input.capabilities ?? existing?.capabilities ?? [])],
      endpoint: input.endpoint === undefined ? (existing?.endpoint ?? null) : input.endpoint,
      maxInflight: input.maxInflight ?? existing?.maxInflight ?? this.config.defaultMaxInflight,
      metadata: input.metadata ?? existing?.metadata ?? {},
      registeredAt: now,
      lastHeartbeat: now,
    });

    await this.onAgentsChanged();
    this.log.info(
      { agentId: agent.id, type: agent.type, push: agent.endpoint !== null },
      'agent registered',
    );

    return {
      agent: this.view(agent, await this.store.inflightOf(agent.id), now),
      heartbeatIntervalMs: this.config.heartbeatIntervalMs,
      staleAfterMs: this.config.staleAfterMs,
    };
  }

  async heartbeat(id: string, input: HeartbeatInput): Promise<void> {
    const known = await this.store.heartbeat(id, this.clock.now(), input.status, input.metrics);
    if (!known) throw notFound('agent', id);

    // A status change can make an agent live or not live for push delivery.
    if (input.status !== undefined) await this.onAgentsChanged();
  }

  async deregisterAgent(id: string): Promise<{ released: number; deadLettered: number }> {
    const outcome = await this.store.removeAgents([id], 'no_route', this.clock.now());
    if (outcome.removed.length === 0) throw notFound('agent', id);
    outcome.deadLettered += await this.deadLetterDirect([id], 'no_route');

    this.waiters.notify([routeKey('agent', id)]);
    await this.onAgentsChanged();
    this.log.info({ agentId: id, released: outcome.released }, 'agent deregistered');
    return { released: outcome.released, deadLettered: outcome.deadLettered };
  }

  async subscribe(agentId: string, topic: string): Promise<void> {
    await this.requireAgent(agentId);
    await this.store.subscribe(agentId, topic, this.clock.now());
  }

  async unsubscribe(agentId: string, topic: string): Promise<void> {
    await this.requireAgent(agentId);
    await this.store.unsubscribe(agentId, topic);
  }

  subscriptions(topic?: string): Promise<Record<string, string[]>> {
    return this.store.subscriptions(topic);
  }

  /** Released leases and new agents may have work waiting: wake polls and the dispatcher. */
  private async onAgentsChanged(): Promise<void> {
    await this.refreshPushRoutes();
    this.waiters.notifyAll();
    this.pokeDispatcher();
  }

  private async refreshPushRoutes(): Promise<void> {
    const live = await this.store.liveAgents(this.clock.now() - this.config.staleAfterMs);
    const routes = new Set<RouteKey>();
    for (const agent of live) {
      if (agent.endpoint === null) continue;
      for (const route of routesOf(agent)) routes.add(route);
    }
    this.pushRoutes = routes;
  }

  // Messages

  async enqueue(inputs: EnqueueInput[], batch = inputs.length > 1): Promise<EnqueueResult[]> {
    const now = this.clock.now();
    const defaults = { now, defaultMaxAttempts: this.config.defaultMaxAttempts };

    // Parse everything before writing anything: one bad message rejects the whole request.
    // Message i's entries start at firstOf[i] (a broadcast has one per live agent). Plain
    // loops and flat arrays: this runs once per request at thousands of requests a second.
    const entries: NewEntry[] = [];
    const firstOf: number[] = [];
    const messageIds: string[] = [];
    let live: Agent[] | null = null;

    for (let index = 0; index < inputs.length; index += 1) {
      const input = inputs[index] as EnqueueInput;
      let message: Message;
      let target: ParsedTarget;
      try {
        message = normalizeMessage(input.message, now);
        target = parseTarget(message.target);
      } catch (err) {
        throw batch ? numbered(err, index) : err;
      }

      firstOf.push(entries.length);
      messageIds.push(message.id);
      const chosenId = input.message.id !== undefined;

      if (target.kind === 'broadcast') {
        live ??= await this.store.liveAgents(now - this.config.staleAfterMs);
        const ids = live.map((agent) => agent.id);
        for (const copy of buildCopies(message, ids, input, defaults, chosenId)) entries.push(copy);
      } else {
        entries.push(buildEntry(message, target, input, defaults, chosenId ? message.id : null));
      }
    }

    // The store commits the enqueues and acks of one event-loop turn together. Past
    // maxQueueDepth it refuses new messages (429): every waiting message lives in memory, so a
    // queue that only grows would end with the server out of it; the sender keeps them.
    const outcomes = await this.store.enqueue(entries, this.clock.now(), this.config.maxQueueDepth);
    this.afterEnqueue(entries);

    const results: EnqueueResult[] = [];
    for (let i = 0; i < messageIds.length; i += 1) {
      const from = firstOf[i] as number;
      const to = firstOf[i + 1] ?? entries.length;
      const queueIds: string[] = [];
      let duplicates = 0;

      for (let j = from; j < to; j += 1) {
        const outcome = outcomes[j] as EnqueueOutcome;
        if (outcome.duplicate) duplicates += 1;
        else queueIds.push(outcome.queueId);
      }

      results.push({
        // A broadcast with no live agent made no entry: from === to, and outcomes[from] is
        // the next message's.
        queueId: to > from ? (outcomes[from] as EnqueueOutcome).queueId : null,
        queueIds,
        duplicate: to > from && duplicates === to - from,
        messageId: messageIds[i] as string,
      });
    }
    return results;
  }

  async publish(input: PublishInput): Promise<PublishResult> {
    const now = this.clock.now();
    const subscribers = await this.store.subscribers(input.topic);
    const message = normalizeMessage(
      {
        id: input.id,
        source: input.source,
        target: `topic:${input.topic}`,
        type: input.type ?? 'EVENT',
        topic: input.topic,
        payload: input.payload,
        priority: input.priority,
        ttlMs: input.ttlMs,
        headers: input.headers,
        correlationId: input.correlationId,
      },
      now,
    );

    // Each copy is addressed to its subscriber, so it can be followed, requeued or pruned
    // like any direct message.
    const entries = buildCopies(
      message,
      subscribers,
      {},
      {
        now,
        defaultMaxAttempts: this.config.defaultMaxAttempts,
      },
      input.id !== undefined,
    ).map((entry, i) => {
      const copy = { ...entry.message, target: subscribers[i] as string };
      return { ...entry, message: copy, messageJson: JSON.stringify(copy) };
    });

    const outcomes = await this.store.enqueue(entries, this.clock.now(), this.config.maxQueueDepth);
    this.afterEnqueue(entries);
    const created = outcomes.filter((o) => !o.duplicate).map((o) => o.queueId);
    return { enqueued: created.length, queueIds: created };
  }

  private afterEnqueue(entries: NewEntry[]): void {
    const now = this.clock.now();
    this.enqueueRate.add(now, entries.length);
    const routes = new Map<RouteKey, number>();
    for (const entry of entries) {
      if (entry.availableAt > now) continue;
      const key = routeKey(entry.routeKind, entry.routeKey);
      routes.set(key, (routes.get(key) ?? 0) + 1);
    }
    this.waiters.notifyCounted(routes);

    for (const route of routes.keys()) {
      if (this.pushRoutes.has(route)) {
        this.pokeDispatcher();
        break;
      }
    }
  }

  private pokeDispatcher(): void {
    if (this.stopped || !this.loops) return;
    setImmediate(() => {
      void this.dispatcher
        .pass(BACKGROUND_DISPATCH_LIMIT)
        .catch((err) => this.log.error({ err }, 'dispatch pass failed'));
    });
  }

  // Pull delivery

  async poll(agentId: string, input: PollInput, signal?: CancelSignal): Promise<Delivery[]> {
    const agent = await this.requireAgent(agentId);
    if (agent.status === 'offline') {
      // Nothing is delivered to an offline agent; make its long poll wait like an empty one
      // rather than answer at once and invite a tight loop.
      if (input.waitMs > 0) await this.waiters.wait([], Math.min(input.waitMs, 5_000), signal);
      return [];
    }

    // Polling is proof of life: a stale agent that polls is live again, since stale agents
    // never receive deliveries. Fresh agents pay no write for it.
    const now = this.clock.now();
    if (agent.lastHeartbeat < now - this.config.heartbeatIntervalMs) {
      await this.store.heartbeat(agentId, now);
    }

    const routes = { agentId, type: agent.type, capabilities: agent.capabilities };
    const deadline = now + input.waitMs;

    for (;;) {
      // A caller that hung up would never see what we lease; leave it for the next agent.
      if (signal?.aborted) return [];
      const deliveries = await this.store.claim(routes, {
        limit: input.limit,
        leaseMs: input.leaseMs,
        now: this.clock.now(),
      });
      if (deliveries.length > 0 || input.waitMs === 0 || this.stopped) return deliveries;

      const remaining = deadline - this.clock.now();
      if (remaining <= 0 || signal?.aborted) return [];

      // Woken by an enqueue to one of our routes, by the sweeper when delayed entries or
      // released leases may have become ready, by shutdown, or by the client leaving.
      await this.waiters.wait(routesOf(agent), Math.min(remaining, 5_000), signal);
      if (signal?.aborted || this.stopped) return [];

      // Under load, a woken poll waits a moment so it leaves with a batch rather than with
      // the one message that woke it: one poll, one ack and one transaction per message was
      // what held single-message enqueue to ~1,600 msg/s. At low rates it claims at once.
      if (this.enqueueRate.perSecond(this.clock.now()) >= LINGER_ABOVE_PER_SEC) {
        await new Promise((resolve) => setTimeout(resolve, LINGER_MS));
      }

      // Deregistered or pruned while parked: what it released must go to another agent, not
      // back to a poll of one that no longer exists.
      const current = await this.store.getAgent(agentId);
      if (current === null || current.status === 'offline') return [];
    }
  }

  async ack(queueIds: string[], agentId?: string): Promise<AckResult> {
    const result = await this.store.ack(queueIds, agentId, this.clock.now());
    if (result.acked > 0 && this.pushRoutes.size > 0) this.pokeDispatcher();
    return result;
  }

  async nack(input: NackInput): Promise<NackResult> {
    const result = await this.store.fail(
      input.queueIds,
      {
        error: input.error ?? 'nacked by agent',
        retry: input.retry ?? true,
        delayMs: input.delayMs,
        agentId: input.agentId,
        now: this.clock.now(),
      },
      this.backoff,
    );

    // A retry with no delay is ready now.
    if (result.retried > 0 && input.delayMs === 0) this.waiters.notifyAll();
    return result;
  }

  async pollAndAck(agentId: string, limit: number): Promise<Delivery[]> {
    const agent = await this.requireAgent(agentId);
    const now = this.clock.now();
    if (agent.status === 'offline') return [];
    if (agent.lastHeartbeat < now - this.config.heartbeatIntervalMs) {
      await this.store.heartbeat(agentId, now);
    }
    return this.store.claimAndAck(routesFor(agent), limit, now);
  }

  // Queue views

  async listDeadLetters(query: DeadLetterQuery): Promise<Page<QueueEntry>> {
    const after =
      query.cursor === undefined
        ? undefined
        : decodeCursor(query.cursor, { deadLetteredAt: 'time', queueId: 'rowId' });
    const page = await this.store.deadLetters({
      topic: query.topic,
      target: query.target,
      reason: query.reason,
      limit: query.limit,
      after:
        after === undefined
          ? undefined
          : { deadLetteredAt: Number(after.deadLetteredAt), queueId: String(after.queueId) },
    });
    const last = page.items[page.items.length - 1];

    return {
      items: page.items,
      total: page.total,
      nextCursor:
        page.items.length === query.limit && last !== undefined
          ? encodeCursor({ deadLetteredAt: last.deadLetteredAt, queueId: last.queueId })
          : null,
    };
  }

  async getEntry(queueId: string): Promise<QueueEntry> {
    const entry = await this.store.getEntry(queueId);
    if (entry === null) {
      throw new SwarmError('not_found', `queue entry ${queueId} does not exist`, [
        { field: 'queueId', message: queueId },
      ]);
    }
    return entry;
  }

  async listAudit(limit: number, cursor?: string): Promise<Page<AuditRecord>> {
    const before = cursor === undefined ? undefined : decodeCursor(cursor, { id: 'rowId' });
    const page = await this.store.listAudit(
      limit,
      before === undefined ? undefined : String(before.id),
    );
    const last = page.items[page.items.length - 1];
    return {
      items: page.items,
      total: page.total,
      nextCursor:
        page.items.length === limit && last !== undefined ? encodeCursor({ id: last.id }) : null,
    };
  }

  // Recovery

  async dispatch(limit: number, actor: Actor): Promise<DispatchResult> {
    const result = await this.dispatcher.pass(limit);
    await this.audit(actor, 'dispatch', { limit }, { ...result });
    return result;
  }

  /**
   * Each requeue-dlq or prune-stale call is one recovery cycle, and its starting state is
   * kept: read here, before the action, and recorded by the returned function once the
   * action has succeeded. A call the store refused recovered nothing, and is no cycle.
   */
  private async startCycle(action: string): Promise<() => Promise<void>> {
    const at = this.clock.now();
    const { state } = await this.observer.currentState();
    return async () => {
      await this.store.recordCycle({ at, action, ...state });
    };
  }

  async requeueDeadLetters(input: RequeueInput, actor: Actor): Promise<RequeueResult> {
    const cycle = input.dryRun ? null : await this.startCycle('requeue-dlq');

    const outcome = await this.store.requeue({
      filter: { ids: input.ids, topic: input.topic, target: input.target, reason: input.reason },
      limit: input.limit,
      dryRun: input.dryRun,
      now: this.clock.now(),
    });
    const result: RequeueResult = {
      requeued: outcome.requeued.length,
      remaining: outcome.remaining,
      skipped: outcome.skipped,
      dryRun: input.dryRun,
      queueIds: outcome.requeued,
    };
    await cycle?.();

    if (!input.dryRun && outcome.requeued.length > 0) {
      this.waiters.notifyAll();
      this.pokeDispatcher();
    }
    await this.audit(
      actor,
      'requeue-dlq',
      { ...input },
      {
        requeued: result.requeued,
        remaining: result.remaining,
        skipped: result.skipped.length,
        dryRun: result.dryRun,
      },
    );
    return result;
  }

  async pruneStale(input: PruneInput, actor: Actor): Promise<PruneResult> {
    if (input.staleMs < this.config.pruneMinStaleMs) {
      throw invalidRequest(
        `staleMs must be an integer of at least ${this.config.pruneMinStaleMs}`,
        [{ field: 'staleMs', message: `minimum ${this.config.pruneMinStaleMs}` }],
      );
    }
    const cycle = input.dryRun ? null : await this.startCycle('prune-stale');

    const result = await this.prune(input.staleMs, input.dryRun);
    await cycle?.();
    await this.audit(
      actor,
      'prune-stale',
      { ...input },
      {
        removed: result.removed,
        released: result.released,
        deadLettered: result.deadLettered,
        dryRun: result.dryRun,
      },
    );
    return result;
  }

  private async prune(staleMs: number, dryRun: boolean): Promise<PruneResult> {
    const now = this.clock.now();
    const ids = await this.store.staleAgentIds(now - staleMs);

    if (dryRun) {
      const total = (await this.store.agentCounts(now - this.config.staleAfterMs)).total;
      const { released, deadLettered } = await this.store.removalPreview(ids);
      return {
        removed: ids.length,
        remaining: total - ids.length,
        removedIds: ids,
        released,
        deadLettered,
        dryRun,
      };
    }

    const outcome = await this.store.removeAgents(ids, 'target_pruned', now);
    outcome.deadLettered += await this.deadLetterDirect(outcome.removed, 'target_pruned');
    if (outcome.removed.length > 0) {
      await this.onAgentsChanged();
      this.log.info(
        { removed: outcome.removed.length, released: outcome.released },
        'stale agents pruned',
      );
    }
    const total = (await this.store.agentCounts(now - this.config.staleAfterMs)).total;

    return {
      removed: outcome.removed.length,
      remaining: total,
      removedIds: outcome.removed,
      released: outcome.released,
      deadLettered: outcome.deadLettered,
      dryRun,
    };
  }

  async purgeDeadLetters(input: PurgeInput, actor: Actor): Promise<PurgeResult> {
    const now = this.clock.now();
    const outcome = await this.store.purge(
      {
        ids: input.ids,
        topic: input.topic,
        reason: input.reason,
        deadBefore: input.olderThanMs === undefined ? undefined : now - input.olderThanMs,
      },
      input.dryRun,
      now,
    );
    const result = { ...outcome, dryRun: input.dryRun };
    await this.audit(actor, 'purge-dlq', { ...input }, { ...result });
    return result;
  }

  private async audit(
    actor: Actor,
    action: string,
    parameters: Record<string, unknown>,
    result: Record<string, unknown>,
  ): Promise<void> {
    const at = this.clock.now();
    await this.store.appendAudit({
      at,
      timestamp: new Date(at).toISOString(),
      scope: actor.scope,
      tokenName: actor.tokenName,
      action,
      parameters:
        actor.requestId === undefined ? parameters : { ...parameters, requestId: actor.requestId },
      result,
    });
    this.log.info(
      { action, scope: actor.scope, tokenName: actor.tokenName, result },
      'recovery action',
    );
  }

  // Background work

  private async dispatchTick(): Promise<void> {
    await this.refreshPushRoutes();
    await this.dispatcher.pass(BACKGROUND_DISPATCH_LIMIT);
  }

  /** Expires TTLs and reclaims lapsed leases; each runs until its backlog is gone. */
  async sweep(): Promise<{ expired: number; released: number }> {
    if (this.sweeping) return { expired: 0, released: 0 };
    this.sweeping = true;

    try {
      let expired = 0;
      let released = 0;
      for (;;) {
        const now = this.clock.now();
        const e = await this.store.expireEntries(now, SWEEP_BATCH);
        const r = await this.store.releaseExpiredLeases(now, this.backoff, SWEEP_BATCH);
        expired += e;
        released += r;
        if (e < SWEEP_BATCH && r < SWEEP_BATCH) break;

        // The store is synchronous: yield between batches so requests are served while a
        // large expiry is worked through, instead of after it.
        await new Promise((resolve) => setImmediate(resolve));
      }

      if (expired > 0 || released > 0) {
        this.log.debug({ expired, released }, 'sweep');
        this.pokeDispatcher();
      }

      // Delayed entries and retries become ready with time, not with an event: wake the
      // polls parked on exactly the routes that ripened since the last sweep, not every
      // idle agent of the swarm.
      const now = this.clock.now();
      const ripened = await this.store.becameReady(this.lastSweepAt, now);
      this.lastSweepAt = now;
      if (ripened.length > 0) {
        this.waiters.notifyCounted(new Map(ripened.map((r) => [routeKey(r.kind, r.key), r.count])));
        if (ripened.some((r) => this.pushRoutes.has(routeKey(r.kind, r.key))))
          this.pokeDispatcher();
      }
      return { expired, released };
    } finally {
      this.sweeping = false;
    }
  }

  /** Dead-letters removed agents' pending direct messages, a batch per event-loop turn. */
  private async deadLetterDirect(agentIds: string[], reason: DeadLetterReason): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.store.deadLetterUnroutable(
        agentIds,
        reason,
        this.clock.now(),
        SWEEP_BATCH,
      );
      total += n;
      if (n < SWEEP_BATCH) return total;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private async autoPrune(): Promise<void> {
    const result = await this.prune(this.config.autoPruneAfterMs, false);
    if (result.removed === 0) return;
    await this.audit(
      { scope: 'admin', tokenName: 'auto-prune' },
      'auto-prune',
      { staleMs: this.config.autoPruneAfterMs },
      { removed: result.removed, released: result.released, deadLettered: result.deadLettered },
    );
  }
}

/**
 * Entries enqueued per second over the last ~100 ms, in this process: a hint for batching,
 * never a reported figure (those come from the store).
 */
class RateMeter {
  private windowStart = 0;
  private count = 0;
  private lastRate = 0;

  add(now: number, n: number): void {
    this.roll(now);
    this.count += n;
  }

  perSecond(now: number): number {
    this.roll(now);
    return Math.max(this.lastRate, (this.count * 1000) / RATE_WINDOW_MS);
  }

  private roll(now: number): void {
    if (now - this.windowStart < RATE_WINDOW_MS) return;
    // A window with nothing in it resets the rate: the last busy window is history.
    this.lastRate =
      now - this.windowStart < 2 * RATE_WINDOW_MS ? (this.count * 1000) / RATE_WINDOW_MS : 0;
    this.windowStart = now;
    this.count = 0;
  }
}

const RATE_WINDOW_MS = 100;

function routesFor(agent: Agent): AgentRoutes {
  return { agentId: agent.id, type: agent.type, capabilities: agent.capabilities };
}

function routesOf(agent: Agent): RouteKey[] {
  return [
    routeKey('agent', agent.id),
    routeKey('type', agent.type),
    ...agent.capabilities.map((c) => routeKey('capability', c)),
  ];
}

/**
 * A batch's error names the message it is about, in its text and in each detail's field, the
 * way schema errors do (`messages[3].message.target`).
 */
function numbered(err: unknown, index: number): unknown {
  if (!(err instanceof SwarmError)) return err;

  const details = err.details.map((detail) =>
    detail.field === undefined
      ? detail
      : { ...detail, field: `messages[${index}].${detail.field}` },
  );
  return new SwarmError(err.code, `messages[${index}]: ${err.message}`, details);
}
