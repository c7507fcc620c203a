// Comparing a run with the last recorded one. On a shared machine msg/s moves with the
// machine's speed from minute to minute; the server's CPU per message over the benchmark
// client's does not, so that ratio decides whether a change is the code: a slow minute is not
// reported as a regression, and a real regression still is.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compareWithRecorded, type WorkloadConfig } from '../../bench/lib/results.ts';
import { comparisonVerdict } from '../../bench/lib/verdicts.ts';

const WORKLOAD: WorkloadConfig = {
  messages: 100_000,
  agents: 5,
  enqueue: 'single',
  delivery: 'pull',
  batchSize: 500,
  concurrency: 16,
  rate: null,
  backlog: 0,
  pollLimit: 250,
  ownServer: true,
  dispatchLoop: true,
};

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'owokx-results-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function record(
  summary: Record<string, unknown>,
  runs: unknown = [],
  extra: Record<string, unknown> = {},
  name = 'then.json',
): void {
  const report = {
    config: { ...WORKLOAD, runs: 1 },
    summary: { endToEndUs: { p50: 4000, p99: 12_000 }, ...summary },
    runs,
    generatedAt: '2026-12-04T00:00:00.000Z',
    ...extra,
  };
  writeFileSync(path.join(dir, name), JSON.stringify(report));
}

const compare = (throughput: number, relativeServerCost: number | null) => {
  const c = compareWithRecorded(
    dir,
    WORKLOAD,
    { throughputPerSecond: throughput, p99Us: 12_000, relativeServerCost },
    dir,
  );
  if (c === null) throw new Error('no comparison');
  return c;
};

/** Whether any record is compared with a run of `workload`, whatever its numbers. */
const anyComparison = (workload: WorkloadConfig = WORKLOAD) =>
  compareWithRecorded(
    dir,
    workload,
    { throughputPerSecond: 1, p99Us: 1, relativeServerCost: null },
    dir,
  );

