// The original owokx worker's /registry/* paths, for agents and scripts written against it
// (agent scope). Its clients send extra fields, so these bodies are lenient: unknown fields are
// accepted and dropped here, and only the fields the engine knows travel on. Each answer keeps
// the original's shape ({"ok":true,…}), which those clients check.

import {
  LegacyEnqueueBodySchema,
  type LegacyMessage,
  LegacyPollQuerySchema,
  LegacyPublishBodySchema,
  LegacyRegisterBodySchema,
  LegacySubscriptionBodySchema,
  MAX_BATCH,
} from '../../core/schemas.ts';
import type { MessageInput, RegisterAgentInput } from '../../engine/contract.ts';
import type { App, RouteDeps } from '../app.ts';
import { checkObjectSize, checkPayloads } from '../limits.ts';

/** Copies the envelope fields the engine knows; the original stamped epoch ms, we keep ISO. */
function toMessageInput(message: LegacyMessage): MessageInput {
  const { timestamp } = message;

  return {
    id: message.id,
    source: message.source,
    target: message.target,
    type: message.type,
    topic: message.topic,
    payload: message.payload,
    timestamp: typeof timestamp === 'number' ? new Date(timestamp).toISOString() : timestamp,
    correlationId: message.correlationId,
    replyTo: message.replyTo,
    priority: message.priority,
    ttlMs: message.ttlMs,
    headers: message.headers,
  };
}

export function registerCompatRoutes(app: App, { api }: RouteDeps): void {
  const agent = { scope: 'agent' } as const;

  app.post(
    '/registry/register',
    { config: agent, schema: { body: LegacyRegisterBodySchema } },
    async (request) => {
      const body = request.body;
      checkObjectSize(body.metadata, 'metadata');

      const input: RegisterAgentInput = {
        id: body.id,
        type: body.type,
        status: body.status,
        capabilities: body.capabilities,
        endpoint: body.endpoint,
        maxInflight: body.maxInflight,
        metadata: body.metadata,
      };
      const { agent: registered } = await api.registerAgent(input);
      return { ok: true, agent: registered };
    },
  );

  app.post(
    '/registry/queue/enqueue',
    { config: agent, schema: { body: LegacyEnqueueBodySchema } },
    async (request) => {
      const { message, delayMs, maxAttempts } = request.body;
      checkPayloads(request, [message.payload], () => 'message.payload');

      const [result] = await api.enqueue([
        { message: toMessageInput(message), delayMs, maxAttempts },
      ]);
      return { ok: true, queueId: result?.queueId ?? null };
    },
  );

  app.post(
    '/registry/queue/publish',
    { config: agent, schema: { body: LegacyPublishBodySchema } },
    async (request) => {
      const body = request.body;
      checkPayloads(request, [body.payload], () => 'payload');

      const { enqueued, queueIds } = await api.publish({
        topic: body.topic,
        payload: body.payload,
        source: body.source,
        priority: body.priority,
        ttlMs: body.ttlMs,
        type: body.type,
        id: body.id,
        headers: body.headers,
        correlationId: body.correlationId,
      });
      return { ok: true, enqueued, queueIds };
    },
  );

  // The original handed messages out and forgot them in one step; so does this.
  app.get(
    '/registry/queue/poll',
    { config: agent, schema: { querystring: LegacyPollQuerySchema } },
    async (request) => {
      const deliveries = await api.pollAndAck(request.query.agentId, request.query.limit);
      return { messages: deliveries.map((delivery) => delivery.message) };
    },
  );

  app.post(
    '/registry/subscriptions/subscribe',
    { config: agent, schema: { body: LegacySubscriptionBodySchema } },
    async (request) => {
      await api.subscribe(request.body.agentId, request.body.topic);
      return { ok: true };
    },
  );

  app.post(
    '/registry/subscriptions/unsubscribe',
    { config: agent, schema: { body: LegacySubscriptionBodySchema } },
    async (request) => {
      await api.unsubscribe(request.body.agentId, request.body.topic);
      return { ok: true };
    },
  );

  // The original answered with every agent at once; pages are joined to keep that promise.
  app.get('/registry/agents', { config: agent }, async () => {
    const agents = [];
    let cursor: string | undefined;

    do {
      const page = await api.listAgents({ limit: MAX_BATCH, cursor });
      agents.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);

    return { agents };
  });

  // Always 200, as the original was: its clients read `healthy`, not the status code.
  app.get('/registry/health', { config: agent }, () => api.swarmHealth());
}
