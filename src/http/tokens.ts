// Which bearer tokens the server accepts. They come from the environment (config.tokens); when
// none is set at all, a server on a loopback address makes its own, one per scope, and keeps
// them in <dataDir>/tokens.json (mode 0600) so a restart, swarmctl and the demo find the same
// ones. A server on any other address refuses to start without tokens: an open coordination
// plane on a network is never what an operator meant.

import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import type { Config } from '../config.ts';
import type { AuthScope } from '../core/types.ts';

export type TokenName = 'readonly' | 'agent' | 'trade' | 'admin' | 'legacy';

export interface NamedToken {
  /** Recorded in the audit log as `tokenName`; the token itself never is. */
  name: TokenName;
  scope: AuthScope;
  token: string;
}

export interface ResolvedTokens {
  tokens: readonly NamedToken[];
  /** The file the tokens were generated into, when they were; null when they came from env. */
  generatedFile: string | null;
}

/** Where each configured token sits, and the scope it grants. */
const SCOPE_OF: Record<TokenName, AuthScope> = {
  readonly: 'read',
  agent: 'agent',
  trade: 'trade',
  admin: 'admin',
  legacy: 'admin',
};

const GENERATED: readonly TokenName[] = ['readonly', 'agent', 'trade', 'admin'];
const TOKEN_FILE = 'tokens.json';

export interface TokenLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export class TokenSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenSetupError';
  }
}

/** True for 127.0.0.0/8, ::1 (bracketed or not, or IPv4-mapped) and localhost. */
export function isLoopbackHost(host: string): boolean {
  const bare = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '');

  if (bare === 'localhost' || bare.endsWith('.localhost')) return true;
  if (bare === '::1' || bare === '0:0:0:0:0:0:0:1') return true;

  const v4 = bare.startsWith('::ffff:') ? bare.slice('::ffff:'.length) : bare;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/**
 * The tokens this server accepts. Throws TokenSetupError, with a message fit for an operator,
 * when none is configured and the host is not loopback, or when the token file is unusable.
 */
export function resolveTokens(config: Readonly<Config>, log: TokenLog): ResolvedTokens {
  const configured: NamedToken[] = [];

  for (const name of Object.keys(SCOPE_OF) as TokenName[]) {
    const token = config.tokens[name];
    if (token) configured.push({ name, scope: SCOPE_OF[name], token });
  }

  if (configured.length > 0) {
    log.info({ names: configured.map((t) => t.name) }, 'API tokens taken from the environment');
    return { tokens: configured, generatedFile: null };
  }

  if (!isLoopbackHost(config.host)) {
    throw new TokenSetupError(
      `no API token is configured and the server would listen on ${config.host}, which is ` +
        'not a loopback address. Set OWOKX_API_TOKEN_READONLY, OWOKX_API_TOKEN_AGENT, ' +
        'OWOKX_API_TOKEN_TRADE and OWOKX_API_TOKEN_ADMIN (or the legacy OWOKX_API_TOKEN), ' +
        'or listen on 127.0.0.1 to have tokens generated.',
    );
  }

  const file = path.join(config.dataDir, TOKEN_FILE);
  const stored = readTokenFile(file);
  const values = stored ?? generateTokens(file);

  log.warn(
    { file, reused: stored !== null },
    'no API token configured: using generated tokens for this loopback server',
  );
  process.stderr.write(`owokx-swarm: API tokens for this server are in ${file}\n`);

  return {
    tokens: GENERATED.map((name) => ({ name, scope: SCOPE_OF[name], token: values[name] })),
    generatedFile: file,
  };
}

type GeneratedTokens = Record<(typeof GENERATED)[number], string>;

/** The stored tokens, or null when there is no file yet. A damaged file is an error, not new
 * tokens: agents and scripts may hold the old ones, and silently replacing them locks them out. */
function readTokenFile(file: string): GeneratedTokens | null {
  let raw: string;

  try {
    raw = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new TokenSetupError(`cannot read ${file}: ${(err as Error).message}`);
  }

  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new TokenSetupError(
      `${file} is not valid JSON; fix it or delete it to generate new tokens`,
    );
  }

  const record = (parsed ?? {}) as Record<string, unknown>;
  for (const name of GENERATED) {
    const value = record[name];
    if (typeof value !== 'string' || value.length < 16) {
      throw new TokenSetupError(
        `${file} has no usable "${name}" token; fix it or delete it to generate new tokens`,
      );
    }
  }

  // Someone may have copied the file around with a looser mode; it holds admin credentials.
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);

  return record as GeneratedTokens;
}

function generateTokens(file: string): GeneratedTokens {
  const values = {} as GeneratedTokens;
  for (const name of GENERATED) values[name] = randomBytes(32).toString('base64url');

  mkdirSync(path.dirname(file), { recursive: true });

  // `wx`: if another process created the file in the meantime, fail instead of overwriting
  // tokens it may already have handed out.
  try {
    writeFileSync(file, `${JSON.stringify(values, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      const stored = readTokenFile(file);
      if (stored !== null) return stored;
    }
    throw new TokenSetupError(`cannot write ${file}: ${(err as Error).message}`);
  }

  return values;
}
