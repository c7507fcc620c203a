// The benchmark's flags, parsed with commander, validated, and frozen into one options object.
// A bad flag is a usage error (exit 2) with a message naming the flag and its allowed range,
// the same rule the HTTP contract applies to request fields: nothing is silently clamped.

import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';

export type EnqueueMode = 'single' | 'batch';
export type DeliveryMode = 'pull' | 'push';

export interface BenchOptions {
  messages: number;
  agents: number;
  runs: number;
  enqueue: EnqueueMode;
  delivery: DeliveryMode;
  /** Messages per POST /swarm/messages in batch mode (the contract allows up to 1000). */
  batchSize: number;
  /** Concurrent enqueue senders (closed loop). */
  concurrency: number;
  /** Open-loop offered load in msg/s, or null for closed loop (send as fast as answered). */
  rate: number | null;
  /** Messages preloaded for another role before the first measured run. */
  backlog: number;
  /** `limit` of each poll; also each push agent's maxInflight. */
  pollLimit: number;
  /** Push: also call POST /swarm/dispatch in a loop (the original benchmark's way). */
  dispatchLoop: boolean;
  /** Send enqueues through SwarmClient too, instead of FastEnqueue (to compare the two). */
  plainClient: boolean;
  /** Long-poll wait of each poll. */
  waitMs: number;
  /** Unmeasured messages sent once before run 1, so the server's JIT is warm. */
  warmup: number;
  /**
   * Then more unmeasured runs of the workload until this much time has passed: V8 keeps
   * optimising the server and this process for seconds (single enqueue ran 2,400 → 7,500
   * msg/s over six consecutive 3,000-message runs), and a production server is warm.
   */
  warmupMs: number;
  /** A measured server, or null to start our own. */
  baseUrl: string | null;
  /** Our own server on this PostgreSQL database (a schema of its own), not on SQLite. */
  databaseUrl: string | null;
  token: string | null;
  json: boolean;
  out: string | null;
  record: boolean;
  keep: boolean;
  /** Per-run deadline; a run that has not delivered everything by then is reported as such. */
  timeoutMs: number;
  /** How often GET /swarm/metrics is sampled during a run; 0 disables. */
  metricsIntervalMs: number;
  /** Extra node flags for our own server, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`. */
  serverNodeArgs: string[];
  /** Profile our own server with --cpu-prof into this directory and summarise it. */
  profileDir: string | null;
  /** Extra environment for our own server (KEY=VALUE, repeatable). */
  serverEnv: Record<string, string>;
  /** Where recorded runs live and comparisons are read from. */
  resultsDir: string;
  /** Progress bar: only on a terminal and never with --json. */
  progress: boolean;
}

export type ParseOutcome =
  | { ok: true; options: Readonly<BenchOptions> }
  | { ok: false; exitCode: number };

export interface ParseContext {
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  isTTY: boolean;
  defaultResultsDir: string;
}

function intIn(name: string, min: number, max: number): (raw: string) => number {
  return (raw: string) => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        `${name} must be an integer from ${min} to ${max.toLocaleString('en-US')}`,
      );
    }
    return n;
  };
}

function keyValue(raw: string, previous: Record<string, string>): Record<string, string> {
  const eq = raw.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('--server-env takes KEY=VALUE');
  return { ...previous, [raw.slice(0, eq)]: raw.slice(eq + 1) };
}

