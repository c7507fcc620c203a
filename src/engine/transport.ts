// Push delivery over HTTP: one keep-alive connection pool per process, a hard timeout per
// request, and every outcome reduced to "acknowledged" or a short, loggable error.

import { Agent, request } from 'undici';

import { type Delivery, deliveryJson } from '../core/types.ts';

export interface PushOutcome {
  ok: boolean;
  error?: string;
}

export interface PushTransport {
  push(endpoint: string, deliveries: Delivery[], timeoutMs: number): Promise<PushOutcome>;
  close(): Promise<void>;
}

const MAX_ERROR_TEXT = 2048;

/** `: <message>` from an error body in the contract's shape, or from plain text. */
function describe(text: string): string {
  if (text.trim() === '') return '';
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
    const message =
      typeof body.error === 'string'
        ? body.error
        : (body.error?.message ?? body.message ?? undefined);
    if (typeof message === 'string') return `: ${message.slice(0, 500)}`;
  } catch {
    // Not JSON: the text itself says it.
  }
  return `: ${text.trim().slice(0, 500)}`;
}

export function createHttpTransport(): PushTransport {
  // Connections to an agent are reused across passes; a new TCP handshake per batch would
  // cost more than the batch on loopback.
  const pool = new Agent({ keepAliveTimeout: 10_000, connections: 16 });

  return {
    async push(endpoint, deliveries, timeoutMs) {
      try {
        const response = await request(endpoint, {
          method: 'POST',
          dispatcher: pool,
          headers: { 'content-type': 'application/json' },
          body: `{"deliveries":[${deliveries.map(deliveryJson).join(',')}]}`,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
          signal: AbortSignal.timeout(timeoutMs),
        });
        if (response.statusCode >= 200 && response.statusCode < 300) {
          await response.body.dump();
          return { ok: true };
        }

        // The agent's own words about the failure are what an operator needs in lastError.
        const text = (await response.body.text()).slice(0, MAX_ERROR_TEXT);
        return {
          ok: false,
          error: `push endpoint answered HTTP ${response.statusCode}${describe(text)}`,
        };
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        return { ok: false, error: `push failed: ${reason}` };
      }
    },

    async close() {
      await pool.close();
    },
  };
}
