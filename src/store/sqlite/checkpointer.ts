// WAL checkpoints off the event loop. With synchronous=NORMAL a commit never waits for the
// disk, but a checkpoint does (it fsyncs the database file), and SQLite runs it inside the
// commit that crosses wal_autocheckpoint: measured here, one-row commits ran at 17,000/s
// with it and 30,000/s without, the difference being the main thread blocked in fsync. So the
// serving connection never checkpoints, and a worker thread with its own connection does,
// PASSIVE (it never blocks a writer), every interval.
//
// A checkpoint alone does not shrink the WAL. SQLite goes back to the start of the file only
// when a write transaction begins with every frame already copied back, and under a steady
// load some commit always lands while the worker copies: the 100k-message benchmark left a
// 444 MB WAL, and a sustained load grows it without end. Appending to a growing file also
// costs more than overwriting one (7-8 µs per frame against 4-5 µs, measured here), and a
// commit writes ~9 frames. So once the WAL passes resetBytes:
//   1. the worker copies again what was written during its last pass, until a pass is short
//      (under 50 ms: the held pass then has about that much to copy);
//   2. it asks the store to hold its group commits (enqueues and acks), which blocks no
//      thread: requests are still read and answered, only those commits wait;
//   3. it copies what landed since the last pass (PASSIVE, still without the write lock),
//      then checkpoints FULL, waiting at most 50 ms: that takes the write lock, so no other
//      write (a heartbeat, a nack, a sweep) can land before it ends, and it finds nothing
//      left to copy. When the lock or a reader stays busy it does what PASSIVE would, and
//      the worker tries again next interval;
//   4. it lets go. The next commit starts the WAL over and journal_size_limit truncates it.
// A write that is not a group commit and comes during the FULL pass waits for it in SQLite's
// busy handler, on the event loop: about a millisecond, as the copy and its syncs are done
// before the lock is taken. A WAL file far past the limit (a long reader kept it from starting
// over) is truncated by the worker in step 3 (TRUNCATE), since shrinking a file of gigabytes
// took ~0.9 s here, too long for the event loop.

import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// Plain JavaScript evaluated in the worker: it must load without the TypeScript loader.
const WORKER_SOURCE = `
const fs = require('node:fs');
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
const WAIT = 'busy_timeout = 5000';
db.pragma(WAIT);
const frameBytes = db.pragma('page_size', { simple: true }) + 24;
const CATCH_UP_PASSES = 5;
// The held pass copies about what one pass took to write: hold once a pass is this short.
const SHORT_PASS_MS = 50;
const HELD_WAIT_MS = 50;
const MAX_SLOW_INTERVALS = 10;
let holding = false;
let slowIntervals = 0;

function checkpoint(mode) {
  try {
    const [result] = db.pragma('wal_checkpoint(' + mode + ')');
    return result;
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
    return null;
  }
}

function walFileBytes() {
  try {
    return fs.statSync(workerData.file + '-wal').size;
  } catch {
    return 0;
  }
}

const timer = setInterval(() => {
  if (holding) return;
  const result = checkpoint('PASSIVE');
  if (!result || result.log * frameBytes < workerData.resetBytes) return;

  // The held pass copies what the last pass left: hold once a pass was short, so the hold is
  // too. Writes that outrun the copy (a slow disk, the backlog a long reader left) would keep
  // every pass long; after some intervals of that, hold anyway, which lets the copy catch up.
  let short = false;
  for (let pass = 0; pass < CATCH_UP_PASSES && !short; pass += 1) {
    const started = performance.now();
    checkpoint('PASSIVE');
    short = performance.now() - started < SHORT_PASS_MS;
  }
  slowIntervals = short ? 0 : slowIntervals + 1;
  if (!short && slowIntervals < MAX_SLOW_INTERVALS) return;

  slowIntervals = 0;
  holding = true;
  parentPort.postMessage({ hold: true });
}, workerData.intervalMs);

parentPort.on('message', (message) => {
  if (message === 'held') {
    const walBytes = walFileBytes();
    const mode = walBytes > 2 * workerData.resetBytes ? 'TRUNCATE' : 'FULL';
    const started = performance.now();
    // First without the write lock: what landed since the last pass is copied and synced
    // (100-250 ms measured under batch load at 1M queued, nearly all of it the syncs) while
    // heartbeats and other single writes still commit. Only then the pass that takes the lock,
    // which finds nothing left to copy: a write waiting for it on the event loop waits ~1 ms.
    checkpoint('PASSIVE');
    const copyMs = performance.now() - started;
    // Long enough to get the write lock between two of the store's own short transactions;
    // short enough that a reader which never ends costs one brief try per interval.
    db.pragma('busy_timeout = ' + HELD_WAIT_MS);
    const locked = performance.now();
    const result = checkpoint(mode);
    const lockedMs = performance.now() - locked;
    db.pragma(WAIT);
    holding = false;
    parentPort.postMessage({
      release: true,
      pass: { mode, copyMs, lockedMs, walBytes, frames: result ? result.log : 0 },
    });
    return;
  }
  if (message !== 'stop') return;
  clearInterval(timer);
  try { db.pragma('wal_checkpoint(PASSIVE)'); } finally { db.close(); }
  parentPort.postMessage({ stopped: true });
});
`;

/** What the store does when the worker asks it to hold, and when it lets go. */
export interface CommitHold {
  hold(): void;
  release(): void;
}

