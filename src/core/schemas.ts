// The wire schemas of the HTTP contract (../shared/spec/api.md "Model"), as TypeBox JSON Schema.
// The HTTP layer validates with them and the clients type their calls with them, so a rule is
// written once. Every `description` finishes the sentence "<field> must be …": the HTTP layer
// uses it for the 400 message that names the field and its allowed range.

import Type, { type Static, type TSchema } from 'typebox';
import { AGENT_STATUSES, DEAD_LETTER_REASONS, MESSAGE_TYPES, PRIORITIES } from './types.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const DAY = 24 * 60 * MINUTE;

/** The most entries one request may name or carry (batch enqueue, ack, requeue ids, pages). */
export const MAX_BATCH = 1000;
/** Serialized JSON size limits, in bytes of UTF-8. */
export const MAX_PAYLOAD_BYTES = 256 * 1024;
export const MAX_METADATA_BYTES = 8 * 1024;
export const MAX_DELAY_MS = 7 * DAY;
export const MAX_WAIT_MS = 30 * SECOND;
export const DEFAULT_PRUNE_STALE_MS = 10 * MINUTE;
/** The floor for prune-stale's staleMs when the server's config does not say otherwise. */
export const DEFAULT_PRUNE_MIN_STALE_MS = MINUTE;

// Integers without a stated upper bound still stop at 2^53 - 1: beyond it they lose precision
// in JSON and in SQLite's 64-bit integers alike.
const MAX_INT = Number.MAX_SAFE_INTEGER;

const int = (minimum: number, maximum: number, extra: Record<string, unknown> = {}) =>
  Type.Integer({ minimum, maximum, ...extra });

const text = (minLength: number, maxLength: number) => Type.String({ minLength, maxLength });

/**
 * A name the store keeps as a column of its own (a topic, a capability): no U+0000, which
 * PostgreSQL's text cannot hold, so a name that works on one store works on the other.
 */
const name = (minLength: number, maxLength: number) =>
  Type.String({ minLength, maxLength, pattern: '^[^\\u0000]+$' });

const strictObject = <T extends Parameters<typeof Type.Object>[0]>(properties: T) =>
  Type.Object(properties, { additionalProperties: false });

// ---- the model ----

export const AgentIdSchema = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: '^[A-Za-z0-9._:-]+$',
  description: '1 to 128 characters of A-Za-z0-9._:-',
});

export const AgentTypeSchema = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[a-z0-9_-]+$',
  description: '1 to 64 characters of a-z0-9_-',
});

export const AgentStatusSchema = Type.Enum([...AGENT_STATUSES]);
export const MessageTypeSchema = Type.Enum([...MESSAGE_TYPES]);
export const PrioritySchema = Type.Enum([...PRIORITIES]);
export const DeadLetterReasonSchema = Type.Enum([...DEAD_LETTER_REASONS]);

export const CapabilitiesSchema = Type.Array(name(1, 128), { maxItems: 64 });

export const EndpointSchema = Type.String({
  maxLength: 2048,
  format: 'uri',
  pattern: '^https?://',
  description: 'an http:// or https:// URL of at most 2048 characters',
});

export const JsonObjectSchema = Type.Record(Type.String(), Type.Unknown());

export const TopicSchema = name(1, 256);
export const QueueIdSchema = text(1, 256);
export const QueueIdsSchema = Type.Array(QueueIdSchema, { minItems: 1, maxItems: MAX_BATCH });
export const CursorSchema = text(1, 1024);
export const LimitSchema = int(1, MAX_BATCH, { default: 100 });

export const HeadersSchema = Type.Record(Type.String(), text(0, 4096), {
  maxProperties: 64,
  description: 'an object of at most 64 string values',
});

export const TimestampSchema = Type.String({
  format: 'date-time',
  description: 'an ISO 8601 date-time such as 2024-05-01T12:00:00.000Z',
});

