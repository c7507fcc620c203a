// Which bearer token a command sends. An explicit token (--token, OWOKX_TOKEN) always wins;
// otherwise the scoped variables are tried from the least scope the command needs upward, so a
// read-only command never travels with an admin token when a read token is at hand. Only when
// no variable is set at all does a loopback URL fall back to the server's generated tokens.json.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { AuthScope } from '../core/types.ts';

export type NeededScope = AuthScope | 'none';

export const SCOPE_ORDER: readonly AuthScope[] = ['read', 'agent', 'trade', 'admin'];

/** The environment variables for each scope; the legacy single token counts as admin. */
const SCOPE_VARS: Record<AuthScope, string[]> = {
  read: ['OWOKX_API_TOKEN_READONLY'],
  agent: ['OWOKX_API_TOKEN_AGENT'],
  trade: ['OWOKX_API_TOKEN_TRADE'],
  admin: ['OWOKX_API_TOKEN_ADMIN', 'OWOKX_API_TOKEN'],
};

/** The keys of the server's generated `<dataDir>/tokens.json`, per scope. */
const FILE_KEYS: Record<AuthScope, string[]> = {
  read: ['readonly', 'read'],
  agent: ['agent'],
  trade: ['trade'],
  admin: ['admin', 'legacy'],
};

export interface ResolvedToken {
  token: string | undefined;
  /** Where it came from, for messages: "--token", "OWOKX_API_TOKEN_TRADE", "data/tokens.json". */
  source: string;
  /** The scope the token was found under; undefined for an explicit token (unknown). */
  scope: AuthScope | undefined;
}

export interface TokenSources {
  flag: string | undefined;
  env: NodeJS.ProcessEnv;
  url: string;
  dataDir: string;
}

/** Every variable that may hold a token: when none is set, the generated file is consulted. */
const ALL_VARS = ['OWOKX_TOKEN', ...Object.values(SCOPE_VARS).flat()];

export function resolveToken(needed: NeededScope, sources: TokenSources): ResolvedToken {
  if (sources.flag) return { token: sources.flag, source: '--token', scope: undefined };

  const { env } = sources;
  if (env.OWOKX_TOKEN) return { token: env.OWOKX_TOKEN, source: 'OWOKX_TOKEN', scope: undefined };

  const from = needed === 'none' ? 'read' : needed;
  const candidates = SCOPE_ORDER.slice(SCOPE_ORDER.indexOf(from));

  for (const scope of candidates) {
    for (const name of SCOPE_VARS[scope]) {
      const value = env[name];
      if (value) return { token: value, source: name, scope };
    }
  }

  // Nothing strong enough: send the strongest weaker token anyway. Its reads still work, and
  // the server's 403 then names the missing scope, which says more than a 401 would.
  const weaker = SCOPE_ORDER.slice(0, SCOPE_ORDER.indexOf(from)).reverse();
  for (const scope of weaker) {
    for (const name of SCOPE_VARS[scope]) {
      const value = env[name];
      if (value) return { token: value, source: name, scope };
    }
  }

  // A newcomer's first run: `npm start` generated tokens on loopback; find them there.
  const anySet = ALL_VARS.some((name) => Boolean(env[name]));
  if (!anySet && isLoopback(sources.url)) {
    const file = path.join(sources.dataDir, 'tokens.json');
    const stored = readTokenFile(file);

    for (const scope of candidates) {
      for (const key of FILE_KEYS[scope]) {
        const value = stored?.[key];
        if (typeof value === 'string' && value !== '') {
          return { token: value, source: path.relative(process.cwd(), file) || file, scope };
        }
      }
    }
  }

  return { token: undefined, source: 'none', scope: undefined };
}

/** The token file's scope → token map, or undefined when it is absent or unreadable. */
function readTokenFile(file: string): Record<string, unknown> | undefined {
  let parsed: unknown;

  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }

  if (typeof parsed !== 'object' || parsed === null) return undefined;

  // Accept both {"readonly": …} and {"tokens": {"readonly": …}}, whichever the server wrote.
  const nested = (parsed as { tokens?: unknown }).tokens;
  if (typeof nested === 'object' && nested !== null) return nested as Record<string, unknown>;
  return parsed as Record<string, unknown>;
}

export function isLoopback(url: string): boolean {
  let host: string;

  try {
    host = new URL(url).hostname;
  } catch {
    return false;
  }

  return (
    host === 'localhost' || host === '[::1]' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host)
  );
}
