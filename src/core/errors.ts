// The one error catalogue. Every error a caller can see has a stable code, a status and a
// message; the HTTP layer renders it as {"error":{"code","message","details"}} and nothing else.

export const ERROR_CODES = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorDetail {
  field?: string;
  message: string;
  [key: string]: unknown;
}

export class SwarmError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetail[];

  constructor(code: ErrorCode, message: string, details: ErrorDetail[] = []) {
    super(message);
    this.name = 'SwarmError';
    this.code = code;
    this.status = ERROR_CODES[code];
    this.details = details;
  }

  toJSON(): { error: { code: ErrorCode; message: string; details: ErrorDetail[] } } {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

export const invalidRequest = (message: string, details: ErrorDetail[] = []): SwarmError =>
  new SwarmError('invalid_request', message, details);

export const notFound = (what: string, id: string): SwarmError =>
  new SwarmError('not_found', `${what} ${id} is not registered`, [{ field: 'id', message: id }]);

export const unavailable = (message: string): SwarmError => new SwarmError('unavailable', message);

/** Backpressure: the queue holds its limit of undelivered messages (OWOKX_MAX_QUEUE_DEPTH). */
export const queueFull = (depth: number, limit: number, count: number): SwarmError =>
  new SwarmError(
    'rate_limited',
    `the queue is full: ${depth} messages wait undelivered and the limit is ${limit}; retry once consumers catch up`,
    [{ field: 'queue', message: 'at the OWOKX_MAX_QUEUE_DEPTH limit', depth, limit, count }],
  );

export const isSwarmError = (err: unknown): err is SwarmError => err instanceof SwarmError;
