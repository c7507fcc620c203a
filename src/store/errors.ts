// Driver errors become domain errors here and nowhere else, so no caller ever sees a
// SQLite or PostgreSQL error code.

import { isSwarmError, SwarmError } from '../core/errors.ts';

const UNAVAILABLE = new Set([
  // SQLite: another writer holds the lock past busy_timeout, the disk is full or gone.
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_FULL',
  'SQLITE_IOERR',
  'SQLITE_CANTOPEN',
  'SQLITE_READONLY',
  // PostgreSQL: connection failures and server shutdown.
  'ECONNREFUSED',
  'ECONNRESET',
  '57P01',
  '57P03',
  '53300',
  '08006',
  '08001',
]);

export function mapDriverError(err: unknown): Error {
  if (isSwarmError(err)) return err;

  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && [...UNAVAILABLE].some((c) => code.startsWith(c))) {
    return new SwarmError('unavailable', 'the store is unavailable; retry shortly', [
      { message: code },
    ]);
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