function buildCommand(): Command {
  return new Command('benchmark:swarm')
    .description(
      'Measure the coordinator end to end: register agents of one type, enqueue messages to ' +
        'that role, and have the agents consume and ack them.',
    )
    .option('--messages <n>', 'messages per run', intIn('--messages', 1, 10_000_000), 1000)
    .option('--agents <n>', 'agents of the benchmark type', intIn('--agents', 1, 1000), 5)
    .option('--runs <n>', 'measured runs, averaged', intIn('--runs', 1, 100), 3)
    .addOption(
      new Option('--enqueue <mode>', 'one request per message, or batches')
        .choices(['single', 'batch'])
        .default('batch'),
    )
    .addOption(
      new Option('--delivery <mode>', 'agents poll, or the dispatcher pushes to them')
        .choices(['pull', 'push'])
        .default('pull'),
    )
    .option('--batch-size <n>', 'messages per enqueue batch', intIn('--batch-size', 1, 1000), 500)
    .option(
      '--concurrency <n>',
      'concurrent enqueue senders (default 16 for single, 1 for batch)',
      intIn('--concurrency', 1, 1024),
    )
    .option(
      '--rate <n>',
      'open-loop offered load in msg/s: sent on a schedule, latency from the scheduled time',
      intIn('--rate', 1, 1_000_000),
    )
    .option(
      '--backlog <n>',
      'messages preloaded for another role before measuring',
      intIn('--backlog', 0, 100_000_000),
      0,
    )
    .option('--poll-limit <n>', 'limit per poll; push maxInflight', intIn('--poll-limit', 1, 1000))
    .option(
      '--no-dispatch-loop',
      "push: rely on the server's own dispatcher only, without calling POST /swarm/dispatch",
    )
    .option(
      '--plain-client',
      'send enqueues through SwarmClient instead of undici dispatch (about 50 µs more per request)',
      false,
    )
    .option('--wait-ms <n>', 'long-poll wait per poll', intIn('--wait-ms', 0, 30_000), 1000)
    .option(
      '--warmup <n>',
      'unmeasured messages before run 1 (default 1000 on our own server, 0 with --base-url)',
      intIn('--warmup', 0, 1_000_000),
    )
    .option(
      '--warmup-ms <ms>',
      'then keep warming with unmeasured runs this long (default 10000 on our own server, 0 with --base-url)',
      intIn('--warmup-ms', 0, 600_000),
    )
    .option('--base-url <url>', 'measure a running server instead of starting one')
    .option(
      '--database-url <url>',
      'run our own server on this PostgreSQL database (postgres://…), in a schema of its own',
    )
    .option('--token <token>', 'trade token for --base-url (default OWOKX_API_TOKEN_TRADE)')
    .option('--json', 'print the JSON report on stdout', false)
    .option('--out <file>', 'also write the JSON report to a file')
    .option('--record', 'write the report to bench/results/<date>-<config>.json', false)
    .option('--keep', "keep our own server's temporary store", false)
    .option('--timeout-ms <n>', 'per-run deadline', intIn('--timeout-ms', 1000, 86_400_000))
    .option(
      '--metrics-interval <ms>',
      'sample GET /swarm/metrics latency during runs; 0 disables',
      intIn('--metrics-interval', 0, 60_000),
      250,
    )
    .option('--server-node-args <args>', 'extra node flags for our own server', '')
    .option('--profile <dir>', 'CPU-profile our own server into <dir> and report where time went')
    .option('--server-env <KEY=VALUE>', 'extra environment for our own server', keyValue, {})
    .option('--results-dir <dir>', 'recorded runs, for --record and comparisons')
    .option('--no-progress', 'never draw the progress bar');
}

interface RawFlags {
  messages: number;
  agents: number;
  runs: number;
  enqueue: EnqueueMode;
  delivery: DeliveryMode;
  batchSize: number;
  concurrency?: number;
  rate?: number;
  backlog: number;
  pollLimit?: number;
  dispatchLoop: boolean;
  plainClient: boolean;
  waitMs: number;
  warmup?: number;
  warmupMs?: number;
  baseUrl?: string;
  databaseUrl?: string;
  token?: string;
  json: boolean;
  out?: string;
  record: boolean;
  keep: boolean;
  timeoutMs?: number;
  metricsInterval: number;
  serverNodeArgs: string;
  serverEnv: Record<string, string>;
  profile?: string;
  resultsDir?: string;
  progress: boolean;
}

