// Request logging: one line per completed request (debug when it succeeded, info for a 4xx,
// error for a 5xx), carrying the request id and never a payload or a token. Fastify's own
// "incoming request"/"request completed" pair at info would double the log volume of an
// enqueue-heavy swarm for no extra information.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { Logger } from 'pino';

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
