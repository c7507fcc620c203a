// The release benchmark, run small against its own freshly started coordinator: every
// enqueue and delivery mode delivers everything, dead-letters nothing, and prints the JSON
// keys that scripts written for the original owokx benchmark read. No timing is asserted:
// performance is measured by the benchmark itself, never by tests.

import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../bench/swarm.ts';

let written: string[] = [];

beforeEach(() => {
  written = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
});

afterEach(() => {
  vi.restoreAllMocks();
});

interface Report {
  config: Record<string, unknown>;
  summary: Record<string, unknown> & { allDelivered: boolean; totalDelivered: number };
  runs: Record<string, unknown>[];
  verdicts: { level: string; text: string }[];
}

async function bench(args: string[]): Promise<{ code: number; report: Report }> {
  // A short timed warm-up: the path runs, without the default's ten seconds per test.
  const code = await main([
    '--messages',
    '200',
    '--agents',
    '2',
    '--runs',
    '1',
    '--warmup-ms',
    '500',
    '--json',
    ...args,
  ]);
  return { code, report: JSON.parse(written.join('')) as Report };
}

describe('the swarm benchmark', () => {
  it.each([
    ['single', 'pull'],
    ['batch', 'pull'],
    ['single', 'push'],
    ['batch', 'push'],
  ])(
    'delivers all 200 messages with %s enqueue and %s delivery, and dead-letters none',
    async (enqueue, delivery) => {
      const { code, report } = await bench(['--enqueue', enqueue, '--delivery', delivery]);

      expect(code).toBe(0);
      expect(report.config).toMatchObject({ messages: 200, agents: 2, enqueue, delivery });
      expect(report.summary.allDelivered).toBe(true);
      expect(report.summary.totalDelivered).toBe(200);

      for (const key of [
        'avgThroughputPerSecond',
        'avgBatchLatencyP50',
        'avgBatchLatencyP95',
        'avgBatchLatencyP99',
      ]) {
        expect(typeof report.summary[key], key).toBe('number');
      }

      expect(report.runs).toHaveLength(1);
      expect(report.runs[0]).toMatchObject({ delivered: 200, deadLettered: 0 });
      expect(report.runs[0]).toHaveProperty('queuedAfterDispatch', 0);
      expect(report.verdicts.some((v) => v.level === 'fail')).toBe(false);
    },
    120_000,
  );

  it("sets the server's CPU per message against the benchmark's own", async () => {
    // Enough messages for over 500 ms of server CPU, which /proc's 10 ms ticks can read.
    const { code, report } = await bench(['--enqueue', 'single', '--messages', '8000']);

    expect(code).toBe(0);
    const run = report.runs[0] as Record<string, number>;
    for (const key of ['serverUsPerMessage', 'serverMainUsPerMessage', 'clientUsPerMessage']) {
      expect(run[key], key).toBeGreaterThan(0);
    }
    // The main thread is one of the server's threads.
    expect(run.serverMainUsPerMessage).toBeLessThanOrEqual(run.serverUsPerMessage as number);

    const ratio = report.summary.relativeServerCost as number;
    expect(ratio).toBeCloseTo(
      (report.summary.avgServerUsPerMessage as number) /
        (report.summary.avgClientUsPerMessage as number),
    );
    const line = report.verdicts.find((v) => v.text.startsWith('Per message the server spent'));
    expect(line?.level).toBe('info');
    expect(line?.text).toContain(`${ratio.toFixed(2)} times the benchmark's cost`);
  }, 120_000);

  it('gives no ratio for runs too short for /proc to time', async () => {
    const { code, report } = await bench(['--enqueue', 'batch']);

    expect(code).toBe(0);
    expect(report.runs[0]?.serverUsPerMessage).toBeGreaterThan(0);
    expect(report.summary.relativeServerCost).toBeNull();
    expect(report.verdicts.some((v) => v.text.startsWith('Per message'))).toBe(false);
  }, 120_000);

  it('exits 3, as for an unreachable server, when --base-url is not a coordinator', async () => {
    const other = createServer((_req, res) => res.writeHead(404).end('not here'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const { port } = other.address() as AddressInfo;

    try {
      const code = await main([
        '--base-url',
        `http://127.0.0.1:${port}`,
        '--token',
        'whatever',
        '--messages',
        '10',
        '--runs',
        '1',
      ]);
      expect(code).toBe(3);
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
  });

  it('ends the run at once, and says so, when its own server dies', async () => {
    const errors: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      errors.push(String(chunk));
      return true;
    });

    // Kill -9 our coordinator, a child of this process, once it has had the time to start
    // (about two seconds here, eight allowed) and the run is under way.
    const started = Date.now();
    const killer = setInterval(() => {
      if (Date.now() - started < 8000) return;
      for (const pid of childServers()) {
        process.kill(pid, 'SIGKILL');
        clearInterval(killer);
      }
    }, 250);

    try {
      const code = await main([
        '--messages',
        '400000',
        '--enqueue',
        'single',
        '--runs',
        '1',
        '--warmup',
        '0',
        '--json',
      ]);
      expect(code).toBe(3);
    } finally {
      clearInterval(killer);
    }

    // Its deadline was 60 s + 2 ms per message: 860 s.
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(errors.join('')).toContain(
      'error: our own coordinator exited during the benchmark (signal SIGKILL)',
    );
  }, 120_000);

  it('rejects an unknown mode as a usage error, before starting anything', async () => {
    expect(await main(['--enqueue', 'bulk'])).toBe(2);
    expect(await main(['--messages', '0'])).toBe(2);
  });

  it('answers --help with exit code 0', async () => {
    expect(await main(['--help'])).toBe(0);
    expect(written.join('')).toContain('--messages');
  });
});

/** The pids of `swarmctl serve` processes that this process started. */
function childServers(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (ppid === process.pid && cmdline.includes('serve')) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}