export interface CheckpointerOptions {
  intervalMs: number;
  /** A WAL at least this large is started over; see the top of this file. */
  resetBytes: number;
  onError: (message: string) => void;
  /** A hold that lasted LONG_HOLD_MS or more, in words for the log. */
  onLongHold?: (message: string) => void;
  commits: CommitHold;
}

/**
 * A hold the worker never ends ends by itself after this. A worker that dies ends its hold at
 * once (see exited()); this is for one stuck on the disk, which then holds SQLite's write lock
 * too, so ending the hold sooner would only turn waiting commits into SQLITE_BUSY refusals.
 */
const MAX_HOLD_MS = 5_000;
/**
 * A hold past this is logged at warn: enqueues and acks waited through it. Holds of 100-250 ms
 * are usual under a heavy batch load on a slow disk (the syncs of the last copy), and are
 * not worth a warning each; half a second is.
 */
export const LONG_HOLD_MS = 500;
/** A worker that dies is started again after 1 s, then 2, 4... up to this, while it keeps dying. */
const MAX_RESTART_DELAY_MS = 60_000;
/** A worker that ran this long before it died is restarted after the shortest delay again. */
const STEADY_MS = 60_000;

/** The held pass, as the worker reports it. */
interface HeldPass {
  mode: 'FULL' | 'TRUNCATE';
  /** The unlocked pass that copies what landed since the last one. */
  copyMs: number;
  /** The pass under the write lock, which other writes wait for on the event loop. */
  lockedMs: number;
  walBytes: number;
  /** Frames in the WAL when it was copied back. */
  frames: number;
}

interface WorkerMessage {
  error?: string;
  hold?: boolean;
  release?: boolean;
  pass?: HeldPass;
  stopped?: boolean;
}

export class Checkpointer {
  private readonly file: string;
  private readonly options: CheckpointerOptions;
  private worker: Worker;
  private running = false;
  private startedAt = 0;
  private deaths = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private holdTimer: NodeJS.Timeout | null = null;
  private heldSince = 0;
  private stopped: Promise<void> | null = null;

  constructor(file: string, options: CheckpointerOptions) {
    this.file = file;
    this.options = options;
    this.worker = this.start();
  }

  /** Runs a last checkpoint and closes the worker's connection. */
  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      if (this.restartTimer !== null) clearTimeout(this.restartTimer);
      this.release();
      if (!this.running) {
        resolve();
        return;
      }

      const worker = this.worker;
      const done = () => {
        void worker.terminate().finally(resolve);
      };
      worker.on('message', (message: WorkerMessage) => {
        if (message.stopped === true) done();
      });
      worker.once('exit', () => resolve());
      worker.postMessage('stop');
      // A worker that cannot answer must not hold shutdown.
      setTimeout(done, 2000).unref();
    });
    return this.stopped;
  }

  private start(): Worker {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        file: this.file,
        intervalMs: this.options.intervalMs,
        resetBytes: this.options.resetBytes,
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
      },
    });
    worker.unref();
    worker.on('message', (message: WorkerMessage) => this.received(message));
    worker.on('error', (err) => this.options.onError(err.message));
    worker.on('exit', (code) => this.exited(worker, code));
    this.running = true;
    this.startedAt = Date.now();
    return worker;
  }

  private received(message: WorkerMessage): void {
    if (message.error !== undefined) this.options.onError(message.error);
    if (message.hold === true) this.hold();
    if (message.release === true) {
      const heldMs = this.holdTimer === null ? 0 : performance.now() - this.heldSince;
      this.release();
      if (message.pass !== undefined && heldMs >= LONG_HOLD_MS) this.longHold(heldMs, message.pass);
    }
  }

  private longHold(heldMs: number, pass: HeldPass): void {
    const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
    this.options.onLongHold?.(
      `starting the WAL over held enqueue and ack commits for ${heldMs.toFixed(0)} ms: the last ` +
        `copy took ${pass.copyMs.toFixed(0)} ms and the ${pass.mode} pass under the write lock ` +
        `${pass.lockedMs.toFixed(0)} ms (${pass.frames} frames, WAL file ${mib(pass.walBytes)})`,
    );
  }

  /**
   * Without its worker nothing checkpoints, and the WAL grows until the disk is full: a worker
   * that dies is started again, ever more slowly while it keeps dying at once.
   */
  private exited(worker: Worker, code: number): void {
    if (worker !== this.worker) return;
    this.running = false;
    this.release();
    if (this.stopped !== null) return;

    if (Date.now() - this.startedAt >= STEADY_MS) this.deaths = 0;
    const delay = Math.min(MAX_RESTART_DELAY_MS, 1000 * 2 ** this.deaths);
    this.deaths += 1;
    this.options.onError(
      `the checkpoint worker exited (code ${code}); restarting it in ${delay} ms`,
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopped === null) this.worker = this.start();
    }, delay);
    this.restartTimer.unref();
  }

  private hold(): void {
    if (this.stopped !== null) return;

    // This runs between two turns of the event loop, so no transaction is open: from here on
    // the store starts none of its group commits until release().
    if (this.holdTimer === null) {
      this.options.commits.hold();
      this.heldSince = performance.now();
      this.holdTimer = setTimeout(() => this.release(), MAX_HOLD_MS);
      this.holdTimer.unref();
    }
    // Answered even when already holding: the worker waits for this before it checkpoints again.
    this.worker.postMessage('held');
  }

  private release(): void {
    if (this.holdTimer === null) return;

    clearTimeout(this.holdTimer);
    this.holdTimer = null;
    this.options.commits.release();
  }
}
