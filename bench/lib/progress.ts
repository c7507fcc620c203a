// A progress bar on stderr, only when stderr is a terminal and --json is off; otherwise every
// call is a no-op, so pipes and CI logs get no control characters. Updates come from a 100 ms
// timer in the run, never from the per-message path.

import { performance } from 'node:perf_hooks';
import cliProgress from 'cli-progress';

export interface Progress {
  start(label: string, total: number): void;
  update(value: number, total?: number): void;
  stop(): void;
}

const NONE: Progress = { start() {}, update() {}, stop() {} };

export function createProgress(enabled: boolean): Progress {
  if (!enabled) return NONE;

  const bar = new cliProgress.SingleBar(
    {
      // Our own rate, not cli-progress's ETA, which reads "NF" until the first ack arrives.
      format: '{label} [{bar}] {value}/{total} messages, {rate} msg/s',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  let running = false;
  let startedAt = 0;

  return {
    start(label, total) {
      if (running) bar.stop();
      bar.start(total, 0, { label, rate: 0 });
      startedAt = performance.now();
      running = true;
    },
    update(value, total) {
      if (!running) return;
      if (total !== undefined) bar.setTotal(total);
      const seconds = (performance.now() - startedAt) / 1000;
      const rate = seconds > 0 ? Math.round(value / seconds).toLocaleString('en-US') : '0';
      bar.update(value, { rate });
    },
    stop() {
      if (running) bar.stop();
      running = false;
    },
  };
}
