// Where the server's time goes. With --profile <dir>, our own server runs under
// `node --cpu-prof`; when it exits, its .cpuprofile is read here and summarised three ways:
// the functions that burn the most CPU themselves (self time), the same grouped by package or
// source file, and the project's own functions by inclusive time (what they cost with
// everything they call). Idle time is left out: it is the server waiting for us.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { TsxSourceMaps } from './sourcemap.ts';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Epoch-ms spans to keep; samples outside them (startup, warmup, shutdown) are left out. */
export interface ProfileWindow {
  /** When the profiled process was spawned: the profile's clock starts within ms of it. */
  processStartedAt: number;
  spans: { from: number; to: number }[];
}

export interface ProfileLine {
  name: string;
  where: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  file: string;
  /** CPU time sampled, idle excluded. */
  busyMs: number;
  /** The time the summary covers: the measured runs, or the whole profile. */
  wallMs: number;
  /** True when only samples taken during the measured runs are counted. */
  windowed: boolean;
  topSelf: ProfileLine[];
  byModule: ProfileLine[];
  /** Functions under src/, by the time spent in them and everything they called. */
  topInclusive: ProfileLine[];
}

const IDLE = new Set(['(idle)']);

/** `fastify`, `@fastify/ajv-compiler`, `src/engine/engine.ts`, `node:internal/streams`, `(gc)`. */
export function moduleOf(frame: CallFrame, repoRoot: string): string {
  const url = frame.url;
  if (url === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)';

  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }

  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/');

  const file = url.startsWith('file://') ? new URL(url).pathname : url;
  return path.relative(repoRoot, file);
}

const sourceMaps = new TsxSourceMaps();

/** `src/store/sqlite/sqlite-store.ts:412`: the original line where tsx's map knows it. */
function where(frame: CallFrame, repoRoot: string): string {
  const mod = moduleOf(frame, repoRoot);
  if (frame.url === '') return mod;

  if (frame.url.startsWith('file://') && !frame.url.includes('/node_modules/')) {
    const file = new URL(frame.url).pathname;
    const line = sourceMaps.originalLine(file, frame.lineNumber, frame.columnNumber);
    if (line !== null) return `${mod}:${line}`;
  }
  return `${mod}:${frame.lineNumber + 1}`;
}

/**
 * The main thread's profile of process `pid` in `dir`. Node writes one file per thread,
 * `CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile`, and tsx's module loader runs on a
 * thread of its own; thread 0 is the one serving requests.
 */
export function mainThreadProfile(dir: string, pid: number): string | null {
  try {
    const mine = readdirSync(dir).filter((f) => {
      const parts = f.split('.');
      return f.endsWith('.cpuprofile') && parts[3] === String(pid) && parts[4] === '0';
    });
    const files = mine
      .map((f) => path.join(dir, f))
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
    return files[0] ?? null;
  } catch {
    return null;
  }
}

/**
 * Each node's own time in ms. With a window, only samples whose timestamp falls in one of
 * its spans count; a sample's duration is the gap to the next sample.
 */
function selfTimes(profile: CpuProfile, window: ProfileWindow | null): Map<number, number> {
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];

  if (samples.length === 0 || deltas.length !== samples.length) {
    // No sample timeline: fall back to hit counts spread evenly over the profile.
    const hits = profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
    const msPerHit = hits > 0 ? (profile.endTime - profile.startTime) / 1000 / hits : 0;
    for (const n of profile.nodes) self.set(n.id, (n.hitCount ?? 0) * msPerHit);
    return self;
  }

  let atUs = 0;
  for (let i = 0; i < samples.length; i += 1) {
    atUs += deltas[i] ?? 0;
    const durationMs = (deltas[i + 1] ?? 0) / 1000;
    const at = (window?.processStartedAt ?? 0) + atUs / 1000;
    if (window && !window.spans.some((s) => at >= s.from && at <= s.to)) continue;

    const id = samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + durationMs);
  }
  return self;
}

export function summarizeProfile(
  file: string,
  repoRoot: string,
  window: ProfileWindow | null = null,
  top = 20,
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const windowed = window !== null && window.spans.length > 0 && (profile.samples?.length ?? 0) > 0;
  const wallMs = windowed
    ? (window as ProfileWindow).spans.reduce((s, w) => s + (w.to - w.from), 0)
    : (profile.endTime - profile.startTime) / 1000;
  const self = selfTimes(profile, windowed ? window : null);

  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfByKey = new Map<string, { frame: CallFrame; ms: number }>();
  const byModule = new Map<string, number>();
  let busyMs = 0;

  for (const node of profile.nodes) {
    const ms = self.get(node.id) ?? 0;
    if (ms === 0 || IDLE.has(node.callFrame.functionName)) continue;

    busyMs += ms;
    const key = `${node.callFrame.functionName}@${node.callFrame.url}:${node.callFrame.lineNumber}`;
    const entry = selfByKey.get(key) ?? { frame: node.callFrame, ms: 0 };
    entry.ms += ms;
    selfByKey.set(key, entry);

    const mod = moduleOf(node.callFrame, repoRoot);
    byModule.set(mod, (byModule.get(mod) ?? 0) + ms);
  }

  // Inclusive time of project functions: a node's self time plus its subtree's. A function
  // that appears twice on one stack (recursion) is counted once per stack, via `onStack`.
  const inclusive = new Map<string, { frame: CallFrame; ms: number }>();
  const onStack = new Map<string, number>();
  const walk = (id: number): number => {
    const node = byId.get(id);
    if (!node) return 0;

    const frame = node.callFrame;
    const own = IDLE.has(frame.functionName) ? 0 : (self.get(id) ?? 0);
    const key = `${frame.functionName}@${frame.url}:${frame.lineNumber}`;
    const mine = frame.url.includes('/src/') && !frame.url.includes('/node_modules/');

    if (mine) onStack.set(key, (onStack.get(key) ?? 0) + 1);
    let total = own;
    for (const child of node.children ?? []) total += walk(child);
    if (mine) {
      const depth = (onStack.get(key) ?? 1) - 1;
      onStack.set(key, depth);
      if (depth === 0) {
        const entry = inclusive.get(key) ?? { frame, ms: 0 };
        entry.ms += total;
        inclusive.set(key, entry);
      }
    }
    return total;
  };
  const root = profile.nodes[0];
  if (root) walk(root.id);

  const line = (name: string, at: string, ms: number): ProfileLine => ({
    name,
    where: at,
    ms: Math.round(ms),
    percent: busyMs > 0 ? Math.round((ms / busyMs) * 1000) / 10 : 0,
  });
  const ranked = <T>(items: T[], ms: (t: T) => number): T[] =>
    items.sort((a, b) => ms(b) - ms(a)).slice(0, top);

  return {
    file,
    busyMs: Math.round(busyMs),
    wallMs: Math.round(wallMs),
    windowed,
    topSelf: ranked([...selfByKey.values()], (e) => e.ms).map((e) =>
      line(e.frame.functionName || '(anonymous)', where(e.frame, repoRoot), e.ms),
    ),
    byModule: ranked([...byModule.entries()], ([, ms]) => ms).map(([mod, ms]) => line(mod, '', ms)),
    topInclusive: ranked([...inclusive.values()], (e) => e.ms).map((e) =>
      line(e.frame.functionName || '(anonymous)', where(e.frame, repoRoot), e.ms),
    ),
  };
}