const messageFields = {
  // No control characters: fan-out copies key their dedupe on `id NUL agentId`.
  id: Type.Optional(
    Type.String({ minLength: 1, maxLength: 256, pattern: '^[^\\u0000-\\u001f]+$' }),
  ),
  source: Type.Optional(text(1, 256)),
  target: text(1, 256),
  type: Type.Optional(MessageTypeSchema),
  topic: Type.Optional(Type.Union([TopicSchema, Type.Null()])),
  payload: Type.Optional(Type.Unknown()),
  timestamp: Type.Optional(TimestampSchema),
  correlationId: Type.Optional(text(1, 256)),
  replyTo: Type.Optional(text(1, 256)),
  priority: Type.Optional(PrioritySchema),
  ttlMs: Type.Optional(int(1, MAX_INT)),
  headers: Type.Optional(HeadersSchema),
};

/** A message envelope as a client sends it; the engine fills id, type, timestamp, priority. */
export const MessageInputSchema = strictObject(messageFields);
export type MessageInputBody = Static<typeof MessageInputSchema>;

const enqueueOptions = {
  delayMs: Type.Optional(int(0, MAX_DELAY_MS)),
  maxAttempts: Type.Optional(int(1, 100)),
};

export const EnqueueItemSchema = strictObject({ message: MessageInputSchema, ...enqueueOptions });
export type EnqueueItem = Static<typeof EnqueueItemSchema>;

/**
 * POST /swarm/messages takes one item or `{"messages":[…]}`. One flat object, not a union, so
 * a mistake gets one message naming the field instead of a report per branch; the route checks
 * that exactly one of `message` and `messages` is there.
 */
export const EnqueueBodySchema = strictObject({
  message: Type.Optional(MessageInputSchema),
  messages: Type.Optional(Type.Array(EnqueueItemSchema, { minItems: 1, maxItems: MAX_BATCH })),
  ...enqueueOptions,
});
export type EnqueueBody = Static<typeof EnqueueBodySchema>;
export type EnqueueRequest = EnqueueItem | { messages: EnqueueItem[] };

export const PublishBodySchema = strictObject({
  topic: TopicSchema,
  payload: Type.Optional(Type.Unknown()),
  source: messageFields.source,
  priority: messageFields.priority,
  ttlMs: messageFields.ttlMs,
  type: messageFields.type,
  id: messageFields.id,
  headers: messageFields.headers,
  correlationId: messageFields.correlationId,
});
export type PublishBody = Static<typeof PublishBodySchema>;

const agentFields = {
  id: Type.Optional(AgentIdSchema),
  type: AgentTypeSchema,
  status: Type.Optional(AgentStatusSchema),
  capabilities: Type.Optional(CapabilitiesSchema),
  endpoint: Type.Optional(Type.Union([EndpointSchema, Type.Null()])),
  maxInflight: Type.Optional(int(1, 10_000)),
  metadata: Type.Optional(JsonObjectSchema),
};

export const RegisterAgentBodySchema = strictObject(agentFields);
export type RegisterAgentBody = Static<typeof RegisterAgentBodySchema>;

export const HeartbeatBodySchema = strictObject({
  status: Type.Optional(AgentStatusSchema),
  metrics: Type.Optional(JsonObjectSchema),
});
export type HeartbeatBody = Static<typeof HeartbeatBodySchema>;

/** The poll body; the lease default is the server's OWOKX_LEASE_MS. */
export function pollBodySchema(defaultLeaseMs: number = 30 * SECOND) {
  return strictObject({
    limit: int(1, MAX_BATCH, { default: 20 }),
    waitMs: int(0, MAX_WAIT_MS, { default: 0 }),
    leaseMs: int(SECOND, 10 * MINUTE, { default: defaultLeaseMs }),
  });
}
export const PollBodySchema = pollBodySchema();
export type PollBody = Static<typeof PollBodySchema>;

