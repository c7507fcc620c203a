// Starting and stopping the real processes of a swarm: the coordinator (`swarmctl serve`) and
// agent scripts, each its own node process running TypeScript through tsx. Shared by the demo
// and the end-to-end tests, so both exercise exactly what an operator would run.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI_MAIN = path.join(REPO_ROOT, 'src/cli/main.ts');

export interface Tokens {
  readonly: string;
  agent: string;
  trade: string;
  admin: string;
}

/** Fresh random tokens, one per scope. */
export function generateTokens(): Tokens {
  const make = (): string => randomBytes(24).toString('base64url');
  return { readonly: make(), agent: make(), trade: make(), admin: make() };
}

export function tokenEnv(tokens: Tokens): Record<string, string> {
  return {
    OWOKX_API_TOKEN_READONLY: tokens.readonly,
    OWOKX_API_TOKEN_AGENT: tokens.agent,
    OWOKX_API_TOKEN_TRADE: tokens.trade,
    OWOKX_API_TOKEN_ADMIN: tokens.admin,
  };
}

/** A port nobody listens on right now (the OS picks it; a tiny race remains until reuse). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** True when something already accepts connections on host:port. */
export function portInUse(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A child process with its recent output kept, for error messages and tests. */
export class ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly tail: string[] = [];
  private readonly lineListeners = new Set<(line: string) => void>();
  private partial = '';
  private done = false;

  constructor(name: string, child: ChildProcess, logFile?: string) {
    this.name = name;
    this.child = child;

    let log: WriteStream | undefined;
    if (logFile) {
      mkdirSync(path.dirname(logFile), { recursive: true });
      log = createWriteStream(logFile, { flags: 'a' });
    }

    const onData = (chunk: Buffer): void => {
      log?.write(chunk);
      this.onText(chunk.toString('utf8'));
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);

    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.done = true;
        log?.end();
        resolve({ code, signal });
      });
    });
  }

  get running(): boolean {
    return !this.done;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The last lines the process wrote (stdout and stderr together). */
  recentOutput(lines = 40): string {
    return this.tail.slice(-lines).join('\n');
  }

  /** Calls back with every complete line written to stdout or stderr from now on. */
  onLine(listener: (line: string) => void): () => void {
    this.lineListeners.add(listener);
    return () => this.lineListeners.delete(listener);
  }

  /** Resolves with the first line (from now on) that matches, or rejects after timeoutMs. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`${this.name}: no matching line within ${timeoutMs}ms`));
      }, timeoutMs);
      const off = this.onLine((line) => {
        if (!match(line)) return;
        clearTimeout(timer);
        off();
        resolve(line);
      });
    });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL if it has not exited within graceMs. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;

    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  private onText(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';

    for (const line of lines) {
      this.tail.push(line);
      if (this.tail.length > 200) this.tail.shift();
      for (const listener of this.lineListeners) listener(line);
    }
  }
}

export interface ServerOptions {
  port: number;
  host?: string;
  /** Directory for the SQLite file (and generated files); created if missing. */
  dataDir: string;
  /** Defaults to `<dataDir>/swarm.db`. */
  dbFile?: string;
  /** A `postgres://` URL instead of the SQLite file. */
  databaseUrl?: string;
  tokens: Tokens;
  logLevel?: string;
  /** Extra OWOKX_* settings, e.g. a short OWOKX_STALE_AFTER_MS. */
  env?: Record<string, string>;
  logFile?: string;
  /** Own process group, so a terminal's Ctrl-C reaches only the parent, which stops us in order. */
  detached?: boolean;
}

export class ServerProcess extends ManagedProcess {
  constructor(
    child: ChildProcess,
    logFile: string | undefined,
    readonly url: string,
    readonly port: number,
    readonly dbFile: string,
  ) {
    super('server', child, logFile);
  }
}

/** Starts `swarmctl serve` as a child process; does not wait for it to be ready. */
export function spawnServer(options: ServerOptions): ServerProcess {
  const host = options.host ?? '127.0.0.1';
  const dbFile = options.dbFile ?? path.join(options.dataDir, 'swarm.db');
  mkdirSync(options.dataDir, { recursive: true });

  const args = [
    '--import',
    'tsx',
    CLI_MAIN,
    'serve',
    '--port',
    String(options.port),
    '--host',
    host,
    '--db',
    options.databaseUrl ?? `sqlite:${dbFile}`,
    '--log-level',
    options.logLevel ?? 'warn',
  ];

  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      ...tokenEnv(options.tokens),
      OWOKX_DATA_DIR: options.dataDir,
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });

  const url = `http://${host.includes(':') ? `[${host}]` : host}:${options.port}`;
  return new ServerProcess(child, options.logFile, url, options.port, dbFile);
}

/** Polls GET /ready until it answers 200, the process exits, or timeoutMs passes. */
export async function waitReady(
  url: string,
  timeoutMs = 30_000,
  watched?: ManagedProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;

  while (Date.now() < deadline) {
    if (watched && !watched.running) {
      throw new Error(`${watched.name} exited before it was ready:\n${watched.recentOutput()}`);
    }

    try {
      const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // Not listening yet.
    }

    await new Promise((r) => setTimeout(r, 100));
  }

  const output = watched ? `\n${watched.recentOutput()}` : '';
  throw new Error(`${url} was not ready within ${timeoutMs}ms${output}`);
}

export interface AgentProcessOptions {
  /** The script to run, relative to the repository root or absolute. */
  script: string;
  name: string;
  url: string;
  token: string;
  env?: Record<string, string>;
  logFile?: string;
  detached?: boolean;
}

/** Starts an agent script as its own process, told where the server is by environment. */
export function spawnAgent(options: AgentProcessOptions): ManagedProcess {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.resolve(REPO_ROOT, options.script)],
    {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        OWOKX_URL: options.url,
        OWOKX_AGENT_TOKEN: options.token,
        AGENT_ID: options.name,
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.detached ?? false,
    },
  );

  return new ManagedProcess(options.name, child, options.logFile);
}
