// Opaque page cursors: the keyset position of the last item, base64url-encoded JSON. Keyset
// paging never overlaps and never skips, however the rows change between pages.

import { invalidRequest } from '../core/errors.ts';

export function encodeCursor(position: Record<string, string | number | null>): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url');
}

export function decodeCursor<K extends string>(
  cursor: string,
  ...keys: K[]
): Record<K, string | number> {
  try {
    const position = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (typeof position === 'object' && position !== null) {
      const complete = keys.every((key) => {
        const value = (position as Record<string, unknown>)[key];
        return typeof value === 'string' || typeof value === 'number';
      });
      if (complete) return position as Record<K, string | number>;
    }
  } catch {
    // Fall through to the one error below: a cursor is either ours or invalid.
  }
  throw invalidRequest('cursor is not a cursor this server issued', [
    { field: 'cursor', message: 'pass back nextCursor unchanged' },
  ]);
}