/** Parses `argv` (flags only, as after `process.argv.slice(2)`). Never exits the process. */
export function parseOptions(argv: string[], ctx: ParseContext): ParseOutcome {
  const command = buildCommand()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    });

  try {
    command.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      const shown = err.code === 'commander.helpDisplayed' || err.code === 'commander.version';
      return { ok: false, exitCode: shown ? 0 : 2 };
    }
    throw err;
  }

  const flags = command.opts<RawFlags>();

  const usage = (message: string): ParseOutcome => {
    ctx.stderr.write(`error: ${message}\n`);
    return { ok: false, exitCode: 2 };
  };

  let baseUrl: string | null = null;
  if (flags.baseUrl !== undefined) {
    try {
      const url = new URL(flags.baseUrl);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
      baseUrl = flags.baseUrl.replace(/\/+$/, '');
    } catch {
      return usage(`--base-url must be an http(s) URL (got "${flags.baseUrl}")`);
    }
  }

  const token =
    flags.token ??
    ctx.env.OWOKX_TOKEN ??
    ctx.env.OWOKX_API_TOKEN_TRADE ??
    ctx.env.OWOKX_API_TOKEN_ADMIN ??
    ctx.env.OWOKX_API_TOKEN ??
    null;
  if (baseUrl !== null && !token) {
    return usage('--base-url needs a trade token: --token, or OWOKX_API_TOKEN_TRADE');
  }

  if (flags.rate !== undefined && flags.concurrency !== undefined) {
    return usage('--rate is open loop and sends on a schedule; it does not take --concurrency');
  }

  if (flags.databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(flags.databaseUrl)) {
    return usage(`--database-url must be a postgres:// URL (got "${flags.databaseUrl}")`);
  }

  const ownServerOnly =
    flags.databaseUrl !== undefined ||
    flags.serverNodeArgs !== '' ||
    Object.keys(flags.serverEnv).length > 0 ||
    flags.profile !== undefined;
  if (baseUrl !== null && ownServerOnly) {
    return usage(
      '--database-url, --server-node-args, --server-env and --profile apply to our own server, not --base-url',
    );
  }

  const profileDir = flags.profile !== undefined ? path.resolve(flags.profile) : null;
  const nodeArgs = flags.serverNodeArgs.split(/\s+/).filter((a) => a !== '');
  if (profileDir !== null) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`);

  // Generous by default: a deadline only exists so a stuck run ends with a report, not a hang.
  const offeredMs = flags.rate ? (flags.messages / flags.rate) * 1000 : 0;
  const timeoutMs = flags.timeoutMs ?? Math.ceil(60_000 + flags.messages * 2 + offeredMs);

  const options: BenchOptions = {
    messages: flags.messages,
    agents: flags.agents,
    runs: flags.runs,
    enqueue: flags.enqueue,
    delivery: flags.delivery,
    batchSize: flags.batchSize,
    concurrency: flags.concurrency ?? (flags.enqueue === 'single' ? 16 : 1),
    rate: flags.rate ?? null,
    backlog: flags.backlog,
    pollLimit: flags.pollLimit ?? 250,
    dispatchLoop: flags.dispatchLoop,
    plainClient: flags.plainClient,
    waitMs: flags.waitMs,
    // A freshly started server runs its first thousand messages through cold JIT code and
    // empty caches; a production server is warm. A measured server is assumed warm already.
    warmup: flags.warmup ?? (baseUrl === null ? Math.min(1000, flags.messages) : 0),
    // An explicit --warmup 0 asks for a cold server: no timed warm-up either.
    // Ten seconds: with three, the guide's single-enqueue run still measured warm-up (3,900-5,000
    // msg/s against 5,100-5,600 after ten, same code, minutes apart).
    warmupMs: flags.warmupMs ?? (baseUrl === null && flags.warmup !== 0 ? 10_000 : 0),
    baseUrl,
    databaseUrl: flags.databaseUrl ?? null,
    token,
    json: flags.json,
    out: flags.out ?? null,
    record: flags.record,
    keep: flags.keep,
    timeoutMs,
    metricsIntervalMs: flags.metricsInterval,
    serverNodeArgs: nodeArgs,
    profileDir,
    serverEnv: flags.serverEnv,
    resultsDir: flags.resultsDir ?? ctx.defaultResultsDir,
    progress: flags.progress && ctx.isTTY && !flags.json,
  };

  return { ok: true, options: Object.freeze(options) };
}
