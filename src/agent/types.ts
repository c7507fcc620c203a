// What an agent's code sees of a delivery, and how it tells the SDK a failure is final.

import type { Message } from '../core/types.ts';

export interface DeliveryContext {
  queueId: string;
  /** 1 on the first delivery, counting every earlier failed or expired attempt. */
  attempt: number;
  /** When the lease ends; the entry is delivered again after that unless acknowledged. */
  leaseExpiresAt: number;
  /** `pull` when the agent polled for it, `push` when the dispatcher POSTed it. */
  mode: 'pull' | 'push';
  /** The agent's id, e.g. to use as `source` when replying. */
  agentId: string;
}

/**
 * Handles one message. Returning (or resolving) acknowledges it; throwing fails the attempt.
 * Throw an error with `retry: false` (see PermanentError) to dead-letter it at once, and with
 * `delayMs` to choose the retry delay instead of the server's backoff.
 */
export type MessageHandler = (message: Message, context: DeliveryContext) => unknown;

/** A failure that retrying cannot fix: the message goes to the dead-letter queue as `rejected`. */
export class PermanentError extends Error {
  readonly retry = false;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PermanentError';
  }
}

/** How a thrown value asks to be treated: retry or not, after what delay, with what text. */
export function failureOf(err: unknown): { error: string; retry: boolean; delayMs?: number } {
  const e = err as { message?: unknown; retry?: unknown; delayMs?: unknown } | null;
  const text = typeof e?.message === 'string' && e.message !== '' ? e.message : String(err);
  const delayMs =
    typeof e?.delayMs === 'number' && Number.isSafeInteger(e.delayMs) && e.delayMs >= 0
      ? e.delayMs
      : undefined;

  // The stored lastError is for operators, not for stack traces: keep it short.
  const error = text.length > 500 ? `${text.slice(0, 497)}...` : text;
  return { error, retry: e?.retry !== false, delayMs };
}

/** Optional sink for what the SDK does in the background (re-registering, failed calls). */
export type AgentLogger = (
  level: 'debug' | 'info' | 'warn' | 'error',
  message: string,
  fields?: Record<string, unknown>,
) => void;
