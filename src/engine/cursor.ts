// Opaque page cursors: the keyset position of the last item, base64url-encoded JSON. Keyset
// paging never overlaps and never skips, however the rows change between pages.

import { invalidRequest } from '../core/errors.ts';

export function encodeCursor(position: Record<string, string | number | null>): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url');
}

/**
 * What each key of a position must hold: any text, a time (integer epoch milliseconds, which
 * every store's integer columns hold: a forged 1e300 or 1.5 is not a cursor of ours), or a
 * decimal row id.
 */
export type CursorField = 'text' | 'time' | 'rowId';

const VALID: Record<CursorField, (value: unknown) => boolean> = {
  text: (value) => typeof value === 'string' && value.length > 0,
  time: (value) => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0,
  rowId: (value) => typeof value === 'string' && /^[1-9]\d{0,15}$/.test(value),
};

export function decodeCursor<K extends string>(
  cursor: string,
  fields: Record<K, CursorField>,
): Record<K, string | number> {
  try {
    const position = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (typeof position === 'object' && position !== null) {
      const complete = (Object.entries(fields) as [K, CursorField][]).every(([key, field]) =>
        VALID[field]((position as Record<string, unknown>)[key]),
      );
      if (complete) return position as Record<K, string | number>;
    }
  } catch {
    // Fall through to the one error below: a cursor is either ours or invalid.
  }
  throw invalidRequest('cursor is not a cursor this server issued', [
    { field: 'cursor', message: 'pass back nextCursor unchanged' },
  ]);
}
