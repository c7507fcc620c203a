// Every failure leaves as {"error":{"code","message","details"}} with a code from the one
// catalogue (src/core/errors.ts). Fastify's own errors (parsing, limits, routing) are mapped to
// those codes here, in one place; anything unexpected becomes `internal` without its stack.

import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CODES, type ErrorCode, isSwarmError, SwarmError } from '../core/errors.ts';

/** What the WWW-Authenticate header says on every 401 (RFC 6750). */
export const BEARER_CHALLENGE = 'Bearer realm="owokx-swarm"';

const BY_STATUS = new Map<number, ErrorCode>(
  Object.entries(ERROR_CODES).map(([code, status]) => [status, code as ErrorCode]),
);

/** Fastify's request-parsing errors, in the contract's words. */
function fromFastify(err: FastifyError, bodyLimit: number): SwarmError | null {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new SwarmError(
        'payload_too_large',
        `request body must be at most ${bodyLimit} bytes`,
        [{ field: 'body', message: `at most ${bodyLimit} bytes`, limit: bodyLimit }],
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new SwarmError(
        'unsupported_media_type',
        'a request with a body must send Content-Type: application/json',
      );
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new SwarmError('invalid_request', 'request body is not valid JSON', [
        { field: 'body', message: 'not valid JSON' },
      ]);
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new SwarmError('invalid_request', 'Content-Length does not match the body sent');
    case 'FST_ERR_BAD_URL':
      return new SwarmError('invalid_request', 'the request URL is not valid percent-encoding');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new SwarmError('invalid_request', 'a path segment of the URL is too long');
    default:
      return null;
  }
}

/** The catalogue error for anything thrown while serving a request. */
export function toSwarmError(err: unknown, bodyLimit: number): SwarmError {
  if (isSwarmError(err)) return err;

  const fastifyError = err as FastifyError;
  const mapped = fromFastify(fastifyError, bodyLimit);
  if (mapped !== null) return mapped;

  // A client error we did not name (Fastify or a plugin set a 4xx): keep its status, and its
  // message, which describes the request rather than our internals.
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new SwarmError(BY_STATUS.get(status) ?? 'invalid_request', fastifyError.message);
  }

  return new SwarmError('internal', 'internal error');
}

/** Fastify's error handler: the one place a failure becomes a response. */
export function errorHandler(bodyLimit: number) {
  return (err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const error = toSwarmError(err, bodyLimit);

    if (error.status >= 500) {
      // The operator gets the real error in the log; the client only the catalogue code.
      request.log.error({ err }, 'request failed');
    }

    if (error.code === 'unauthorized') reply.header('www-authenticate', BEARER_CHALLENGE);
    if (error.code === 'rate_limited') reply.header('retry-after', '1');

    reply.code(error.status).type('application/json; charset=utf-8').send(error.toJSON());
  };
}

/** Unknown routes answer in the same shape as every other error. */
export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  const path = (request.raw.url ?? '/').split('?', 1)[0];
  const error = new SwarmError('not_found', `no route for ${request.method} ${path}`);

  reply.code(404).type('application/json; charset=utf-8').send(error.toJSON());
}
