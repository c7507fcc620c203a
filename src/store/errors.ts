// Driver errors become domain errors here and nowhere else, so no caller ever sees a
// SQLite or PostgreSQL error code.

import { isSwarmError, SwarmError } from '../core/errors.ts';

const UNAVAILABLE = [
  // SQLite: another writer holds the lock past busy_timeout, the disk is full or gone.
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_FULL',
  'SQLITE_IOERR',
  'SQLITE_CANTOPEN',
  'SQLITE_READONLY',
  // The network between us and PostgreSQL.
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  // PostgreSQL: connection exceptions (08…), refused credentials (28…), a database that is
  // not there (3D000), insufficient resources (53…: disk full, out of memory, too many
  // connections), shutdown and restart (57P01-57P03).
  '08',
  '28',
  '3D000',
  '53',
  '57P0',
];

// node-postgres reports a connection that ends mid-query, and a pool that cannot connect in
// time, with no code at all.
const UNAVAILABLE_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end/i;

export function mapDriverError(err: unknown): Error {
  if (isSwarmError(err)) return err;

  const code = (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : '';
  if (
    (typeof code === 'string' && UNAVAILABLE.some((c) => code.startsWith(c))) ||
    UNAVAILABLE_MESSAGES.test(message)
  ) {
    const unavailable = new SwarmError('unavailable', 'the store is unavailable; retry shortly', [
      { message: typeof code === 'string' ? code : message },
    ]);
    // The driver's words stay for the log and a failed start, not for HTTP answers.
    (unavailable as { cause?: unknown }).cause = err;
    return unavailable;
  }

  // PostgreSQL's text holds no U+0000: a value that reached the store with one is refused as
  // the caller's, not reported as a failure of ours.
  if (code === '22021' || code === '22P05') {
    return new SwarmError('invalid_request', 'text values may not contain the character U+0000');
  }

  if (err instanceof TypeError && /database connection is not open/i.test(err.message)) {
    return new SwarmError('unavailable', 'the store is closed');
  }

  // Unexpected: keep the original for the log, but callers only see "internal".
  const wrapped = new SwarmError('internal', 'the store failed unexpectedly');
  (wrapped as { cause?: unknown }).cause = err;
  return wrapped;
}
