// An agent of the swarm: registers, keeps its registration live with heartbeats, subscribes
// to topics, and receives messages by pull (consume) or push (serve). When the server forgets
// it (a 404 on heartbeat or poll: pruned, or the store was reset) it registers again with the
// same id and subscriptions, so a restart of either side heals without the agent's code.

import { isSwarmClientError, SwarmClient } from '../client/index.ts';
import type { AgentStatus, Message } from '../core/types.ts';
import type {
  EnqueueInput,
  EnqueueResult,
  MessageInput,
  PublishInput,
  PublishResult,
  RegisterAgentInput,
  RegisterAgentResult,
} from '../engine/contract.ts';
import { type ConsumeOptions, PullConsumer, sleep } from './consumer.ts';
import { PushServer, type ServeOptions } from './push-server.ts';
import type { AgentLogger, MessageHandler } from './types.ts';

export interface SwarmAgentOptions {
  /** A client to share; otherwise one is made from baseUrl and token (and closed on stop). */
  client?: SwarmClient;
  baseUrl?: string;
  token?: string;
  timeoutMs?: number;

  /** Omit to let the server choose; the chosen id is `agent.id` after start(). */
  id?: string;
  type: string;
  capabilities?: string[];
  metadata?: Record<string, unknown>;
  status?: AgentStatus;
  maxInflight?: number;
  /** The push endpoint; serve() fills it in. */
  endpoint?: string;

  /** How long start() keeps retrying while the server is unreachable. Default 30000. */
  startTimeoutMs?: number;
  /** Overrides the interval the server suggests at registration. */
  heartbeatIntervalMs?: number;
  /** Deregister and exit on SIGINT/SIGTERM. Default false. */
  handleSignals?: boolean;
  log?: AgentLogger;
}

export interface StopOptions {
  /** Remove the registration (releasing leases). Default true. */
  deregister?: boolean;
}

const silent: AgentLogger = () => {};

export class SwarmAgent {
  readonly client: SwarmClient;
  readonly type: string;

  private agentId: string | undefined;
  private readonly ownsClient: boolean;
  private readonly registration: RegisterAgentInput;
  private readonly topics = new Set<string>();
  private readonly log: AgentLogger;

  private started: Promise<RegisterAgentResult> | null = null;
  private reRegistering: Promise<void> | null = null;
  private heartbeatMs = 0;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private heartbeatsPaused = false;
  private stopped = false;
  private readonly consumers = new Set<PullConsumer>();
  private pushServer: PushServer | null = null;
  private signalHandler: (() => void) | null = null;

  constructor(private readonly options: SwarmAgentOptions) {
    if (options.client) {
      this.client = options.client;
      this.ownsClient = false;
    } else {
      if (!options.baseUrl) throw new TypeError('SwarmAgent needs a client or a baseUrl');
      this.client = new SwarmClient({
        baseUrl: options.baseUrl,
        token: options.token,
        timeoutMs: options.timeoutMs,
      });
      this.ownsClient = true;
    }

    this.agentId = options.id;
    this.type = options.type;
    this.log = options.log ?? silent;
    this.registration = {
      id: options.id,
      type: options.type,
      status: options.status,
      capabilities: options.capabilities,
      metadata: options.metadata,
      maxInflight: options.maxInflight,
      endpoint: options.endpoint,
    };
  }

  /** The agent's id; known once start() resolved when the server picks it. */
  get id(): string {
    if (this.agentId === undefined) throw new Error('agent id is unknown until start() resolves');
    return this.agentId;
  }

  /**
   * Registers and starts heartbeating. Safe to call more than once. While the server cannot be
   * reached (still starting, restarting) it keeps trying for `startTimeoutMs`.
   */
  start(): Promise<RegisterAgentResult> {
    if (!this.started) {
      this.started = this.registerWhenReachable();
      this.started.catch(() => {
        this.started = null;
      });
      if (this.options.handleSignals) this.installSignalHandlers();
    }
    return this.started;
  }

  /** Subscribes to each topic; kept and re-applied if the agent has to register again. */
  async subscribe(topics: string | string[]): Promise<void> {
    await this.start();

    for (const topic of Array.isArray(topics) ? topics : [topics]) {
      await this.client.subscribe(this.id, topic);
      this.topics.add(topic);
    }
  }

  async unsubscribe(topic: string): Promise<void> {
    await this.start();
    await this.client.unsubscribe(this.id, topic);
    this.topics.delete(topic);
  }

