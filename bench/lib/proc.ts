// What Linux says about a process: peak and current resident memory, and CPU time used.
// Read from /proc, so it costs one small file read and never disturbs the measured process.
// On other systems every reading is null and the report says "n/a".

import { readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export interface MemoryReading {
  /** VmHWM: the peak resident set since start (or since the last peak reset). */
  peakRssBytes: number;
  /** VmRSS: resident right now. */
  rssBytes: number;
}

function kbField(status: string, name: string): number | null {
  const match = new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
  return match ? Number(match[1]) * 1024 : null;
}

export function readMemory(pid: number): MemoryReading | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const peak = kbField(status, 'VmHWM');
    const rss = kbField(status, 'VmRSS');
    if (peak === null || rss === null) return null;
    return { peakRssBytes: peak, rssBytes: rss };
  } catch {
    return null;
  }
}

/**
 * Resets the kernel's peak-RSS mark (writing 5 to clear_refs, Linux 4.0+), so each run's
 * VmHWM is that run's own peak rather than the highest since the server started.
 * Returns false where that is not allowed; the caller then reports the process-wide peak.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

// USER_HZ is 100 on every Linux build that matters; /proc reports CPU time in those ticks.
const TICKS_PER_SECOND = 100;

/**
 * User + system CPU time of a process (all its threads), or of one of its threads, in ms.
 * A Node process's main thread has the process's id.
 */
export function readCpuMs(pid: number, thread?: number): number | null {
  try {
    const file = thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`;
    const stat = readFileSync(file, 'utf8');

    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;

    return ((utime + stime) * 1000) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/**
 * CPU time every process on the machine has used (busy ticks of /proc/stat), in ms. The
 * share not used by us or our server during a run is other load, which lowers our numbers.
 */
export function readSystemBusyMs(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    const busy = [user, nice, system, irq, softirq, steal].reduce<number>(
      (s, v) => s + (v ?? 0),
      0,
    );
    return Number.isFinite(busy) ? (busy * 1000) / TICKS_PER_SECOND : null;
  } catch {
    return null;
  }
}

/** This process's CPU time in milliseconds, from Node itself (every thread). */
export function selfCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

export interface CpuShares {
  /** Each in percent of one core over the metered span. */
  server: number | null;
  client: number;
  other: number | null;
  /**
   * The server's main thread, in ms over the span: the thread every request runs on, so the
   * one that sets the server's capacity (the others checkpoint the WAL and collect garbage).
   */
  serverMainMs: number | null;
  /** The raw CPU times behind `server` and `client`, in ms over the span. */
  serverMs: number | null;
  clientMs: number;
}

/**
 * Meters CPU from now until the returned function is called: our server, this process, and
 * everything else on the machine. Start and stop it tightly around the measured span; a
 * reading over a longer span than the wall time it is divided by overstates every share.
 */
export function startCpuMeter(pid: number | null): () => CpuShares {
  const startedAt = performance.now();
  const server0 = pid !== null ? readCpuMs(pid) : null;
  const main0 = pid !== null ? readCpuMs(pid, pid) : null;
  const client0 = selfCpuMs();
  const system0 = readSystemBusyMs();

  return () => {
    const wallMs = performance.now() - startedAt;
    const client = selfCpuMs() - client0;
    const server1 = pid !== null ? readCpuMs(pid) : null;
    const main1 = pid !== null ? readCpuMs(pid, pid) : null;
    const system1 = readSystemBusyMs();

    const server = server0 !== null && server1 !== null ? server1 - server0 : null;
    const other =
      system0 !== null && system1 !== null
        ? Math.max(0, system1 - system0 - client - (server ?? 0))
        : null;
    const share = (ms: number): number => (wallMs > 0 ? (ms / wallMs) * 100 : 0);

    return {
      server: server === null ? null : share(server),
      client: share(client),
      other: other === null ? null : share(other),
      serverMainMs: main0 !== null && main1 !== null ? main1 - main0 : null,
      serverMs: server,
      clientMs: client,
    };
  };
}
