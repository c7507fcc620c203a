// The data plane's hot path: enqueue, publish, poll, ack, nack (agent scope). These answers are
// serialized through response schemas (fast-json-stringify), and a short poll allocates no
// hang-up signal: only a long poll can outlive its client.

import type { FastifyReply } from 'fastify';
import { invalidRequest } from '../../core/errors.ts';
import {
  AckBodySchema,
  AckResponseSchema,
  AgentParamsSchema,
  DeliveriesResponseSchema,
  EnqueueBodySchema,
  EnqueueResponseSchema,
  NackBodySchema,
  NackResponseSchema,
  PublishBodySchema,
  pollBodySchema,
} from '../../core/schemas.ts';
import { type Delivery, deliveryJson } from '../../core/types.ts';
import type { CancelSignal, EnqueueInput } from '../../engine/contract.ts';
import type { App, RouteDeps } from '../app.ts';
import { checkPayloads } from '../limits.ts';

/**
 * The client of a long poll hung up. One listener at a time is all the engine ever adds; an
 * AbortController would do the same through EventTarget at several times the cost.
 */
class HangUp implements CancelSignal {
  aborted = false;
  private listeners: (() => void)[] = [];

  addEventListener(_type: 'abort', listener: () => void): void {
    this.listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    this.listeners = this.listeners.filter((l) => l !== listener);
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listeners = this.listeners;
    this.listeners = [];
    for (const listener of listeners) listener();
  }
}

/**
 * Poll answers are built from the stored message text: parsing each message only to
 * serialize it again was ~6% of the server's CPU in the benchmark's profile.
 */
function sendDeliveries(reply: FastifyReply, deliveries: Delivery[]): FastifyReply {
  const body = `{"deliveries":[${deliveries.map(deliveryJson).join(',')}]}`;
  return reply
    .type('application/json; charset=utf-8')
    .serializer((payload) => payload as string)
    .send(body);
}

export function registerMessageRoutes(app: App, { api, config }: RouteDeps): void {
  app.post(
    '/swarm/messages',
    {
      config: { scope: 'agent' },
      schema: { body: EnqueueBodySchema, response: { 200: EnqueueResponseSchema } },
    },
    async (request) => {
      const body = request.body;

      if (body.messages !== undefined) {
        const stray = (['message', 'delayMs', 'maxAttempts'] as const).filter(
          (key) => body[key] !== undefined,
        );
        if (stray.length > 0) {
          const why = (field: string) =>
            `${field} cannot be combined with messages: give each item its own`;
          throw invalidRequest(
            why(stray[0] as string),
            stray.map((field) => ({ field, message: why(field) })),
          );
        }

        const items = body.messages;
        checkPayloads(
          request,
          items.map((item) => item.message.payload),
          (i) => `messages[${i}].message.payload`,
        );
        return { results: await api.enqueue(items, true) };
      }

      if (body.message === undefined) {
        throw invalidRequest('message is required (or messages, for a batch)', [
          { field: 'message', message: 'message is required' },
        ]);
      }

      checkPayloads(request, [body.message.payload], () => 'message.payload');
      // The body is the item itself: message, delayMs, maxAttempts, and nothing else.
      const [result] = await api.enqueue([body as EnqueueInput]);
      return result;
    },
  );

  app.post(
    '/swarm/publish',
    { config: { scope: 'agent' }, schema: { body: PublishBodySchema } },
    (request) => {
      checkPayloads(request, [request.body.payload], () => 'payload');
      return api.publish(request.body);
    },
  );

  app.post(
    '/swarm/agents/:id/poll',
    {
      config: { scope: 'agent' },
      schema: {
        params: AgentParamsSchema,
        body: pollBodySchema(config.defaultLeaseMs),
        response: { 200: DeliveriesResponseSchema },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const input = request.body;

      if (input.waitMs === 0) return sendDeliveries(reply, await api.poll(id, input));

      // A client that hangs up mid-wait must not take leases it will never see: the engine
      // stops waiting when the signal fires.
      const hangUp = new HangUp();
      const onClose = () => {
        if (!reply.raw.writableEnded) hangUp.abort();
      };
      reply.raw.on('close', onClose);

      try {
        return sendDeliveries(reply, await api.poll(id, input, hangUp));
      } finally {
        reply.raw.off('close', onClose);
      }
    },
  );

  app.post(
    '/swarm/ack',
    {
      config: { scope: 'agent' },
      schema: { body: AckBodySchema, response: { 200: AckResponseSchema } },
    },
    (request) => api.ack(request.body.queueIds, request.body.agentId),
  );

  app.post(
    '/swarm/nack',
    {
      config: { scope: 'agent' },
      schema: { body: NackBodySchema, response: { 200: NackResponseSchema } },
    },
    (request) => api.nack(request.body),
  );
}