  /**
   * Pulls messages until stop(): long-polls, runs the handler, acks on success, nacks with
   * the error text on a throw. Resolves when the loop has stopped and its acks are sent.
   */
  async consume(handler: MessageHandler, options: ConsumeOptions = {}): Promise<void> {
    await this.start();

    const consumer = new PullConsumer(
      {
        client: this.client,
        agentId: () => this.id,
        reRegister: () => this.reRegister(),
        log: this.log,
      },
      handler,
      options,
    );
    this.consumers.add(consumer);

    const onAbort = (): void => void consumer.stop();
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });

    try {
      await consumer.start();
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      this.consumers.delete(consumer);
    }
  }

  /** Starts a push endpoint and (re-)registers with it, so the dispatcher delivers there. */
  async serve(handler: MessageHandler, options: ServeOptions = {}): Promise<PushServer> {
    if (this.pushServer) throw new Error('serve() is already running for this agent');

    const server = new PushServer(handler, () => this.agentId ?? '', this.log, options);
    const endpoint = await server.listen();
    this.pushServer = server;
    this.registration.endpoint = endpoint;

    // Registering again updates the agent, so an agent that already started gains the endpoint.
    if (this.started) {
      await this.started;
      await this.register();
    } else {
      await this.start();
    }
    return server;
  }

  /** Sends one message, with this agent as source unless the message names one. */
  send(message: MessageInput, options: Omit<EnqueueInput, 'message'> = {}): Promise<EnqueueResult> {
    return this.client.enqueue({ ...options, message: { source: this.agentId, ...message } });
  }

  /** Publishes to every subscriber of the topic. */
  publish(
    topic: string,
    payload: unknown,
    options: Omit<PublishInput, 'topic' | 'payload'> = {},
  ): Promise<PublishResult> {
    return this.client.publish({ source: this.agentId, ...options, topic, payload });
  }

  /** Changes the status reported by the next heartbeat (and sends one now). */
  async setStatus(status: AgentStatus): Promise<void> {
    this.registration.status = status;
    if (this.agentId !== undefined && !this.heartbeatsPaused) await this.beat();
  }

  /** Stops heartbeating while staying registered: the agent turns stale on the server. */
  pauseHeartbeats(): void {
    this.heartbeatsPaused = true;
    this.clearHeartbeat();
  }

  resumeHeartbeats(): void {
    if (!this.heartbeatsPaused) return;

    this.heartbeatsPaused = false;
    if (!this.stopped && this.agentId !== undefined)
      void this.beat().finally(() => this.schedule());
  }

  /** Stops every loop, lets running handlers finish, deregisters, and closes what it opened. */
  async stop(options: StopOptions = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;

    this.clearHeartbeat();
    this.removeSignalHandlers();

    await Promise.allSettled([...this.consumers].map((c) => c.stop()));
    await this.pushServer?.close();
    // A re-registration still on its way would otherwise land after the deregister below.
    await this.reRegistering?.catch(() => {});

    if (options.deregister !== false && this.agentId !== undefined && this.started) {
      try {
        await this.client.deregister(this.agentId);
      } catch (err) {
        // Unknown already (pruned) or the server is gone: either way nothing is left to remove.
        this.log('debug', 'deregister failed', { error: (err as Error).message });
      }
    }

    if (this.ownsClient) await this.client.close();
  }

  // ---- registration and heartbeats ----

  private async registerWhenReachable(): Promise<RegisterAgentResult> {
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 30_000);

    for (let attempt = 1; ; attempt++) {
      try {
        return await this.register();
      } catch (err) {
        const retriable = isSwarmClientError(err) && err.isNetworkError && err.code !== 'aborted';
        if (!retriable || this.stopped || Date.now() >= deadline) throw err;

        const delay = Math.min(2000, 100 * 2 ** (attempt - 1));
        this.log('info', 'server not reachable yet; registering again soon', {
          error: (err as Error).message,
          retryInMs: delay,
        });
        await sleep(delay);
      }
    }
  }

  private async register(): Promise<RegisterAgentResult> {
    const result = await this.client.registerAgent({ ...this.registration, id: this.agentId });

    this.agentId = result.agent.id;
    this.registration.id = result.agent.id;
    this.heartbeatMs = this.options.heartbeatIntervalMs ?? result.heartbeatIntervalMs;
    this.schedule();
    return result;
  }

  /** One re-registration at a time, however many loops noticed the 404. */
  private reRegister(): Promise<void> {
    if (!this.reRegistering) {
      this.reRegistering = (async () => {
        await this.register();
        for (const topic of this.topics) await this.client.subscribe(this.id, topic);
        this.log('info', 'registered again', { agentId: this.agentId, topics: this.topics.size });
      })().finally(() => {
        this.reRegistering = null;
      });
    }
    return this.reRegistering;
  }

  private schedule(): void {
    this.clearHeartbeat();
    if (this.stopped || this.heartbeatsPaused || this.heartbeatMs <= 0) return;

    this.heartbeatTimer = setTimeout(() => {
      void this.beat().finally(() => this.schedule());
    }, this.heartbeatMs);
  }

  private clearHeartbeat(): void {
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  private async beat(): Promise<void> {
    if (this.stopped || this.heartbeatsPaused || this.agentId === undefined) return;

    try {
      await this.client.heartbeat(this.agentId, {
        status: this.registration.status,
        metrics: this.heartbeatMetrics(),
      });
    } catch (err) {
      if (isSwarmClientError(err) && err.code === 'not_found') {
        this.log('warn', 'heartbeat answered 404; registering again', { agentId: this.agentId });
        await this.reRegister().catch((regErr: Error) => {
          this.log('error', 'registering again failed', { error: regErr.message });
        });
        return;
      }
      this.log('warn', 'heartbeat failed', {
        agentId: this.agentId,
        error: (err as Error).message,
      });
    }
  }

  private heartbeatMetrics(): Record<string, number> {
    const metrics = { received: 0, acked: 0, failed: 0 };

    for (const c of this.consumers) {
      metrics.received += c.stats.received;
      metrics.acked += c.stats.acked;
      metrics.failed += c.stats.failed;
    }
    if (this.pushServer) {
      metrics.received += this.pushServer.stats.received;
      metrics.acked += this.pushServer.stats.handled;
      metrics.failed += this.pushServer.stats.failed;
    }
    return metrics;
  }

  // ---- process signals ----

  private installSignalHandlers(): void {
    const onSignal = (): void => {
      this.removeSignalHandlers();
      // Bounded, so a server that is gone cannot keep the process from exiting.
      void Promise.race([this.stop(), sleep(5000)]).finally(() => process.exit(0));
    };

    this.signalHandler = onSignal;
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }

  private removeSignalHandlers(): void {
    if (!this.signalHandler) return;

    process.off('SIGINT', this.signalHandler);
    process.off('SIGTERM', this.signalHandler);
    this.signalHandler = null;
  }
}

export type { Message };
