// The dead-letter filter as SQL, shared by both dialects: `?` placeholders, which the
// PostgreSQL store numbers ($1, $2, …) before it sends the text.

import { parseQueueId } from './rows.ts';
import type { DeadLetterFilter } from './store.ts';

export interface Where {
  sql: string;
  params: (string | number)[];
}

export function deadWhere(filter: DeadLetterFilter): Where {
  const where = [`state = 'dead'`];
  const params: (string | number)[] = [];

  if (filter.topic !== undefined) {
    where.push('topic = ?');
    params.push(filter.topic);
  }
  if (filter.target !== undefined) {
    // Fan-out copies keep "broadcast" as their target; their agent is the route key.
    where.push(`(target = ? OR (route_kind = 'agent' AND route_key = ?))`);
    params.push(filter.target, filter.target);
  }
  if (filter.reason !== undefined) {
    where.push('reason = ?');
    params.push(filter.reason);
  }
  if (filter.deadBefore !== undefined) {
    where.push('dead_lettered_at <= ?');
    params.push(filter.deadBefore);
  }
  if (filter.ids !== undefined) {
    const ids = filter.ids.map(parseQueueId).filter((id): id is number => id !== null);
    where.push(`queue_id IN (${ids.map(() => '?').join(', ') || 'NULL'})`);
    params.push(...ids);
  }

  return { sql: where.join(' AND '), params };
}

/** No field of the filter is set: every dead letter matches. */
export function isUnfiltered(filter: DeadLetterFilter): boolean {
  return Object.values(filter).every((value) => value === undefined);
}
