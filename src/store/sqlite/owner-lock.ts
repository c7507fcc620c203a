// One server per store file. The live index (live-index.ts) holds the leases and the claim
// order in memory, so a second process serving the same file would hand out the same messages
// twice and keep counts the first one never sees.
//
// The lock is an exclusive SQLite transaction held open, for the life of the store, on a small
// file next to the database. SQLite takes it with a POSIX record lock, which the kernel drops
// when the process ends however it ends (kill -9 included), and which two processes cannot
// both win: a pid file checked and rewritten by hand could be taken over by two restarting
// servers at once. The lock file is named from the database's real path, so a symlink to the
// database finds the same lock. (A hard link does not: it is another name for the same file
// that no path comparison can see.) The owner's pid is written beside it, for the message.

import fs from 'node:fs';
import path from 'node:path';

import Database from 'better-sqlite3';

import { SwarmError } from '../../core/errors.ts';

/** Files this process has open: the kernel lets one process take its own lock twice. */
const heldHere = new Set<string>();

export class OwnerLock {
  private released = false;

  private constructor(
    private readonly lockFile: string,
    private readonly db: Database.Database,
  ) {}

  static acquire(databaseFile: string): OwnerLock {
    const real = realPath(databaseFile);
    const lockFile = `${real}.lock`;
    const pidFile = `${real}.owner`;
    if (heldHere.has(lockFile)) throw inUse(databaseFile, process.pid);

    let db: Database.Database;
    try {
      db = lock(lockFile);
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
        throw inUse(databaseFile, readOwner(pidFile));
      }
      if (!code.startsWith('SQLITE_NOTADB')) throw err;
      // Something else wrote that name (an earlier lock format): it is no lock of ours.
      fs.rmSync(lockFile, { force: true });
      db = lock(lockFile);
    }

    heldHere.add(lockFile);
    try {
      fs.writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
    } catch {
      // Only the message of a refused second server reads it.
    }
    return new OwnerLock(lockFile, db);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    heldHere.delete(this.lockFile);
    try {
      this.db.exec('ROLLBACK');
    } finally {
      this.db.close();
    }
  }
}

function lock(lockFile: string): Database.Database {
  const db = new Database(lockFile);
  try {
    db.pragma('busy_timeout = 0');
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** The database's real path; for a file not created yet, its directory's real path. */
function realPath(file: string): string {
  const absolute = path.resolve(file);
  try {
    return fs.realpathSync(absolute);
  } catch {
    return path.join(fs.realpathSync(path.dirname(absolute)), path.basename(absolute));
  }
}

function readOwner(pidFile: string): number | null {
  try {
    const pid = Number.parseInt(fs.readFileSync(pidFile, 'utf8').trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function inUse(databaseFile: string, pid: number | null): SwarmError {
  const owner = pid === null ? '' : ` (pid ${pid})`;
  return new SwarmError(
    'unavailable',
    `the store ${databaseFile} is in use by another server${owner}; stop it first, or set OWOKX_DATABASE_URL to another file`,
  );
}
