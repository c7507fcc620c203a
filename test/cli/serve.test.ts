// `swarmctl serve`: configuration errors exit 2 before anything listens; SIGTERM closes the
// server and exits 0.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { bundleServer } from '../../scripts/bundle.ts';
import { freePort, REPO, startServer, swarmctl, TOKEN_ENV } from './harness.ts';

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

  it('refuses, exit 2, a database it cannot open, leaving no generated tokens behind', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'owokx-serve-pg-'));
    try {
      const r = await swarmctl(['serve', '--port', '0', '--data-dir', dataDir], {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        env: { OWOKX_DATABASE_URL: 'postgres://owokx:secret@127.0.0.1:1/swarm' },
      });

      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        'OWOKX_DATABASE_URL: cannot open postgres://owokx@127.0.0.1:1/swarm',
      );
      expect(r.stderr).not.toContain('secret');
      expect(existsSync(path.join(dataDir, 'tokens.json'))).toBe(false);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
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

  it('refuses, exit 1, a second server on the store another one is serving', async () => {
    const server = await startServer();

    try {
      const r = await swarmctl(
        ['serve', '--port', '0', '--db', `sqlite:${path.join(server.dataDir, 'swarm.db')}`],
        { env: { OWOKX_API_TOKEN_ADMIN: 'admin-token-0123456789abcdef' } },
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('is in use by another server');
      // The first one is untouched.
      expect((await server.read.health()).status).toBe('ok');
    } finally {
      await server.stop();
    }
  });

  it('serves from the bundle npm start builds, on node alone', async () => {
    const bundle = await bundleServer(path.join('.tmp', `test-bundle-${process.pid}.mjs`));
    const port = await freePort();
    const dataDir = path.join(REPO, '.tmp', `test-bundle-${process.pid}`);
    const proc = spawn(
      process.execPath,
      [bundle, 'serve', '--port', String(port), '--db', `sqlite:${dataDir}/swarm.db`],
      { cwd: REPO, env: { ...process.env, ...TOKEN_ENV }, stdio: 'ignore' },
    );

    try {
      let ready = false;
      for (let i = 0; i < 100 && !ready; i += 1) {
        ready = await fetch(`http://127.0.0.1:${port}/ready`).then(
          (res) => res.ok,
          () => false,
        );
        if (!ready) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(ready).toBe(true);
    } finally {
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      await exited;
      for (const file of [bundle, `${bundle}.map`, dataDir]) {
        rmSync(file, { recursive: true, force: true });
      }
    }
  });
});
