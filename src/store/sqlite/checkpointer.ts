// WAL checkpoints off the event loop. With synchronous=NORMAL a commit never waits for the
// disk, but a checkpoint does (it fsyncs the database file), and SQLite runs it inside the
// commit that crosses wal_autocheckpoint: measured here, one-row commits ran at 17,000/s
// with it and 30,000/s without, the difference being the main thread blocked in fsync. So the
// serving connection never checkpoints, and a worker thread with its own connection does,
// PASSIVE (it never blocks a writer), every interval.

import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// Plain JavaScript evaluated in the worker: it must load without the TypeScript loader.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
  }
}, workerData.intervalMs);
parentPort.on('message', (message) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  try { db.pragma('wal_checkpoint(PASSIVE)'); } finally { db.close(); }
  parentPort.postMessage({ stopped: true });
});
`;

export class Checkpointer {
  private readonly worker: Worker;
  private stopped: Promise<void> | null = null;

  constructor(file: string, intervalMs: number, onError: (message: string) => void) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { file, intervalMs, driver },
    });
    this.worker.unref();
    this.worker.on('message', (message: { error?: string }) => {
      if (message.error !== undefined) onError(message.error);
    });
    this.worker.on('error', (err) => onError(err.message));
  }

  /** Runs a last checkpoint and closes the worker's connection. */
  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      const done = () => {
        void this.worker.terminate().finally(resolve);
      };
      this.worker.once('message', done);
      this.worker.once('exit', () => resolve());
      this.worker.postMessage('stop');
      // A worker that cannot answer must not hold shutdown.
      setTimeout(done, 2000).unref();
    });
    return this.stopped;
  }
}
