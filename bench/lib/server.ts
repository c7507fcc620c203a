// Our own coordinator, for a benchmark that runs on a fresh clone: a child process on a free
// loopback port with a SQLite store in a temporary directory (or, with --database-url, a
// fresh schema of that PostgreSQL database), tokens we generate, and a /proc view of its
// memory and CPU. It is the real `swarmctl serve`, started as an operator
// would start it, so what we measure is what ships.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import pg from 'pg';
import { bundleServer } from '../../scripts/bundle.ts';
import { SwarmClient } from '../../src/client/index.ts';
import { packageRoot } from '../../src/core/package-root.ts';
import { nowMs, sleep } from './clock.ts';

const REPO_ROOT = packageRoot(import.meta.url);
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;
// Enough of the server's output to explain a failed start or a crash.
const LOG_TAIL_LINES = 60;

export interface ServerTokens {
  readonly: string;
  agent: string;
  trade: string;
  admin: string;
}

export interface OwnServer {
  baseUrl: string;
  pid: number;
  /** Epoch ms just before the process was spawned. */
  startedAt: number;
  dataDir: string;
  tokens: ServerTokens;
  /** Lines at warn level or above that the server logged, counted for the report. */
  warnings(): number;
  /** The last lines of its stdout and stderr. */
  logTail(): string;
  /** True once the process has exited (expectedly or not). */
  exited(): boolean;
  /** How it exited ("signal SIGKILL", "code 1"), or null while it runs. */
  exitReason(): string | null;
  stop(): Promise<void>;
}

export interface StartOptions {
  nodeArgs: string[];
  /**
   * Run the server from its TypeScript sources under tsx instead of the bundle: for --profile,
   * whose report maps positions through tsx's source maps.
   */
  fromSource: boolean;
  env: Record<string, string>;
  keep: boolean;
  /** Where each line of the server's output goes as well, for --verbose debugging. */
  onLine?: (line: string) => void;
  /** A postgres:// URL: the server runs on a schema of its own there, dropped afterwards. */
  databaseUrl?: string | null;
}

