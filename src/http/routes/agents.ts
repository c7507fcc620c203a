// The registry: agents register, heartbeat, subscribe and leave (agent scope); operators list
// them, look at one, and preview routing (read scope).

import {
  AgentParamsSchema,
  AgentsQuerySchema,
  HeartbeatBodySchema,
  OkResponseSchema,
  RegisterAgentBodySchema,
  RoutingQuerySchema,
  SubscriptionParamsSchema,
  SubscriptionsQuerySchema,
} from '../../core/schemas.ts';
import type { App, RouteDeps } from '../app.ts';
import { checkObjectSize } from '../limits.ts';

const OK = { ok: true } as const;
const okResponse = { 200: OkResponseSchema };

export function registerAgentRoutes(app: App, { api }: RouteDeps): void {
  app.get(
    '/swarm/agents',
    { config: { scope: 'read' }, schema: { querystring: AgentsQuerySchema } },
    async (request) => {
      const page = await api.listAgents(request.query);
      return { agents: page.items, total: page.total, nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/swarm/agents/:id',
    { config: { scope: 'read' }, schema: { params: AgentParamsSchema } },
    (request) => api.getAgent(request.params.id),
  );

  app.get(
    '/swarm/routing',
    { config: { scope: 'read' }, schema: { querystring: RoutingQuerySchema } },
    (request) => api.routing(request.query.type, request.query.count),
  );

  app.get(
    '/swarm/subscriptions',
    { config: { scope: 'read' }, schema: { querystring: SubscriptionsQuerySchema } },
    async (request) => ({ subscriptions: await api.subscriptions(request.query.topic) }),
  );

  app.post(
    '/swarm/agents',
    { config: { scope: 'agent' }, schema: { body: RegisterAgentBodySchema } },
    (request) => {
      checkObjectSize(request.body.metadata, 'metadata');
      return api.registerAgent(request.body);
    },
  );

  app.post(
    '/swarm/agents/:id/heartbeat',
    {
      config: { scope: 'agent' },
      schema: { params: AgentParamsSchema, body: HeartbeatBodySchema, response: okResponse },
    },
    async (request) => {
      checkObjectSize(request.body.metrics, 'metrics');
      await api.heartbeat(request.params.id, request.body);
      return OK;
    },
  );

  app.delete(
    '/swarm/agents/:id',
    { config: { scope: 'agent' }, schema: { params: AgentParamsSchema } },
    async (request) => {
      const { released, deadLettered } = await api.deregisterAgent(request.params.id);
      return { ok: true, released, deadLettered };
    },
  );

  app.put(
    '/swarm/agents/:id/subscriptions/:topic',
    {
      config: { scope: 'agent' },
      schema: { params: SubscriptionParamsSchema, response: okResponse },
    },
    async (request) => {
      await api.subscribe(request.params.id, request.params.topic);
      return OK;
    },
  );

  app.delete(
    '/swarm/agents/:id/subscriptions/:topic',
    {
      config: { scope: 'agent' },
      schema: { params: SubscriptionParamsSchema, response: okResponse },
    },
    async (request) => {
      await api.unsubscribe(request.params.id, request.params.topic);
      return OK;
    },
  );
}
