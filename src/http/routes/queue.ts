// What is queued and what is dead (read scope): the queue's gauges, and the dead-letter queue
// page by page or one entry at a time (for `swarmctl dlq show`).

import { SwarmError } from '../../core/errors.ts';
import { DeadLettersQuerySchema, QueueIdParamsSchema } from '../../core/schemas.ts';
import type { App, RouteDeps } from '../app.ts';

export function registerQueueRoutes(app: App, { api }: RouteDeps): void {
  app.get('/swarm/queue', { config: { scope: 'read' } }, () => api.queueSummary());

  app.get(
    '/swarm/queue/dead-letters',
    { config: { scope: 'read' }, schema: { querystring: DeadLettersQuerySchema } },
    async (request) => {
      const page = await api.listDeadLetters(request.query);
      return { items: page.items, total: page.total, nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/swarm/queue/dead-letters/:queueId',
    { config: { scope: 'read' }, schema: { params: QueueIdParamsSchema } },
    async (request) => {
      const { queueId } = request.params;
      const entry = await api.getEntry(queueId);

      // An entry that was requeued (or never died) is not a dead letter any more.
      if (entry.state !== 'dead') {
        throw new SwarmError('not_found', `dead letter ${queueId} does not exist`, [
          { field: 'queueId', message: `${queueId} is ${entry.state}, not dead` },
        ]);
      }
      return entry;
    },
  );
}
