// The CLI tests' harness: a real `swarmctl serve` child on a free port with a SQLite store in a
// temporary directory, and the real binary run as an operator runs it. No mocks: every test
// talks to the same processes a person would.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../demo/processes.ts';
import { SwarmClient } from '../../src/client/index.ts';

export { freePort };

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = path.join(REPO, 'bin/swarmctl.js');

export const TOKENS = {
  read: 'test-read-token-0123456789abcdef',
  agent: 'test-agent-token-0123456789abcdef',
  trade: 'test-trade-token-0123456789abcdef',
  admin: 'test-admin-token-0123456789abcdef',
};

/** The scoped variables a configured deployment sets, for the server and for swarmctl. */
export const TOKEN_ENV = {
  OWOKX_API_TOKEN_READONLY: TOKENS.read,
  OWOKX_API_TOKEN_AGENT: TOKENS.agent,
  OWOKX_API_TOKEN_TRADE: TOKENS.trade,
  OWOKX_API_TOKEN_ADMIN: TOKENS.admin,
};

/** The parent's environment without anything that would steer swarmctl or the server. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};

  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('OWOKX_') || k === 'NO_COLOR' || k === 'FORCE_COLOR') continue;
    if (k.startsWith('VITEST') || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }

  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export interface TestServer {
  url: string;
  port: number;
  dataDir: string;
  proc: ChildProcess;
  /** Clients with each scope's token. */
  read: SwarmClient;
  agent: SwarmClient;
  trade: SwarmClient;
  admin: SwarmClient;
  output(): string;
  /** SIGTERM, then SIGKILL after a grace period; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export interface ServerOptions {
  /** Server environment on top of the scoped tokens (set a token var to '' to drop it). */
  env?: Record<string, string>;
  /** Extra `serve` flags. */
  args?: string[];
  /** Leave the token variables out: the server generates tokens.json itself. */
  noTokens?: boolean;
}

const children = new Set<ChildProcess>();

// A test that fails half-way must not leave servers behind.
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

export async function startServer(options: ServerOptions = {}): Promise<TestServer> {
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'swarmctl-test-'));
  const url = `http://127.0.0.1:${port}`;

  const env = cleanEnv({
    ...(options.noTokens ? {} : TOKEN_ENV),
    OWOKX_LOG_LEVEL: 'warn',
    ...options.env,
  });

  const proc = spawn(
    process.execPath,
    [
      BIN,
      'serve',
      '--port',
      String(port),
      '--db',
      `sqlite:${path.join(dataDir, 'swarm.db')}`,
      '--data-dir',
      dataDir,
      ...(options.args ?? []),
    ],
    { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(proc);

  let output = '';
  proc.stdout?.on('data', (d) => {
    output += d;
  });
  proc.stderr?.on('data', (d) => {
    output += d;
  });

  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    proc.on('exit', (code) => {
      exitCode = code;
      children.delete(proc);
      resolve(code);
    });
  });

  const probe = new SwarmClient({ baseUrl: url, timeoutMs: 1000 });
  const deadline = Date.now() + 30_000;

  try {
    while (true) {
      if (exitCode !== undefined) {
        throw new Error(`server exited with ${exitCode} before serving:\n${output}`);
      }
      try {
        await probe.health();
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`server did not start in 30s:\n${output}`);
        await sleep(100);
      }
    }
  } finally {
    await probe.close();
  }

  const client = (token: string) => new SwarmClient({ baseUrl: url, token, timeoutMs: 10_000 });
  const clients = {
    read: client(TOKENS.read),
    agent: client(TOKENS.agent),
    trade: client(TOKENS.trade),
    admin: client(TOKENS.admin),
  };

  return {
    url,
    port,
    dataDir,
    proc,
    ...clients,
    output: () => output,
    async stop() {
      await Promise.allSettled(Object.values(clients).map((c) => c.close()));

      if (exitCode === undefined) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }

      rmSync(dataDir, { recursive: true, force: true });
      return exitCode ?? null;
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** swarmctl's environment on top of a clean one. */
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  cwd?: string;
}

/** Runs `node bin/swarmctl.js …args` to completion (killed after timeoutMs). */
export function swarmctl(args: string[], options: RunOptions = {}): Promise<CliResult> {
  return runProcess(process.execPath, [BIN, ...args], options);
}

/**
 * Runs swarmctl on a pseudo-terminal, through util-linux `script`, so that it sees a TTY on
 * stdout the way it does in an operator's shell. `input` is typed into the terminal.
 */
export function swarmctlOnTty(
  args: string[],
  options: RunOptions & { input?: { afterMs: number; text: string } } = {},
): Promise<CliResult> {
  const command = [process.execPath, BIN, ...args].map(shellQuote).join(' ');
  return runProcess(
    'script',
    ['-qefc', command, '/dev/null'],
    {
      ...options,
      env: { TERM: 'xterm-256color', COLUMNS: '160', LINES: '50', ...options.env },
    },
    options.input,
  );
}

function runProcess(
  file: string,
  args: string[],
  options: RunOptions,
  input?: { afterMs: number; text: string },
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      cwd: options.cwd ?? REPO,
      env: cleanEnv(options.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.add(child);

    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });

    if (input) setTimeout(() => child.stdin.write(input.text), input.afterMs);
    else child.stdin.end();

    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);

    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

function shellQuote(s: string): string {
  return /^[\w./:=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Environment for swarmctl against `server` with every scoped token, like a configured shell. */
export function cliEnv(server: TestServer, extra: Record<string, string> = {}) {
  return { OWOKX_URL: server.url, ...TOKEN_ENV, ...extra };
}

/** Any ANSI escape sequence: colour, cursor movement, screen switching. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal escapes is the point
export const ANSI = /\x1b\[/;

/** Parses the one JSON document swarmctl printed, with a readable failure. */
export function parseJson<T = unknown>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(
      `stdout is not JSON (exit ${result.code}):\n${result.stdout}\nstderr:\n${result.stderr}`,
    );
  }
}
