// The operator's drills: dispatch, requeue dead letters and prune stale agents (trade scope),
// purge dead letters (admin), and the audit log of all of them (read). Every action records
// who asked (scope, token name, request id), never the token.

import type { FastifyRequest } from 'fastify';
import { invalidRequest, SwarmError } from '../../core/errors.ts';
import {
  AuditQuerySchema,
  DispatchBodySchema,
  PURGE_FILTERS,
  PurgeBodySchema,
  pruneBodySchema,
  RequeueBodySchema,
} from '../../core/schemas.ts';
import type { Actor } from '../../engine/contract.ts';
import type { App, RouteDeps } from '../app.ts';

function actorOf(request: FastifyRequest): Actor {
  // The scope hook sets it on every route that needs a token; its absence is our bug.
  if (request.actor === null) throw new SwarmError('internal', 'no actor for an operator action');
  return request.actor;
}

export function registerRecoveryRoutes(app: App, { api, config }: RouteDeps): void {
  // The staleMs floor is the server's setting, so this one schema is built from config.
  const PruneBodySchema = pruneBodySchema(config.pruneMinStaleMs);

  app.post(
    '/swarm/dispatch',
    { config: { scope: 'trade' }, schema: { body: DispatchBodySchema } },
    (request) => api.dispatch(request.body.limit, actorOf(request)),
  );

  app.post(
    '/swarm/recovery/requeue-dlq',
    { config: { scope: 'trade' }, schema: { body: RequeueBodySchema } },
    (request) => api.requeueDeadLetters(request.body, actorOf(request)),
  );

  app.post(
    '/swarm/recovery/prune-stale',
    { config: { scope: 'trade' }, schema: { body: PruneBodySchema } },
    (request) => api.pruneStale(request.body, actorOf(request)),
  );

  app.post(
    '/swarm/recovery/purge-dlq',
    { config: { scope: 'admin' }, schema: { body: PurgeBodySchema } },
    (request) => {
      // No filter would mean "everything": that has to be said, e.g. {"olderThanMs":0}.
      if (!PURGE_FILTERS.some((key) => request.body[key] !== undefined)) {
        const message = `purge-dlq needs at least one filter: ${PURGE_FILTERS.join(', ')}`;
        throw invalidRequest(message, [{ field: 'body', message }]);
      }
      return api.purgeDeadLetters(request.body, actorOf(request));
    },
  );

  app.get(
    '/swarm/audit',
    { config: { scope: 'read' }, schema: { querystring: AuditQuerySchema } },
    async (request) => {
      const page = await api.listAudit(request.query.limit, request.query.cursor);
      return { items: page.items, total: page.total, nextCursor: page.nextCursor };
    },
  );
}
