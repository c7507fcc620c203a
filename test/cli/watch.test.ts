// `swarmctl watch`: one screen of health, queue, dead letters, stale agents and rates; a live
// redraw on a terminal that quits on q, one snapshot per interval in a pipe.

import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ANSI,
  BIN,
  cleanEnv,
  cliEnv,
  REPO,
  startServer,
  swarmctl,
  swarmctlOnTty,
  type TestServer,
} from './harness.ts';
import { enqueue, registerPullAgent, rejectAll } from './swarm.ts';

let server: TestServer;

beforeAll(async () => {
  server = await startServer();
  await registerPullAgent(server.agent, 'watch-1', 'worker');
  await enqueue(server.agent, 'watch-1', 2, 'quotes');
  await rejectAll(server.agent, 'watch-1', 2);
});

afterAll(async () => {
  await server?.stop();
});

describe('watch', () => {
  it('--once prints one screen with every section and exits 0', async () => {
    const r = await swarmctl(['watch', '--once'], { env: cliEnv(server) });

    expect(r.code).toBe(0);
    expect(r.stdout).toContain('DEGRADED');
    expect(r.stdout).toMatch(/agents\s+1 total/);
    expect(r.stdout).toMatch(/queue\s+0 queued/);
    expect(r.stdout).toMatch(/rates\s+/);
    expect(r.stdout).toContain('dead letters (2, oldest first)');
    expect(r.stdout).toContain('stale agents (0)');
    expect(r.stdout).not.toMatch(ANSI);
  });

  it('--once --json prints one snapshot document', async () => {
    const r = await swarmctl(['watch', '--once', '--json'], { env: cliEnv(server) });
    const snap = JSON.parse(r.stdout) as Record<string, unknown>;

    expect(Object.keys(snap).sort()).toEqual(
      ['at', 'deadLetters', 'health', 'metrics', 'staleAgents'].sort(),
    );
  });

  it('prints one snapshot per interval when stdout is a pipe, and stops on SIGINT', async () => {
    const child = spawn(process.execPath, [BIN, 'watch', '--interval', '300'], {
      cwd: REPO,
      env: cleanEnv(cliEnv(server)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });

    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const deadline = Date.now() + 15_000;
    while ((out.match(/owokx-swarm {2}http/g) ?? []).length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGINT');

    expect(await exited).toBe(0);
    expect((out.match(/owokx-swarm {2}http/g) ?? []).length).toBeGreaterThanOrEqual(2);
    expect(out).not.toMatch(ANSI);
  });

  it('redraws on a terminal and quits when q is pressed', async () => {
    const r = await swarmctlOnTty(['watch', '--interval', '200'], {
      env: cliEnv(server),
      input: { afterMs: 4000, text: 'q' },
    });

    expect(r.code).toBe(0);
    // The alternate screen was entered and left, so the operator's scrollback is untouched.
    expect(r.stdout).toContain('\x1b[?1049h');
    expect(r.stdout).toContain('\x1b[?1049l');
    expect(r.stdout).toContain('q to quit');
  });
});
