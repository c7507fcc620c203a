// Comparing a run with the last recorded one: the machine probe takes the machine's speed out
// of the comparison, so a slow minute of a shared machine is not reported as a regression,
// and a real regression still is.

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

function record(name: string, throughput: number, probeUs: number | null): void {
  const report = {
    config: { ...WORKLOAD, runs: 1 },
    summary: { avgThroughputPerSecond: throughput, endToEndUs: { p50: 4000, p99: 12_000 } },
    generatedAt: '2026-12-04T00:00:00.000Z',
    ...(probeUs === null ? {} : { probe: { serverUsPerRequest: probeUs } }),
  };
  writeFileSync(path.join(dir, name), JSON.stringify(report));
}

const compare = (throughput: number, probeUs: number | null) =>
  compareWithRecorded(
    dir,
    WORKLOAD,
    { throughputPerSecond: throughput, p99Us: 12_000, probeUsPerRequest: probeUs },
    dir,
  );

describe('the comparison with the last recorded run', () => {
  it('calls a drop that the machine probe explains no regression', () => {
    record('then.json', 8000, 50);

    // 25% fewer msg/s in a minute when a bare request cost 30% more.
    const c = compare(6000, 65);

    expect(c?.throughputChangePercent).toBeCloseTo(-25);
    expect(c?.probeChangePercent).toBeCloseTo(30);
    expect(c?.adjustedChangePercent).toBeCloseTo(-2.5);
    const verdict = comparisonVerdict(c as NonNullable<typeof c>);
    expect(verdict.level).toBe('ok');
    expect(verdict.text).toContain('a bare request cost 30% more than then');
    expect(verdict.text).toContain("within 10% once the machine's speed is taken out");
  });

  it('still warns of a drop on a machine as fast as before', () => {
    record('then.json', 8000, 50);

    const c = compare(6000, 51);

    expect(c?.adjustedChangePercent).toBeCloseTo(-23.5);
    const verdict = comparisonVerdict(c as NonNullable<typeof c>);
    expect(verdict.level).toBe('warn');
    expect(verdict.text).toContain('the machine probe read the same as then');
    expect(verdict.text).toContain("24% below once the machine's speed is taken out");
  });

  it('compares raw throughput with a record made before the probe existed', () => {
    record('old.json', 8000, null);

    const c = compare(6000, 65);

    expect(c?.probeUsPerRequest).toBeNull();
    expect(c?.adjustedChangePercent).toBeNull();
    const verdict = comparisonVerdict(c as NonNullable<typeof c>);
    expect(verdict).toMatchObject({ level: 'warn' });
    expect(verdict.text).toMatch(/^Throughput 25% below the last recorded run/);
  });

  it('has nothing to compare with when no run of the same workload is recorded', () => {
    record('other.json', 8000, 50);
    expect(compare(6000, 50)).not.toBeNull();
    expect(
      compareWithRecorded(
        dir,
        { ...WORKLOAD, messages: 1000 },
        { throughputPerSecond: 1, p99Us: 1, probeUsPerRequest: null },
        dir,
      ),
    ).toBeNull();
  });
});
