// The push side of an agent: a small node:http endpoint the dispatcher POSTs
// {"deliveries":[{queueId,attempt,message}]} to. The contract is all or nothing: a 2xx
// acknowledges every delivery of the request, anything else fails them all, so one failing
// handler makes the whole batch come back (at-least-once; handlers must be idempotent).

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Delivery } from '../core/types.ts';
import { type AgentLogger, failureOf, type MessageHandler } from './types.ts';

export interface ServeOptions {
  /** Port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /** Interface to listen on. Default 127.0.0.1. */
  host?: string;
  /** Request path the dispatcher posts to. Default `/deliveries`. */
  path?: string;
  /** The URL registered as the agent's endpoint, when the listen address is not reachable as is. */
  publicUrl?: string;
  /** Largest accepted request body. Default 64 MiB (1000 deliveries of 64 KiB). */
  maxBodyBytes?: number;
  /** Called with each delivery the handler finished without throwing. */
  onHandled?: (delivery: Delivery) => void;
  /** Called with each delivery whose handler threw. */
  onFailed?: (delivery: Delivery, error: string) => void;
}

export interface PushServerStats {
  requests: number;
  received: number;
  handled: number;
  failed: number;
}

export class PushServer {
  readonly stats: PushServerStats = { requests: 0, received: 0, handled: 0, failed: 0 };

  private readonly server: http.Server;
  private readonly path: string;
  private readonly maxBodyBytes: number;
  private url: string | null = null;

  constructor(
    private readonly handler: MessageHandler,
    private readonly agentId: () => string,
    private readonly log: AgentLogger,
    private readonly options: ServeOptions = {},
  ) {
    this.path = options.path ?? '/deliveries';
    this.maxBodyBytes = options.maxBodyBytes ?? 64 * 1024 * 1024;
    this.server = http.createServer((req, res) => {
      void this.onRequest(req, res);
    });
  }

  /** Listens and returns the endpoint URL to register. */
  async listen(): Promise<string> {
    const host = this.options.host ?? '127.0.0.1';

    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port ?? 0, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });

    const { port } = this.server.address() as AddressInfo;
    const shownHost = host.includes(':') ? `[${host}]` : host;
    this.url = this.options.publicUrl ?? `http://${shownHost}:${port}${this.path}`;
    return this.url;
  }

  get endpoint(): string | null {
    return this.url;
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;

    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const pathname = (req.url ?? '/').split('?')[0];
    if (req.method !== 'POST' || pathname !== this.path) {
      reply(res, 404, {
        error: { code: 'not_found', message: `no route ${req.method} ${pathname}` },
      });
      return;
    }

    let deliveries: Delivery[];
    try {
      deliveries = parseDeliveries(await readBody(req, this.maxBodyBytes));
    } catch (err) {
      reply(res, 400, { error: { code: 'invalid_request', message: (err as Error).message } });
      return;
    }

    this.stats.requests++;
    this.stats.received += deliveries.length;

    const errors = await this.runAll(deliveries);

    if (errors.length === 0) {
      reply(res, 200, { ok: true, handled: deliveries.length });
      return;
    }

    reply(res, 500, {
      error: {
        code: 'internal',
        message: `${errors.length} of ${deliveries.length} deliveries failed: ${errors[0]}`,
        details: errors.slice(0, 20).map((message) => ({ message })),
      },
    });
  }

  /** Runs the handler on every delivery at once; returns the error texts of the failures. */
  private async runAll(deliveries: Delivery[]): Promise<string[]> {
    const agentId = this.agentId();

    const outcomes = await Promise.allSettled(
      deliveries.map(async (delivery) =>
        this.handler(delivery.message, {
          queueId: delivery.queueId,
          attempt: delivery.attempt,
          leaseExpiresAt: delivery.leaseExpiresAt,
          mode: 'push',
          agentId,
        }),
      ),
    );

    const errors: string[] = [];
    outcomes.forEach((outcome, i) => {
      const delivery = deliveries[i] as Delivery;
      if (outcome.status === 'fulfilled') {
        this.stats.handled++;
        this.options.onHandled?.(delivery);
        return;
      }

      const { error } = failureOf(outcome.reason);
      this.stats.failed++;
      errors.push(`${delivery.queueId}: ${error}`);
      this.options.onFailed?.(delivery, error);
    });

    if (errors.length > 0) {
      this.log('debug', 'push deliveries failed', { count: errors.length, first: errors[0] });
    }
    return errors;
  }
}

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function readBody(req: http.IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;

    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        reject(new Error(`body larger than ${maxBytes} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseDeliveries(text: string): Delivery[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error('body is not valid JSON');
  }

  const deliveries = (body as { deliveries?: unknown })?.deliveries;
  if (!Array.isArray(deliveries)) throw new Error('deliveries must be an array');

  for (const d of deliveries) {
    const entry = d as Partial<Delivery> | null;
    if (typeof entry?.queueId !== 'string' || typeof entry.message !== 'object') {
      throw new Error('each delivery needs a queueId and a message');
    }
  }
  return deliveries as Delivery[];
}
