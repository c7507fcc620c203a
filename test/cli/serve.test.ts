// `swarmctl serve`: configuration errors exit 2 before anything listens; SIGTERM closes the
// server and exits 0.

import { describe, expect, it } from 'vitest';
import { startServer, swarmctl } from './harness.ts';

describe('serve', () => {
  it('exits 2 with the config message for a bad flag value', async () => {
    const r = await swarmctl(['serve', '--port', 'eighty']);

    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--port must be an integer from 0 to 65535 (got "eighty")');
  });

  it('exits 2 for a bad environment value, naming the variable', async () => {
    const r = await swarmctl(['serve'], { env: { OWOKX_STALE_AFTER_MS: '10' } });

    expect(r.code).toBe(2);
    expect(r.stderr).toContain('OWOKX_STALE_AFTER_MS');
  });

  it('refuses, exit 2, to serve a public address without tokens', async () => {
    const r = await swarmctl([
      'serve',
      '--host',
      '0.0.0.0',
      '--port',
      '0',
      '--db',
      'sqlite::memory:',
    ]);

    expect(r.code).toBe(2);
    expect(r.stderr).toContain('not a loopback address');
  });

  it('closes and exits 0 on SIGTERM', async () => {
    const server = await startServer();

    expect(await server.stop()).toBe(0);
  });

  it('exits 1 when the port is already taken', async () => {
    const server = await startServer();

    try {
      const r = await swarmctl(
        ['serve', '--port', String(server.port), '--db', 'sqlite::memory:'],
        {
          env: { OWOKX_API_TOKEN_ADMIN: 'admin-token-0123456789abcdef' },
        },
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('already in use');
    } finally {
      await server.stop();
    }
  });
});
