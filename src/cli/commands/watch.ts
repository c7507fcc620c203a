// `watch`: a live one-screen summary. On a terminal it redraws in place every --interval and
// quits on q or Ctrl-C; elsewhere (a pipe, a log) it prints one snapshot per interval.

import type { Command } from 'commander';
import { action, type CommandContext } from '../context.ts';
import { describeError, EXIT, type ExitCode } from '../exit.ts';
import { formatDuration } from '../format.ts';
import { positiveInteger } from '../options.ts';
import { renderScreen, takeSnapshot } from '../watch.ts';

interface WatchOptions {
  interval: number;
  once?: boolean;
}

// Alternate screen, cursor home and clear, hide and show the cursor.
const ENTER = '\x1b[?1049h\x1b[?25l';
const LEAVE = '\x1b[?25h\x1b[?1049l';
const HOME_CLEAR = '\x1b[H\x1b[2J';

export function registerWatch(program: Command): void {
  program
    .command('watch')
    .description('live summary of health, queue, dead letters, stale agents and rates (q quits)')
    .option('--interval <ms>', 'refresh every this many milliseconds', positiveInteger, 2000)
    .option('--once', 'print one snapshot and exit')
    .action(action('watch', 'read', (ctx, opts: WatchOptions) => watch(ctx, opts)));
}

async function watch(ctx: CommandContext, opts: WatchOptions): Promise<ExitCode> {
  const { out } = ctx;

  if (opts.once) {
    const snap = await takeSnapshot(ctx.client);
    if (ctx.json) out.line(JSON.stringify(snap));
    else out.line(renderScreen(out, snap, ctx.url, ''));
    return EXIT.ok;
  }

  const live = out.isTTY && !ctx.json && process.stdin.isTTY === true;
  let stopped = false;
  let wake: (() => void) | undefined;

  const stop = (): void => {
    stopped = true;
    wake?.();
  };

  if (live) {
    out.write(ENTER);
    process.stdin.setRawMode(true);
    process.stdin.resume();
    process.stdin.on('data', (key: Buffer) => {
      const k = key.toString();
      // q, Q, Ctrl-C, Esc: raw mode swallows SIGINT, so Ctrl-C arrives here as \x03.
      if (k === 'q' || k === 'Q' || k === '\x03' || k === '\x1b') stop();
    });
  }
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  try {
    while (!stopped) {
      const frame = await nextFrame(ctx, opts, live);

      if (live) out.write(`${HOME_CLEAR}${frame}\n`);
      else out.line(frame);

      if (stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, opts.interval);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    if (live) {
      process.stdin.setRawMode(false);
      process.stdin.pause();
      out.write(LEAVE);
    }
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }

  return EXIT.ok;
}

/** One frame; a failed refresh is shown on screen and retried, not fatal. */
async function nextFrame(ctx: CommandContext, opts: WatchOptions, live: boolean): Promise<string> {
  const footer = live ? `refreshing every ${formatDuration(opts.interval)} — q to quit` : '';

  try {
    const snap = await takeSnapshot(ctx.client);
    return ctx.json ? JSON.stringify(snap) : renderScreen(ctx.out, snap, ctx.url, footer);
  } catch (err) {
    const failure = describeError(err, ctx.call);
    if (ctx.json) return JSON.stringify({ at: Date.now(), error: failure.message });
    return `${ctx.out.c.red(failure.message)}\n${ctx.out.c.dim(`retrying in ${formatDuration(opts.interval)}`)}`;
  }
}