/** A port the kernel just handed out; the tiny race with another binder is acceptable here. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

const token = (): string => randomBytes(24).toString('base64url');

export async function startServer(options: StartOptions): Promise<OwnServer> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'owokx-bench-'));
  const port = await freePort();
  const tokens: ServerTokens = {
    readonly: token(),
    agent: token(),
    trade: token(),
    admin: token(),
  };

  // What `npm start` runs: the bundle, on node alone (see scripts/bundle.ts). Built per run
  // under .tmp/, inside the package so its dependencies resolve, and removed with the store.
  const entry = options.fromSource
    ? ['--import', 'tsx', 'src/cli/main.ts']
    : [await bundleServer(path.join('.tmp', `bench-server-${process.pid}-${port}.mjs`))];
  const schema = `owokx_bench_${process.pid}_${port}`;
  const db =
    options.databaseUrl == null
      ? `sqlite:${path.join(dataDir, 'swarm.db')}`
      : await createSchema(options.databaseUrl, schema);
  const args = [
    ...options.nodeArgs,
    ...entry,
    'serve',
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--db',
    db,
    '--data-dir',
    dataDir,
    '--log-level',
    'warn',
  ];

  // Start from our environment minus any OWOKX_* a developer has set, so a stray setting
  // never changes what a "fresh clone" run measures; --server-env adds back what is wanted.
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('OWOKX_')) env[key] = value;
  }
  Object.assign(env, {
    OWOKX_API_TOKEN_READONLY: tokens.readonly,
    OWOKX_API_TOKEN_AGENT: tokens.agent,
    OWOKX_API_TOKEN_TRADE: tokens.trade,
    OWOKX_API_TOKEN_ADMIN: tokens.admin,
    ...options.env,
  });

  const startedAt = nowMs();
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  const tail: string[] = [];
  let warnings = 0;
  let exitCode: number | null = null;
  let exitSignal: NodeJS.Signals | null = null;
  let hasExited = false;

  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      hasExited = true;
      exitCode = code;
      exitSignal = signal;
      resolve();
    });
  });

  const onChunk = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;

      tail.push(line);
      if (tail.length > LOG_TAIL_LINES) tail.shift();
      if (isWarning(line)) warnings += 1;
      options.onLine?.(line);
    }
  };
  child.stdout?.on('data', onChunk);
  child.stderr?.on('data', onChunk);

  const removeFiles = (): void => {
    if (!options.keep) rmSync(dataDir, { recursive: true, force: true });
    if (!options.fromSource) {
      const bundle = entry[0] as string;
      for (const file of [bundle, `${bundle}.map`]) rmSync(file, { force: true });
    }
  };

  // A benchmark that dies (an exception, Ctrl-C: bench/swarm.ts exits on SIGINT) must not
  // leave a coordinator behind, nor its store (hundreds of MB at 100k) and bundle.
  const killOnExit = (): void => {
    if (!hasExited) child.kill('SIGKILL');
    removeFiles();
  };
  process.once('exit', killOnExit);

  const server: OwnServer = {
    baseUrl: `http://127.0.0.1:${port}`,
    pid: child.pid ?? 0,
    startedAt,
    dataDir,
    tokens,
    warnings: () => warnings,
    logTail: () => tail.join('\n'),
    exited: () => hasExited,
    exitReason: () =>
      !hasExited ? null : exitSignal !== null ? `signal ${exitSignal}` : `code ${exitCode}`,
    stop: async () => {
      await stopChild(child, exitPromise, () => hasExited);
      process.removeListener('exit', killOnExit);
      removeFiles();
      if (options.databaseUrl != null && !options.keep) {
        await dropSchema(options.databaseUrl, schema);
      }
    },
  };

  try {
    await waitReady(server.baseUrl, () => hasExited);
  } catch (err) {
    await server.stop();
    const how = hasExited ? ` (exited with ${exitSignal ?? exitCode})` : '';
    throw new Error(
      `our coordinator did not become ready${how}: ${(err as Error).message}\n` +
        `command: node ${args.join(' ')}\n--- server output ---\n${tail.join('\n')}`,
    );
  }

  return server;
}

/** Creates `schema` in the database and answers the URL that puts the server in it. */
async function createSchema(databaseUrl: string, schema: string): Promise<string> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await client.end();
  }
  const url = new URL(databaseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

async function dropSchema(databaseUrl: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  try {
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } catch (err) {
    process.stderr.write(`warning: could not drop schema ${schema}: ${(err as Error).message}\n`);
  } finally {
    await client.end().catch(() => {});
  }
}

/** pino writes numeric levels: 40 warn, 50 error, 60 fatal. Plain text counts if it says so. */
function isWarning(line: string): boolean {
  if (line.startsWith('{')) {
    const match = /"level":(\d+)/.exec(line);
    return match !== null && Number(match[1]) >= 40;
  }
  return /\b(warn|error|fatal)\b/i.test(line);
}

async function waitReady(baseUrl: string, exited: () => boolean): Promise<void> {
  const client = new SwarmClient({ baseUrl, timeoutMs: 2000, connections: 1 });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no answer yet';

  try {
    while (Date.now() < deadline) {
      if (exited()) throw new Error('the process exited');

      try {
        if (await client.ready()) return;
        last = '/ready answered 503';
      } catch (err) {
        last = (err as Error).message;
      }

      await sleep(50);
    }
  } finally {
    await client.close();
  }

  throw new Error(`no 200 from /ready within ${READY_TIMEOUT_MS / 1000}s (${last})`);
}

// SIGTERM first so the server drains and exits normally; that is also when `--cpu-prof`
// writes its profile. SIGKILL only if it is still there after the grace period.
async function stopChild(
  child: ChildProcess,
  exitPromise: Promise<void>,
  exited: () => boolean,
): Promise<void> {
  if (exited()) return;

  child.kill('SIGTERM');

  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), STOP_GRACE_MS);
  });
  const late = await Promise.race([exitPromise.then(() => false), timedOut]);
  clearTimeout(timer);

  if (late && !exited()) {
    child.kill('SIGKILL');
    await exitPromise;
  }
}