describe('the comparison with the last recorded run', () => {
  it('calls a drop in msg/s with the same server cost per message the machine, not a regression', () => {
    record({ avgThroughputPerSecond: 8000, relativeServerCost: 1.5 });

    const c = compare(6000, 1.45);

    expect(c.throughputChangePercent).toBeCloseTo(-25);
    expect(c.relativeServerCost?.changePercent).toBeCloseTo(-3.33, 1);
    const verdict = comparisonVerdict(c);
    expect(verdict.level).toBe('ok');
    expect(verdict.text).toContain('Throughput 25% below the last recorded run');
    expect(verdict.text).toContain(
      "1.45 times the benchmark's cost per message, against 1.50 then",
    );
    expect(verdict.text).toContain("any difference in msg/s is the machine's speed");
  });

  it('warns of a server that got dearer per message, even when msg/s held up', () => {
    record({ avgThroughputPerSecond: 8000, relativeServerCost: 1.4 });

    const c = compare(8100, 1.68);

    expect(c.relativeServerCost?.changePercent).toBeCloseTo(20);
    const verdict = comparisonVerdict(c);
    expect(verdict.level).toBe('warn');
    expect(verdict.text).toContain('Throughput within 5% of');
    expect(verdict.text).toContain('20% dearer per message than then');
  });

  it('reads the ratio from the CPU shares of a record made before it was stored', () => {
    record({ avgThroughputPerSecond: 8000, avgServerCpuPercent: 100, avgClientCpuPercent: 66 }, [
      { serverCpuPercent: 100, deliveryMs: 12_500 },
    ]);

    const c = compare(6000, 1.5);

    expect(c.relativeServerCost?.theirs).toBeCloseTo(100 / 66);
    expect(comparisonVerdict(c).level).toBe('ok');
  });

  it('compares raw msg/s with an old record whose runs were too short to time', () => {
    // 45 ms runs: 10 ms ticks of /proc would give the ratio to within a third.
    record({ avgThroughputPerSecond: 22_000, avgServerCpuPercent: 90, avgClientCpuPercent: 30 }, [
      { serverCpuPercent: 90, deliveryMs: 45 },
    ]);

    const c = compare(16_000, 1.5);

    expect(c.relativeServerCost).toBeNull();
    expect(comparisonVerdict(c).level).toBe('warn');
  });

  it('takes a stored null ratio as none, without falling back to the shares', () => {
    record({
      avgThroughputPerSecond: 8000,
      relativeServerCost: null,
      avgServerCpuPercent: 100,
      avgClientCpuPercent: 66,
    });

    expect(compare(6000, 1.5).relativeServerCost).toBeNull();
  });

  it('compares raw msg/s when a run measured no server CPU (a server elsewhere)', () => {
    record({ avgThroughputPerSecond: 8000, avgServerCpuPercent: null, avgClientCpuPercent: 40 });

    const c = compare(6000, null);

    expect(c.relativeServerCost).toBeNull();
    const verdict = comparisonVerdict(c);
    expect(verdict.level).toBe('warn');
    expect(verdict.text).toMatch(/^Throughput 25% below the last recorded run/);
  });

  it('has nothing to compare with when no run of the same workload is recorded', () => {
    record({ avgThroughputPerSecond: 8000, relativeServerCost: 1.5 });

    expect(anyComparison({ ...WORKLOAD, messages: 1000 })).toBeNull();
  });

  describe('with records that are not what they should be', () => {
    it.each([
      ['a ratio as a string', { relativeServerCost: '1.66' }, []],
      ['a ratio of true', { relativeServerCost: true }, []],
      ['a negative ratio', { relativeServerCost: -1.5 }, []],
      ['runs as null', { avgServerCpuPercent: 100, avgClientCpuPercent: 66 }, null],
      ['runs as an object', { avgServerCpuPercent: 100, avgClientCpuPercent: 66 }, {}],
      ['shares as strings', { avgServerCpuPercent: '63.5', avgClientCpuPercent: 40 }, []],
    ])('compares msg/s, without failing, against %s', (_what, summary, runs) => {
      record({ avgThroughputPerSecond: 8000, ...summary }, runs);

      const c = compare(6000, 1.5);

      expect(c.relativeServerCost).toBeNull();
      expect(comparisonVerdict(c).text).toMatch(/^Throughput 25% below/);
    });

    it('skips a record whose summary or throughput is not one', () => {
      record({ avgThroughputPerSecond: 'fast' });
      expect(anyComparison()).toBeNull();

      writeFileSync(
        path.join(dir, 'then.json'),
        JSON.stringify({ config: WORKLOAD, summary: 'oops', generatedAt: '2026-12-04' }),
      );
      expect(anyComparison()).toBeNull();
    });

    it('never takes a record dated in the future, or not dated at all, as the newest', () => {
      record({ avgThroughputPerSecond: 8000, relativeServerCost: 1.0 }, [], {}, 'real.json');
      record(
        { avgThroughputPerSecond: 8000, relativeServerCost: 100 },
        [],
        { generatedAt: '2099-01-01T00:00:00.000Z' },
        'future.json',
      );
      record(
        { avgThroughputPerSecond: 8000, relativeServerCost: 100 },
        [],
        { generatedAt: 'zzz' },
        'junk.json',
      );

      const c = compare(8000, 1.5);

      expect(c.file).toBe('real.json');
      expect(comparisonVerdict(c).level).toBe('warn');
    });

    it('falls back to msg/s when the two ratios are too far apart to be the same measure', () => {
      record({ avgThroughputPerSecond: 8000, relativeServerCost: 1e9 });

      const c = compare(6000, 1.5);

      expect(c.relativeServerCost).toBeNull();
      expect(comparisonVerdict(c).level).toBe('warn');
    });
  });

  it('keeps a profiled or re-tuned server, the plain client and PostgreSQL apart from the default', () => {
    record({ avgThroughputPerSecond: 8000, relativeServerCost: 1.5 });

    const changes: Partial<WorkloadConfig>[] = [
      { serverTuned: true },
      { plainClient: true },
      { store: 'postgres' },
    ];
    for (const changed of changes) {
      expect(anyComparison({ ...WORKLOAD, ...changed })).toBeNull();
    }
    // Records from before these keys existed are the default workload.
    expect(compare(8000, 1.5)).not.toBeNull();
  });
});
