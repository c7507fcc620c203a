// A progress bar on stderr, only when stderr is a terminal and --json is off; otherwise every
// call is a no-op, so pipes and CI logs get no control characters. Updates come from a 100 ms
// timer in the run, never from the per-message path.

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
      format: '{label} [{bar}] {value}/{total} messages, {eta_formatted} left',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  let running = false;

  return {
    start(label, total) {
      if (running) bar.stop();
      bar.start(total, 0, { label });
      running = true;
    },
    update(value, total) {
      if (!running) return;
      if (total !== undefined) bar.setTotal(total);
      bar.update(value);
    },
    stop() {
      if (running) bar.stop();
      running = false;
    },
  };
}
