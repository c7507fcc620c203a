// The scope check. Every route declares the scope it needs (`config.scope`); the onRequest hook
// runs before the body is read, so a caller without the right token never costs a parse.
//
// Scopes are ordered: read < agent < trade < admin. A presented token is hashed with SHA-256
// and compared with the digest of every known token through timingSafeEqual, without stopping
// at a match: the time taken says nothing about how much of a token was right, nor about its
// length.
//
// Hashing costs a few microseconds, a noticeable share of a 5,000 enqueues/s budget, so a token
// that matched is remembered by its exact text. That map only ever holds strings equal to a
// configured token (five at most, no eviction needed); a lookup that misses falls through to
// the constant-time path, and a hit tells the caller nothing the 200 it gets does not.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { SwarmError } from '../core/errors.ts';
import type { AuthScope } from '../core/types.ts';
import type { Actor } from '../engine/contract.ts';
import type { NamedToken, ResolvedTokens } from './tokens.ts';

/** A route's requirement: a scope, or `public` for /health and /ready. */
export type RouteScope = AuthScope | 'public';

declare module 'fastify' {
  interface FastifyContextConfig {
    scope?: RouteScope;
  }

  interface FastifyRequest {
    /** Who is calling, once the scope check has passed; null on public routes. */
    actor: Actor | null;
  }
}

export const SCOPE_RANK: Record<AuthScope, number> = { read: 0, agent: 1, trade: 2, admin: 3 };

interface KnownToken {
  digest: Buffer;
  named: NamedToken;
}

const sha256 = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/** Matches a presented bearer token against the known ones in constant time. */
export function tokenMatcher(resolved: ResolvedTokens): (presented: string) => NamedToken | null {
  // Highest scope first: if one secret was configured under two names, it grants the larger.
  const known: KnownToken[] = [...resolved.tokens]
    .sort((a, b) => SCOPE_RANK[b.scope] - SCOPE_RANK[a.scope])
    .map((named) => ({ digest: sha256(named.token), named }));
  const verified = new Map<string, NamedToken>();

  return (presented) => {
    const remembered = verified.get(presented);
    if (remembered !== undefined) return remembered;

    const digest = sha256(presented);
    let match: NamedToken | null = null;

    for (const candidate of known) {
      if (timingSafeEqual(digest, candidate.digest) && match === null) match = candidate.named;
    }

    if (match !== null) verified.set(presented, match);
    return match;
  };
}

/** The bearer token in an Authorization header, or null when there is none. */
function bearerToken(header: string | undefined): string | null {
  if (header === undefined || header.length < 8) return null;
  if (header.slice(0, 7).toLowerCase() !== 'bearer ') return null;

  const token = header.slice(7).trim();
  return token === '' ? null : token;
}

/** Refuses to start a route that forgot to say what scope it needs. */
export function declaredScope(route: RouteOptions): RouteScope {
  const scope = route.config?.scope;
  if (scope === 'public' || (scope !== undefined && scope in SCOPE_RANK)) return scope;

  throw new Error(`route ${String(route.method)} ${route.url} declares no auth scope`);
}

type OnRequest = (
  request: FastifyRequest,
  reply: FastifyReply,
  done: (err?: Error) => void,
) => void;

/**
 * Builds each route's onRequest hook from the scope it declares: 401 without a known token,
 * 403 with one that lacks the scope. The hook is bound per route at startup, so a request
 * never looks its route's options up (Fastify builds a fresh object on each such read).
 */
export function authHooks(resolved: ResolvedTokens): (needed: RouteScope) => OnRequest {
  const match = tokenMatcher(resolved);

  const publicHook: OnRequest = (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  };

  return (needed) => {
    if (needed === 'public') return publicHook;
    const rank = SCOPE_RANK[needed];

    return (request, reply, done) => {
      reply.header('x-request-id', request.id);

      const token = bearerToken(request.headers.authorization);
      if (token === null) {
        return done(new SwarmError('unauthorized', 'a bearer token is required'));
      }

      const found = match(token);
      if (found === null) {
        return done(new SwarmError('unauthorized', 'the bearer token is not valid'));
      }

      if (SCOPE_RANK[found.scope] < rank) {
        return done(
          new SwarmError('forbidden', `this endpoint needs the ${needed} scope`, [
            { message: `the token has the ${found.scope} scope`, needed, scope: found.scope },
          ]),
        );
      }

      request.actor = { scope: found.scope, tokenName: found.name, requestId: request.id };
      done();
    };
  };
}
