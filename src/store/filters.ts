// The dead-letter filter as SQL, shared by both dialects: `?` placeholders, which the
// PostgreSQL store numbers ($1, $2, …) before it sends the text.

import { parseQueueId } from './rows.ts';
import type { AgentFilter, DeadLetterFilter } from './store.ts';

/** Requeue reads dead letters a page at a time, and passes at most this many per call. */
export const REQUEUE_PAGE = 500;
export const REQUEUE_SCAN_MAX = 10_000;

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

/**
 * The agent listing as SQL: `count` for the total the filter matches, `page` for the page
 * after `afterId` (ordered by id, limit appended by the caller). Each is '' or "WHERE …".
 */
export function agentWhere(filter: AgentFilter): { count: Where; page: Where } {
  const where: string[] = [];
  const params: (string | number)[] = [];
  if (filter.type !== undefined) {
    where.push('type = ?');
    params.push(filter.type);
  }
  if (filter.status !== undefined) {
    where.push('status = ?');
    params.push(filter.status);
  }
  if (filter.stale !== undefined) {
    where.push(filter.stale ? 'last_heartbeat < ?' : 'last_heartbeat >= ?');
    params.push(filter.staleBefore);
  }

  const page = [...where];
  const pageParams = [...params];
  if (filter.afterId !== undefined) {
    page.push('id > ?');
    pageParams.push(filter.afterId);
  }
  const sql = (clauses: string[]) => (clauses.length === 0 ? '' : `WHERE ${clauses.join(' AND ')}`);
  return { count: { sql: sql(where), params }, page: { sql: sql(page), params: pageParams } };
}
