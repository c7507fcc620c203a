// From what a sender wrote to the entries the store keeps: defaults filled, the target parsed
// (but not resolved: that happens at delivery), fan-out expanded into one entry per agent.

import { randomUUID } from 'node:crypto';

import { invalidRequest } from '../core/errors.ts';
import { type ParsedTarget, parseTarget } from '../core/targets.ts';
import type { Message } from '../core/types.ts';
import { type NewEntry, PRIORITY_RANK } from '../store/store.ts';
import type { EnqueueInput, MessageInput } from './contract.ts';

export interface EntryDefaults {
  now: number;
  defaultMaxAttempts: number;
}

let isoFor = Number.NaN;
let isoText = '';

/** The ISO text of `now`; the messages of one batch share the clock value, so one call. */
function isoAt(now: number): string {
  if (now !== isoFor) {
    isoFor = now;
    isoText = new Date(now).toISOString();
  }
  return isoText;
}

export function normalizeMessage(input: MessageInput, now: number): Message {
  const message: Message = {
    id: input.id ?? randomUUID(),
    source: input.source ?? 'anonymous',
    target: input.target,
    type: input.type ?? 'EVENT',
    topic: input.topic ?? null,
    payload: input.payload ?? null,
    timestamp: input.timestamp ?? isoAt(now),
    priority: input.priority ?? 'normal',
  };

  if (input.correlationId !== undefined) message.correlationId = input.correlationId;
  if (input.replyTo !== undefined) message.replyTo = input.replyTo;
  if (input.ttlMs !== undefined) message.ttlMs = input.ttlMs;
  if (input.headers !== undefined) message.headers = input.headers;

  // A timestamp we wrote ourselves needs no checking.
  if (input.timestamp !== undefined && Number.isNaN(Date.parse(message.timestamp))) {
    throw invalidRequest('message.timestamp must be an ISO 8601 date-time', [
      { field: 'message.timestamp', message: 'not a date-time' },
    ]);
  }
  return message;
}

/**
 * One entry for a direct or role target. `dedupeKey` is the message id when the sender chose
 * it, and null when the server generated it (a fresh UUID repeats nothing).
 */
export function buildEntry(
  message: Message,
  target: Exclude<ParsedTarget, { kind: 'broadcast' }>,
  input: Pick<EnqueueInput, 'delayMs' | 'maxAttempts'>,
  defaults: EntryDefaults,
  dedupeKey: string | null,
): NewEntry {
  return {
    message,
    messageJson: JSON.stringify(message),
    routeKind: target.kind,
    routeKey: target.key,
    dedupeKey,
    priority: PRIORITY_RANK[message.priority],
    availableAt: defaults.now + (input.delayMs ?? 0),
    expiresAt: message.ttlMs === undefined ? null : Date.parse(message.timestamp) + message.ttlMs,
    maxAttempts: input.maxAttempts ?? defaults.defaultMaxAttempts,
    requireRegistered: target.kind === 'agent',
  };
}

/**
 * Fan-out copies (broadcast, publish): one per agent, each addressed to that agent alone, with
 * a dedupe key per copy so the same message id reaches every agent once.
 */
export function buildCopies(
  message: Message,
  agentIds: string[],
  input: Pick<EnqueueInput, 'delayMs' | 'maxAttempts'>,
  defaults: EntryDefaults,
  senderChoseId: boolean,
): NewEntry[] {
  return agentIds.map((agentId) =>
    buildEntry(
      message,
      { kind: 'agent', key: agentId },
      input,
      defaults,
      // NUL cannot appear in a message id, so no chosen id can collide with a copy's key.
      senderChoseId ? `${message.id}\u0000${agentId}` : null,
    ),
  );
}

export function targetOf(input: EnqueueInput): ParsedTarget {
  return parseTarget(input.message.target);
}