export const AckBodySchema = strictObject({
  queueIds: QueueIdsSchema,
  agentId: Type.Optional(AgentIdSchema),
});
export type AckBody = Static<typeof AckBodySchema>;

export const NackBodySchema = strictObject({
  queueIds: QueueIdsSchema,
  error: Type.Optional(text(0, 4096)),
  retry: Type.Boolean({ default: true }),
  delayMs: Type.Optional(int(0, MAX_DELAY_MS)),
  agentId: Type.Optional(AgentIdSchema),
});
export type NackBody = Static<typeof NackBodySchema>;

// ---- operator bodies: every unknown field is an error, so a typo never runs with defaults ----

export const DispatchBodySchema = strictObject({ limit: int(1, MAX_BATCH, { default: 200 }) });
export type DispatchBody = Static<typeof DispatchBodySchema>;

export const RequeueBodySchema = strictObject({
  limit: int(1, MAX_BATCH, { default: 50 }),
  ids: Type.Optional(Type.Array(QueueIdSchema, { maxItems: MAX_BATCH })),
  topic: Type.Optional(TopicSchema),
  target: Type.Optional(text(1, 256)),
  reason: Type.Optional(DeadLetterReasonSchema),
  dryRun: Type.Boolean({ default: false }),
});
export type RequeueBody = Static<typeof RequeueBodySchema>;

/** The floor comes from the server's config (OWOKX_PRUNE_MIN_STALE_MS), hence a factory. */
export function pruneBodySchema(minStaleMs: number = DEFAULT_PRUNE_MIN_STALE_MS) {
  return strictObject({
    staleMs: int(minStaleMs, MAX_INT, { default: Math.max(DEFAULT_PRUNE_STALE_MS, minStaleMs) }),
    dryRun: Type.Boolean({ default: false }),
  });
}
export const PruneBodySchema = pruneBodySchema();
export type PruneBody = Static<typeof PruneBodySchema>;

export const PurgeBodySchema = strictObject({
  ids: Type.Optional(Type.Array(QueueIdSchema, { minItems: 1, maxItems: MAX_BATCH })),
  topic: Type.Optional(TopicSchema),
  reason: Type.Optional(DeadLetterReasonSchema),
  olderThanMs: Type.Optional(int(0, MAX_INT)),
  dryRun: Type.Boolean({ default: false }),
});
export type PurgeBody = Static<typeof PurgeBodySchema>;
/** At least one of these must be given: a purge with no filter would empty the whole DLQ. */
export const PURGE_FILTERS = ['ids', 'topic', 'reason', 'olderThanMs'] as const;

// ---- queries and path parameters ----

const pageQuery = {
  limit: LimitSchema,
  cursor: Type.Optional(CursorSchema),
};

export const AgentsQuerySchema = strictObject({
  type: Type.Optional(AgentTypeSchema),
  status: Type.Optional(AgentStatusSchema),
  stale: Type.Optional(Type.Boolean()),
  ...pageQuery,
});
export type AgentsQuery = Static<typeof AgentsQuerySchema>;

export const RoutingQuerySchema = strictObject({
  type: Type.Optional(AgentTypeSchema),
  count: int(1, 20, { default: 3 }),
});
export type RoutingQuery = Static<typeof RoutingQuerySchema>;

export const DeadLettersQuerySchema = strictObject({
  topic: Type.Optional(TopicSchema),
  target: Type.Optional(text(1, 256)),
  reason: Type.Optional(DeadLetterReasonSchema),
  ...pageQuery,
});
export type DeadLettersQuery = Static<typeof DeadLettersQuerySchema>;

export const SubscriptionsQuerySchema = strictObject({ topic: Type.Optional(TopicSchema) });
export type SubscriptionsQuery = Static<typeof SubscriptionsQuerySchema>;

export const AuditQuerySchema = strictObject(pageQuery);
export type AuditQuery = Static<typeof AuditQuerySchema>;

