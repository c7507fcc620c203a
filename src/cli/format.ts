// Pure formatting for human output: durations, ages, counts and rates. No colour and no I/O
// here, so the same words appear in tables, the watch screen and drill reports.

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** A span of time as an operator reads it: "850ms", "3.2s", "42s", "5m 12s", "3h 4m", "2d 1h". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';

  const abs = Math.max(0, ms);
  if (abs < SECOND) return `${Math.round(abs)}ms`;
  if (abs < 10 * SECOND) return `${(abs / SECOND).toFixed(1)}s`;
  if (abs < MINUTE) return `${Math.round(abs / SECOND)}s`;

  if (abs < HOUR) {
    const m = Math.floor(abs / MINUTE);
    const s = Math.floor((abs % MINUTE) / SECOND);
    return s === 0 ? `${m}m` : `${m}m ${s}s`;
  }

  if (abs < DAY) {
    const h = Math.floor(abs / HOUR);
    const m = Math.floor((abs % HOUR) / MINUTE);
    return m === 0 ? `${h}h` : `${h}h ${m}m`;
  }

  const d = Math.floor(abs / DAY);
  const h = Math.floor((abs % DAY) / HOUR);
  return h === 0 ? `${d}d` : `${d}d ${h}h`;
}

/** How long ago an epoch-ms instant was, coarse on purpose: "just now", "12s ago", "5m ago". */
export function formatAge(at: number | null | undefined, now: number = Date.now()): string {
  if (at === null || at === undefined || !Number.isFinite(at) || at <= 0) return 'never';

  const ago = now - at;
  if (ago < SECOND) return 'just now';
  if (ago < MINUTE) return `${Math.floor(ago / SECOND)}s ago`;
  if (ago < HOUR) return `${Math.floor(ago / MINUTE)}m ago`;
  if (ago < DAY) return `${Math.floor(ago / HOUR)}h ago`;
  return `${Math.floor(ago / DAY)}d ago`;
}

/** A count with thousands separators, so 1000000 reads as 1,000,000. */
export function formatCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-';
  return Math.round(n).toLocaleString('en-US');
}

export function formatRate(perSec: number | null | undefined): string {
  if (perSec === null || perSec === undefined || !Number.isFinite(perSec)) return '-';
  return `${perSec.toFixed(perSec < 10 ? 2 : 1)}/s`;
}

/** A ratio (0..1) as a percentage with one decimal. */
export function formatPercent(ratio: number | null | undefined): string {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '-';
  return `${(ratio * 100).toFixed(1)}%`;
}

/** Compact JSON for a table cell, cut to `max` characters. */
export function formatJsonCell(value: unknown, max = 60): string {
  if (value === undefined) return '';

  const text = JSON.stringify(value) ?? '';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** "2 agents", "1 agent": the guide's nouns, counted. */
export function plural(n: number, noun: string, nounPlural = `${noun}s`): string {
  return `${formatCount(n)} ${n === 1 ? noun : nounPlural}`;
}

// Control characters (terminal escape sequences, newlines, C1 controls, bidirectional
// overrides) in a name or text an agent chose must not reach the operator's terminal as
// such; nor may a name pass for one of our own placeholders, such as "(no topic)" or "-".
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028-\u202e\u2066-\u2069]|^\(.*\)$|^-$|^\s|\s$/;
const UNESCAPED = /[\u007f-\u009f\u2028-\u202e\u2066-\u2069]/g;

/** Text from the swarm for a table cell: as it is, or JSON-quoted when it is not safe so. */
export function printable(text: string): string {
  if (!UNSAFE.test(text)) return text;
  // JSON escapes C0 controls; the others it leaves as they are.
  return JSON.stringify(text).replace(
    UNESCAPED,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** "remains"/"remain", or "would remain" for a dry run: the count is what stays afterwards. */
export function remains(count: number, dryRun: boolean): string {
  if (dryRun) return 'would remain';
  return count === 1 ? 'remains' : 'remain';
}
