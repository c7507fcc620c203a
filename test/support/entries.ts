// Store entries as the engine builds them, for tests that drive a store directly.

import type { Agent, Message } from '../../src/core/types.ts';
import { type NewEntry, PRIORITY_RANK } from '../../src/store/store.ts';

export const NOW = Date.UTC(2026, 11, 3, 12, 0, 0);

/** Entry n: message m-n for type:worker, topic jobs unless told, payload { n }. */
export function entry(
  n: number,
  options: {
    priority?: Message['priority'];
    delayMs?: number;
    ttlMs?: number;
    topic?: string | null;
  } = {},
): NewEntry {
  const message: Message = {
    id: `m-${n}`,
    source: 'test',
    target: 'type:worker',
    type: 'EVENT',
    topic: options.topic === undefined ? 'jobs' : options.topic,
    payload: { n },
    timestamp: new Date(NOW).toISOString(),
    priority: options.priority ?? 'normal',
  };
  if (options.ttlMs !== undefined) message.ttlMs = options.ttlMs;
  return {
    message,
    messageJson: JSON.stringify(message),
    routeKind: 'type',
    routeKey: 'worker',
    dedupeKey: null,
    priority: PRIORITY_RANK[message.priority],
    availableAt: NOW + (options.delayMs ?? 0),
    expiresAt: options.ttlMs === undefined ? null : NOW + options.ttlMs,
    maxAttempts: 3,
    requireRegistered: false,
  };
}

/** A live agent of type worker, registered and last heard from at NOW. */
export function agent(id: string): Agent {
  return {
    id,
    type: 'worker',
    status: 'active',
    capabilities: [],
    endpoint: null,
    maxInflight: 10,
    metadata: {},
    registeredAt: NOW,
    lastHeartbeat: NOW,
  };
}
