// The HTTP layer: a Fastify app whose routes are thin translations onto the engine's SwarmApi.
// Auth, validation, errors, logging and metrics are wired here once, so a route file says only
// what its endpoints take, which scope they need and which engine call they make.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type RawServerDefault,
} from 'fastify';
import type { Logger, LoggerOptions } from 'pino';
import type { Config } from '../config.ts';
import { invalidRequest, SwarmError } from '../core/errors.ts';
import type { SwarmApi } from '../engine/contract.ts';
import { authHooks, declaredScope } from './auth.ts';
import { errorHandler, notFoundHandler } from './errors.ts';
import { loneSurrogateAt, MAX_JSON_DEPTH, nestsDeeperThan } from './limits.ts';
import { REDACT_PATHS, RequestLogController, requestId, requestLogger } from './logging.ts';
import { createMetrics, type HttpMetrics } from './metrics.ts';
import { registerAgentRoutes } from './routes/agents.ts';
import { registerCompatRoutes } from './routes/compat.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerMessageRoutes } from './routes/messages.ts';
import { registerQueueRoutes } from './routes/queue.ts';
import { registerRecoveryRoutes } from './routes/recovery.ts';
import type { ResolvedTokens } from './tokens.ts';
import { acceptsEmptyObject, compileValidator } from './validation.ts';

function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const status = tooLarge ? 431 : 400;
  const body = JSON.stringify({
    error: {
      code: 'invalid_request',
      message: tooLarge ? 'request headers are too large' : 'malformed HTTP request',
      details: [],
    },
  });

  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(
    `HTTP/1.1 ${status} ${tooLarge ? 'Request Header Fields Too Large' : 'Bad Request'}\r\n` +
      `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n${body}`,
  );
}

/** The contract's limit on a request body: 1 MiB, a batch of a thousand ordinary messages. */
export const BODY_LIMIT = 1024 * 1024;

export type App = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export interface RouteDeps {
  api: SwarmApi;
  config: Readonly<Config>;
  metrics: HttpMetrics;
}

export interface BuildAppOptions {
  api: SwarmApi;
  config: Readonly<Config>;
  /** A pino logger to log through, or options for a new one; default: config.logLevel. */
  logger?: Logger | LoggerOptions;
  tokens: ResolvedTokens;
}

const isLogger = (value: Logger | LoggerOptions): value is Logger =>
  typeof (value as Logger).info === 'function' && typeof (value as Logger).child === 'function';

type Hook = (request: FastifyRequest, reply: FastifyReply, done: () => void) => void;
const asList = <T>(value: T | T[] | undefined): T[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

// POST endpoints whose fields are all optional take an empty body, with or without a
// Content-Type; the schema then sees {} and fills in the defaults. Only those routes get the
// hook: on the others (enqueue among them) an empty body fails validation either way.
const emptyBodyIsObject: Hook = (request, _reply, done) => {
  if (request.body === undefined) request.body = {};
  done();
};

export async function buildApp(options: BuildAppOptions): Promise<App> {
  const { api, config, tokens } = options;
  const logger = options.logger ?? { level: config.logLevel };

  const handleError = errorHandler(BODY_LIMIT);

  const app = Fastify({
    ...(isLogger(logger)
      ? { loggerInstance: logger.child({}, { redact: REDACT_PATHS }) as FastifyBaseLogger }
      : { logger: { ...logger, redact: REDACT_PATHS } }),
    logController: new RequestLogController(),
    childLoggerFactory: requestLogger,
    genReqId: requestId,
    requestIdHeader: false,
    bodyLimit: BODY_LIMIT,
    // HEAD copies of every GET are of no use to an API's clients, and would double the routes
    // the scope check has to be bound to.
    exposeHeadRoutes: false,
    return503OnClosing: true,
    // Requests Node's parser rejects never reach a route; answer them in the one error shape.
    clientErrorHandler: answerClientError,
    // Agent ids run to 128 characters and topics to 256, percent-encoded in paths.
    routerOptions: { maxParamLength: 1024 },
    // URLs the router cannot even match (bad percent-encoding, an over-long segment) answer
    // in the same error shape as everything else.
    frameworkErrors: (err, request, reply) => {
      reply.header('x-request-id', request.id);
      handleError(err, request, reply);
      // These requests never reach a route, so no completion line follows: log it here.
      request.log.info(
        { method: request.method, url: request.url, statusCode: reply.statusCode },
        'request completed',
      );
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(compileValidator);
  app.decorateRequest('actor', null);

  // Only JSON is accepted: every other Content-Type, and a body without one, is a 415.
  // Fastify's own parser is kept for its prototype-poisoning guard; it refuses an empty body,
  // which the contract allows.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    // Bodies are read as sent: a compressed one would only fail later as "not JSON".
    const encoding = request.headers['content-encoding'];
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
      done(
        new SwarmError(
          'unsupported_media_type',
          `Content-Encoding ${encoding} is not accepted; send plain JSON`,
          [{ field: 'content-encoding', message: 'only identity' }],
        ),
        undefined,
      );
      return;
    }
    if (body === '') {
      done(null, undefined);
      return;
    }
    parseJson(request, body as string, (err, value) => {
      if (err) return done(err, undefined);
      // JSON this deep overflows the stack of every recursive walk after it (serializing it
      // for the store among them): refuse it here, before it can fail anyone else's request.
      if (nestsDeeperThan(body as string, MAX_JSON_DEPTH)) {
        return done(
          invalidRequest(`request body nests deeper than ${MAX_JSON_DEPTH} levels`, [
            { field: 'body', message: `at most ${MAX_JSON_DEPTH} levels of arrays and objects` },
          ]),
          undefined,
        );
      }
      const surrogate = loneSurrogateAt(body as string, value);
      if (surrogate !== null) {
        return done(
          invalidRequest('request body holds text that is not well-formed Unicode', [
            {
              field: surrogate,
              message: 'a lone UTF-16 surrogate (\\ud800-\\udfff without its pair)',
            },
          ]),
          undefined,
        );
      }
      done(null, value);
    });
  });

  app.setErrorHandler(handleError);

  const metrics = createMetrics(api);
  app.setNotFoundHandler((request, reply) => {
    reply.header('x-request-id', request.id);
    notFoundHandler(request, reply);
    metrics.observeNotFound(request, reply);
  });

  // Every route is bound at startup to its scope check and its duration histogram; a route
  // that declares no scope stops the server from starting.
  const hookFor = authHooks(tokens);
  app.addHook('onRoute', (route) => {
    const scope = declaredScope(route);

    route.onRequest = [hookFor(scope), ...asList(route.onRequest)];
    route.onResponse = [metrics.observer(route.url), ...asList(route.onResponse)];
    if (route.schema?.body !== undefined && acceptsEmptyObject(route.schema.body)) {
      route.preValidation = [emptyBodyIsObject, ...asList(route.preValidation)];
    }
  });

  const deps: RouteDeps = { api, config, metrics };
  registerHealthRoutes(app, deps);
  registerAgentRoutes(app, deps);
  registerMessageRoutes(app, deps);
  registerQueueRoutes(app, deps);
  registerRecoveryRoutes(app, deps);
  registerCompatRoutes(app, deps);

  app.addHook('onClose', async () => {
    metrics.registry.clear();
  });

  await app.ready();
  return app;
}
