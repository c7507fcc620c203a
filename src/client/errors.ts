// What a caller of the client sees when a call does not succeed: either the server's coded
// error from the contract, or one of three client-side codes for calls that never got an answer.

import { ERROR_CODES, type ErrorCode, type ErrorDetail } from '../core/errors.ts';

/**
 * `unreachable`: no connection or the connection broke (refused, DNS, reset, closed client).
 * `timeout`: connected (or tried to) but no answer within `timeoutMs`.
 * `aborted`: the caller's AbortSignal fired.
 * Everything else is the code the server answered with.
 */
export type ClientErrorCode = ErrorCode | 'unreachable' | 'timeout' | 'aborted';

export class SwarmClientError extends Error {
  readonly code: ClientErrorCode;
  /** The HTTP status, or 0 when no answer arrived. */
  readonly status: number;
  readonly details: ErrorDetail[];
  readonly method: string;
  readonly path: string;

  constructor(
    code: ClientErrorCode,
    status: number,
    message: string,
    details: ErrorDetail[],
    request: { method: string; path: string },
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'SwarmClientError';
    this.code = code;
    this.status = status;
    this.details = details;
    this.method = request.method;
    this.path = request.path;
  }

  /** True when the server never answered: the CLI maps these to its "unreachable" exit code. */
  get isNetworkError(): boolean {
    return this.status === 0;
  }
}

export const isSwarmClientError = (err: unknown): err is SwarmClientError =>
  err instanceof SwarmClientError;

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

const ABORT_CODES = new Set(['UND_ERR_ABORTED', 'UND_ERR_ABORT', 'ABORT_ERR']);

const STATUS_TO_CODE = new Map<number, ErrorCode>(
  Object.entries(ERROR_CODES).map(([code, status]) => [status, code as ErrorCode]),
);

/** Classifies a transport failure (undici or node:net error) into a client error. */
export function networkError(
  err: unknown,
  request: { method: string; path: string },
  baseUrl: string,
): SwarmClientError {
  const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string } };
  const sysCode = e?.code ?? e?.cause?.code ?? '';
  const where = `${request.method} ${baseUrl}${request.path}`;

  if (TIMEOUT_CODES.has(sysCode)) {
    return new SwarmClientError('timeout', 0, `${where} timed out (${sysCode})`, [], request, err);
  }

  if (ABORT_CODES.has(sysCode) || e?.name === 'AbortError') {
    return new SwarmClientError('aborted', 0, `${where} was aborted`, [], request, err);
  }

  const reason = sysCode || e?.message || String(err);
  return new SwarmClientError(
    'unreachable',
    0,
    `${where} failed: server unreachable (${reason})`,
    [],
    request,
    err,
  );
}

/** Builds the error for a non-2xx answer from its body, whatever shape that body has. */
export function responseError(
  status: number,
  body: unknown,
  request: { method: string; path: string },
): SwarmClientError {
  const shaped = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } })
    ?.error;
  const fallback = STATUS_TO_CODE.get(status) ?? (status >= 500 ? 'internal' : 'invalid_request');

  const code =
    typeof shaped?.code === 'string' && shaped.code in ERROR_CODES
      ? (shaped.code as ErrorCode)
      : fallback;
  const message =
    typeof shaped?.message === 'string'
      ? shaped.message
      : `${request.method} ${request.path} answered ${status}`;
  const details = Array.isArray(shaped?.details) ? (shaped.details as ErrorDetail[]) : [];

  return new SwarmClientError(code, status, message, details, request);
}
