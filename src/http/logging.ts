// Request logging: one line per completed request (debug when it succeeded, info for a 4xx,
// error for a 5xx), carrying the request id and never a payload or a token. Fastify's own
// "incoming request"/"request completed" pair at info would double the log volume of an
// enqueue-heavy swarm for no extra information.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import {
  type FastifyBaseLogger,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Bindings, ChildLoggerOptions, Level, Logger } from 'pino';

// biome-ignore lint/suspicious/noExplicitAny: pino's own LogFn takes any arguments.
type LogArgs = any[];

/** Kept out of every log line, whatever a future serializer decides to include. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
];

// An incoming id is trusted only when it looks like one: short, and of characters that need no
// escaping anywhere the id travels (logs, headers, audit records).
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** `x-request-id` when the caller sent a sane one (a proxy's, or a client's retry), else new. */
export function requestId(req: IncomingMessage): string {
  const header = req.headers['x-request-id'];
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
}

/**
 * A request's logger, made only when the request logs something. Fastify gives every request a
 * child logger carrying its id; a pino child costs ~2 µs to build (its bindings are serialized
 * up front), and a successful request at the default level logs nothing at all. Levels that
 * are off answer from the parent without building the child.
 */
export class RequestLogger implements FastifyBaseLogger {
  private made: Logger | null = null;

  constructor(
    private readonly parent: Logger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {}

  get level(): string {
    // No per-route level reaches here (requestLogger gives those a real child at once).
    return this.made?.level ?? this.parent.level;
  }

  set level(level: string) {
    this.real().level = level;
  }

  isLevelEnabled(level: Level): boolean {
    return this.made?.isLevelEnabled(level) ?? this.parent.isLevelEnabled(level);
  }

  // Methods, not arrow-function fields: a request would otherwise allocate six closures.
  fatal(...args: LogArgs): void {
    this.write('fatal', args);
  }

  error(...args: LogArgs): void {
    this.write('error', args);
  }

  warn(...args: LogArgs): void {
    this.write('warn', args);
  }

  info(...args: LogArgs): void {
    this.write('info', args);
  }

  debug(...args: LogArgs): void {
    this.write('debug', args);
  }

  trace(...args: LogArgs): void {
    this.write('trace', args);
  }

  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.real().child(bindings, options);
  }

  private write(level: Level, args: LogArgs): void {
    if (!this.isLevelEnabled(level)) return;
    (this.real()[level] as (...a: LogArgs) => void)(...args);
  }

  private real(): Logger {
    this.made ??= this.parent.child(this.bindings, this.options);
    return this.made;
  }
}

/** Fastify's childLoggerFactory: see RequestLogger. */
export function requestLogger(
  this: unknown,
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  // A per-route log level is applied at once, as Fastify would: it changes what is enabled.
  if (options.level !== undefined) return logger.child(bindings, options);
  return new RequestLogger(logger as unknown as Logger, bindings, options);
}

export class RequestLogController extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'reqId' });
  }

  override incomingRequest(): void {
    // The completion line says everything the arrival line would.
  }

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    const status = reply.statusCode;
    // buildApp only ever logs through pino, whose loggers can say which levels are on.
    const log = reply.log as unknown as Logger;

    if (error) {
      log.error({ err: error, statusCode: status }, 'request errored while responding');
      return;
    }

    const level = status >= 500 ? 'error' : status >= 400 ? 'info' : 'debug';
    if (!log.isLevelEnabled(level)) return;

    const line = {
      method: request.method,
      url: request.url,
      statusCode: status,
      responseTime: reply.elapsedTime,
    };
    log[level](line, 'request completed');
  }

  override defaultErrorLog(): void {
    // errorHandler in errors.ts logs 5xx with their cause; the completion line covers the rest.
  }

  override routeNotFound(): void {
    // A 404 is logged at info by requestCompleted like any other 4xx.
  }
}
