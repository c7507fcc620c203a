// One server per store file. The live index (live-index.ts) holds the leases and the claim
// order in memory, so a second process serving the same file would hand out the same messages
// twice and keep counts the first one never sees. A lock file next to the database names the
// owning process; a lock left by a process that is gone (kill -9, a crash) is taken over.

import fs from 'node:fs';

import { SwarmError } from '../../core/errors.ts';

/** Files this process has open: the pid check alone cannot tell two stores in one process. */
const heldHere = new Set<string>();

export class OwnerLock {
  private released = false;

  private constructor(readonly file: string) {}

  static acquire(databaseFile: string): OwnerLock {
    const file = `${databaseFile}.lock`;
    if (heldHere.has(file)) throw inUse(databaseFile, process.pid);

    for (let attempt = 0; attempt < 3; attempt += 1) {
      try {
        const fd = fs.openSync(file, 'wx', 0o600);
        fs.writeSync(fd, `${process.pid}\n`);
        fs.closeSync(fd);
        heldHere.add(file);
        return new OwnerLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }

      const owner = readOwner(file);
      // Our own pid in a lock we do not hold: a container restarted as pid 1 on the same
      // volume. Anything else alive is a real second server.
      if (owner !== null && owner !== process.pid && isAlive(owner)) {
        throw inUse(databaseFile, owner);
      }
      fs.rmSync(file, { force: true });
    }
    throw inUse(databaseFile, readOwner(file) ?? 0);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    heldHere.delete(this.file);
    fs.rmSync(this.file, { force: true });
  }
}

function readOwner(file: string): number | null {
  try {
    const pid = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function inUse(databaseFile: string, pid: number): SwarmError {
  return new SwarmError(
    'unavailable',
    `the store ${databaseFile} is in use by another server (pid ${pid}); stop it first, or set OWOKX_DATABASE_URL to another file`,
  );
}
