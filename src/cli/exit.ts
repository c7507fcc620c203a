// swarmctl's exit codes and the one place where a failed call becomes an operator's sentence.
// Scripts (and the deployment workflow) branch on these numbers, so they never change meaning.

import { isSwarmClientError } from '../client/index.ts';
import type { AuthScope } from '../core/types.ts';

export const EXIT = {
  /** The command did what was asked and the swarm is fine. */
  ok: 0,
  /** A check failed, a drill escalated, or (for `health`) the swarm is degraded or unhealthy. */
  failed: 1,
  /** Bad flags or arguments, or a request the server rejected as invalid. */
  usage: 2,
  /** No answer (refused, DNS, timeout) or the token was refused (401, 403). */
  unreachable: 3,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error that already carries the words and the exit code the operator should see. */
export class CliError extends Error {
  readonly exitCode: ExitCode;

  constructor(message: string, exitCode: ExitCode) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export const usageError = (message: string): CliError => new CliError(message, EXIT.usage);

/** What the failed call was for: lets a 403 name the scope that the command needed. */
export interface CallContext {
  url: string;
  action: string;
  scope: AuthScope | 'none';
  timeoutMs?: number;
  /** Where the token sent came from ("--token", a variable, a tokens.json), or "none". */
  tokenSource?: string;
}

const SCOPE_ENV: Record<AuthScope, string> = {
  read: 'OWOKX_API_TOKEN_READONLY',
  agent: 'OWOKX_API_TOKEN_AGENT',
  trade: 'OWOKX_API_TOKEN_TRADE',
  admin: 'OWOKX_API_TOKEN_ADMIN',
};

/** The operator's sentence and exit code for any error thrown while a command ran. */
export function describeError(err: unknown, ctx: CallContext): CliError {
  if (err instanceof CliError) return err;

  if (!isSwarmClientError(err)) {
    const message = err instanceof Error ? err.message : String(err);
    return new CliError(message, EXIT.failed);
  }

  if (err.code === 'timeout') {
    return new CliError(
      `timed out after ${ctx.timeoutMs ?? '?'}ms waiting for ${ctx.url} (${err.method} ${err.path}) — raise --timeout, or check the server's load`,
      EXIT.unreachable,
    );
  }

  if (err.code === 'unreachable' || err.code === 'aborted') {
    return new CliError(
      `cannot reach ${ctx.url}: ${networkReason(err.cause)} — is the server running? (npm start)`,
      EXIT.unreachable,
    );
  }

  if (err.status === 401) {
    // Name where a refused token came from: a tokens.json left by another server is easy to
    // pick up without noticing.
    const sent =
      ctx.tokenSource === undefined || ctx.tokenSource === 'none'
        ? 'no token was sent — set OWOKX_TOKEN or --token'
        : `the token from ${ctx.tokenSource} was refused — give this server's with OWOKX_TOKEN or --token`;
    return new CliError(`401 unauthorized: ${sent}${neededScope(ctx)}`, EXIT.unreachable);
  }

  if (err.status === 403) {
    const scope = ctx.scope === 'none' ? 'required' : ctx.scope;
    return new CliError(
      `403 forbidden: this token lacks the ${scope} scope needed for ${ctx.action}`,
      EXIT.unreachable,
    );
  }

  // A detail that only repeats the message adds nothing.
  const detail = err.details
    .filter((d) => d.message !== err.message && !err.message.includes(d.message))
    .map((d) => (d.field ? `${d.field}: ${d.message}` : d.message));
  const suffix = detail.length > 0 ? ` (${detail.join('; ')})` : '';
  const message = `${err.status} ${err.code}: ${err.message}${suffix}`;

  // The server validated our flags and said no: that is a usage error, not a failed check.
  if (err.status === 400 || err.status === 413 || err.status === 415) {
    return new CliError(message, EXIT.usage);
  }
  return new CliError(message, EXIT.failed);
}

function neededScope(ctx: CallContext): string {
  if (ctx.scope === 'none') return '';
  return ` (${ctx.action} needs the ${ctx.scope} scope, e.g. ${SCOPE_ENV[ctx.scope]})`;
}

/** "connection refused" rather than "ECONNREFUSED", from whatever undici or node:net threw. */
export function networkReason(cause: unknown): string {
  const e = cause as { code?: string; message?: string; cause?: { code?: string } } | undefined;
  const code = e?.code ?? e?.cause?.code ?? '';

  const words: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    ENOTFOUND: 'host not found',
    EAI_AGAIN: 'DNS lookup failed',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    EPIPE: 'connection closed',
    UND_ERR_SOCKET: 'connection closed by the server',
    UND_ERR_CLOSED: 'connection closed',
  };

  return words[code] ?? (code || e?.message || 'no answer');
}
