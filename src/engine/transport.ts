// Push delivery over HTTP: one keep-alive connection pool per process, a hard timeout per
// request, and every outcome reduced to "acknowledged" or a short, loggable error.

import { Agent, request } from 'undici';

import type { Delivery } from '../core/types.ts';

export interface PushOutcome {
  ok: boolean;
  error?: string;
}

export interface PushTransport {
  push(endpoint: string, deliveries: Delivery[], timeoutMs: number): Promise<PushOutcome>;
  close(): Promise<void>;
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
          body: JSON.stringify({ deliveries }),
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
          signal: AbortSignal.timeout(timeoutMs),
        });
        await response.body.dump();

        if (response.statusCode >= 200 && response.statusCode < 300) return { ok: true };
        return { ok: false, error: `push endpoint answered HTTP ${response.statusCode}` };
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
