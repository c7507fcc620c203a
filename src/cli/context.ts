// What every command gets: the resolved global options, an output, and a client holding the
// least-scoped token that the command needs. `action()` wraps a command body so that errors
// become one clear line and one exit code, and the client's sockets are closed afterwards.

import type { Command } from 'commander';
import { SwarmClient } from '../client/index.ts';
import { type CallContext, describeError, EXIT, type ExitCode } from './exit.ts';
import { Output } from './output.ts';
import { type NeededScope, type ResolvedToken, resolveToken } from './tokens.ts';

export const DEFAULT_URL = 'http://127.0.0.1:8787';
export const DEFAULT_TIMEOUT_MS = 10_000;

export interface GlobalOptions {
  url: string;
  token?: string;
  json: boolean;
  timeout: number;
  dataDir?: string;
}

export interface CommandContext {
  out: Output;
  url: string;
  json: boolean;
  timeoutMs: number;
  dataDir: string;
  token: ResolvedToken;
  client: SwarmClient;
  call: CallContext;
  /** A client for the same server with another token (null: none), closed with the context. */
  clientWith(token: string | null): SwarmClient;
  /** Closes every client's sockets, so the process can end by itself. */
  close(): Promise<void>;
}

export function globalOptions(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** The data directory where the server keeps its generated tokens. */
export function dataDirOf(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): string {
  return opts.dataDir ?? env.OWOKX_DATA_DIR ?? './data';
}

export function createContext(cmd: Command, action: string, scope: NeededScope): CommandContext {
  const opts = globalOptions(cmd);
  const url = opts.url.replace(/\/+$/, '');
  const dataDir = dataDirOf(opts);
  const token = resolveToken(scope, { flag: opts.token, env: process.env, url, dataDir });
  const out = new Output({ json: opts.json });
  const extra: SwarmClient[] = [];

  const make = (t: string | undefined): SwarmClient =>
    new SwarmClient({ baseUrl: url, token: t, timeoutMs: opts.timeout, connections: 4 });

  const client = make(token.token);

  return {
    out,
    url,
    json: opts.json,
    timeoutMs: opts.timeout,
    dataDir,
    token,
    client,
    call: { url, action, scope, timeoutMs: opts.timeout, tokenSource: token.source },
    clientWith(t) {
      const c = make(t ?? undefined);
      extra.push(c);
      return c;
    },
    async close() {
      await Promise.allSettled([client.close(), ...extra.map((c) => c.close())]);
    },
  };
}

type Body<A extends unknown[]> = (ctx: CommandContext, ...args: A) => Promise<ExitCode | undefined>;

/**
 * Wraps a command body: builds its context, runs it, prints any error as one line, and sets
 * the exit code. The process then ends by itself once the client's sockets are closed.
 */
export function action<A extends unknown[]>(name: string, scope: NeededScope, body: Body<A>) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    const ctx = createContext(cmd, name, scope);

    try {
      const code = await body(ctx, ...(args.slice(0, -1) as A));
      process.exitCode = code ?? EXIT.ok;
    } catch (err) {
      const failure = describeError(err, ctx.call);
      ctx.out.error(failure.message);
      process.exitCode = failure.exitCode;
    } finally {
      await ctx.close();
    }
  };
}
