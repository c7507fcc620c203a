// POST /swarm/messages on undici's low-level dispatch() instead of SwarmClient's
// pool.request(). This is the benchmark's hottest call: with --enqueue single it is one
// request per message. Measured on the 2-core machine against a bare node:http server
// answering an enqueue-sized JSON body, 16 concurrent senders, 30,000 requests, 3 rounds:
//   pool.request() + body.text() (SwarmClient's path)   106-150 µs of client CPU per request
//   dispatch() with this handler (undici 7 handler API)   90-97 µs per request
//   dispatch() with the deprecated onHeaders/onData API   80-87 µs (not used: deprecated)
// The saving is CPU the server gets back on a machine it shares with the benchmark; it is
// why --enqueue single can offer more load. Every other call (poll, ack, metrics,
// registration) stays on SwarmClient, and errors are classified by the client's own
// functions, so both paths fail the same way. --plain-client sends enqueues via SwarmClient.

import { type Dispatcher, Pool } from 'undici';
import { networkError, responseError } from '../../src/client/errors.ts';
import type { EnqueueInput, EnqueueResult } from '../../src/engine/contract.ts';

const PATH = '/swarm/messages';
const REQUEST = { method: 'POST', path: PATH };

export class FastEnqueue {
  private readonly pool: Pool;
  private readonly path: string;
  private readonly headers: Record<string, string>;
  private readonly baseUrl: string;
  private readonly timeoutMs: number;

  constructor(options: { baseUrl: string; token: string; connections: number; timeoutMs: number }) {
    const url = new URL(options.baseUrl);

    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.path = `${url.pathname.replace(/\/+$/, '')}${PATH}`;
    this.timeoutMs = options.timeoutMs;
    this.headers = {
      accept: 'application/json',
      'content-type': 'application/json',
      authorization: `Bearer ${options.token}`,
    };
    this.pool = new Pool(url.origin, {
      connections: options.connections,
      keepAliveTimeout: 30_000,
      connectTimeout: options.timeoutMs,
    });
  }

  enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    return this.post(JSON.stringify(input)) as Promise<EnqueueResult>;
  }

  async enqueueBatch(inputs: EnqueueInput[]): Promise<EnqueueResult[]> {
    const body = (await this.post(JSON.stringify({ messages: inputs }))) as {
      results: EnqueueResult[];
    };
    return body.results;
  }

  async close(): Promise<void> {
    if (!this.pool.closed) await this.pool.close();
  }

  private post(body: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.pool.dispatch(
        {
          method: 'POST',
          path: this.path,
          headers: this.headers,
          body,
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs,
        },
        new JsonCall(resolve, reject, this.baseUrl),
      );
    });
  }
}

/**
 * One request's handler. A class, not an object of closures: tsx names every closure it
 * creates (a defineProperty call each), which showed up at 1.5% of the benchmark's profile.
 */
class JsonCall implements Dispatcher.DispatchHandler {
  private readonly chunks: Buffer[] = [];
  private status = 0;

  constructor(
    private readonly resolve: (body: unknown) => void,
    private readonly reject: (err: unknown) => void,
    private readonly baseUrl: string,
  ) {}

  // Its presence selects undici 7's handler API (the other callbacks' signatures).
  onRequestStart(): void {}

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    const text = Buffer.concat(this.chunks).toString('utf8');
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = text;
    }

    if (this.status >= 200 && this.status < 300) this.resolve(parsed);
    else this.reject(responseError(this.status, parsed, REQUEST));
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.reject(networkError(err, REQUEST, this.baseUrl));
  }
}