export const AgentParamsSchema = strictObject({ id: AgentIdSchema });
export const SubscriptionParamsSchema = strictObject({ id: AgentIdSchema, topic: TopicSchema });
export const QueueIdParamsSchema = strictObject({ queueId: QueueIdSchema });

// ---- the original worker's /registry/* bodies: lenient, since its clients send extras ----

export const LegacyRegisterBodySchema = Type.Object({
  ...agentFields,
  // The original sent its own clock's lastHeartbeat and a metrics map; both are ignored.
  lastHeartbeat: Type.Optional(Type.Unknown()),
  metrics: Type.Optional(Type.Unknown()),
});
export type LegacyRegisterBody = Static<typeof LegacyRegisterBodySchema>;

export const LegacyMessageSchema = Type.Object({
  ...messageFields,
  // The original stamped messages with epoch milliseconds; an ISO string is accepted too.
  // Epoch milliseconds up to the last instant a Date can hold (year 275760).
  timestamp: Type.Optional(Type.Union([TimestampSchema, int(0, 8_640_000_000_000_000)])),
});
export type LegacyMessage = Static<typeof LegacyMessageSchema>;

export const LegacyEnqueueBodySchema = Type.Object({
  message: LegacyMessageSchema,
  ...enqueueOptions,
});
export type LegacyEnqueueBody = Static<typeof LegacyEnqueueBodySchema>;

export const LegacyPublishBodySchema = Type.Object(PublishBodySchema.properties);
export type LegacyPublishBody = Static<typeof LegacyPublishBodySchema>;

export const LegacySubscriptionBodySchema = Type.Object({
  agentId: AgentIdSchema,
  topic: TopicSchema,
});
export type LegacySubscriptionBody = Static<typeof LegacySubscriptionBodySchema>;

export const LegacyPollQuerySchema = Type.Object({
  agentId: AgentIdSchema,
  limit: int(1, MAX_BATCH, { default: 20 }),
});
export type LegacyPollQuery = Static<typeof LegacyPollQuerySchema>;

// ---- answers of the hot routes, serialized by fast-json-stringify ----

const nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const MessageSchema = Type.Object({
  id: Type.String(),
  source: Type.String(),
  target: Type.String(),
  type: Type.String(),
  topic: nullable(Type.String()),
  payload: Type.Unknown(),
  timestamp: Type.String(),
  correlationId: Type.Optional(Type.String()),
  replyTo: Type.Optional(Type.String()),
  priority: Type.String(),
  ttlMs: Type.Optional(Type.Number()),
  headers: Type.Optional(Type.Record(Type.String(), Type.String())),
});

export const DeliverySchema = Type.Object({
  queueId: Type.String(),
  attempt: Type.Integer(),
  leaseExpiresAt: Type.Number(),
  message: MessageSchema,
});

export const DeliveriesResponseSchema = Type.Object({ deliveries: Type.Array(DeliverySchema) });

export const EnqueueResultSchema = Type.Object({
  queueId: nullable(Type.String()),
  duplicate: Type.Boolean(),
  queueIds: Type.Array(Type.String()),
  messageId: Type.String(),
});

/** One item's answer, or `results` for a batch: both shapes under one schema. */
export const EnqueueResponseSchema = Type.Object({
  queueId: Type.Optional(nullable(Type.String())),
  duplicate: Type.Optional(Type.Boolean()),
  queueIds: Type.Optional(Type.Array(Type.String())),
  messageId: Type.Optional(Type.String()),
  results: Type.Optional(Type.Array(EnqueueResultSchema)),
});

const RejectedSchema = Type.Array(Type.Object({ queueId: Type.String(), why: Type.String() }));

export const AckResponseSchema = Type.Object({
  acked: Type.Integer(),
  rejected: RejectedSchema,
});

export const NackResponseSchema = Type.Object({
  retried: Type.Integer(),
  deadLettered: Type.Integer(),
  rejected: RejectedSchema,
});

export const OkResponseSchema = Type.Object({ ok: Type.Boolean() });
