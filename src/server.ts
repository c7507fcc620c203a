// The server's life: open the store and migrate it, start the engine's loops, listen, and on
// close do it all backwards — stop accepting, let in-flight requests finish, stop the loops,
// close the store. Leases held by pull agents are in the store and simply run their course.

import pino, { type Logger } from 'pino';

import { type Config, ConfigError, sqlitePath } from './config.ts';
import { SwarmEngine } from './engine/engine.ts';
import { type App, buildApp } from './http/app.ts';
import { REDACT_PATHS } from './http/logging.ts';
import { resolveTokens } from './http/tokens.ts';
import { PostgresStore } from './store/postgres/postgres-store.ts';
import { SqliteStore } from './store/sqlite/sqlite-store.ts';
import type { Store } from './store/store.ts';

export interface RunningServer {
  url: string;
  port: number;
  app: App;
  engine: SwarmEngine;
  close(): Promise<void>;
}

export function createLogger(config: Readonly<Config>): Logger {
  return pino({
    level: config.logLevel,
    base: { service: 'owokx-swarm' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  });
}

/** The database URL as a log line may show it: no password. */
export function describeDatabase(databaseUrl: string): string {
  if (databaseUrl.startsWith('sqlite:')) return databaseUrl.split('?')[0] as string;
  try {
    const url = new URL(databaseUrl);
    url.password = '';
    // Of the query, only the schema is worth naming: coordinators on two schemas of one
    // database must not log the same line. Anything else may carry a secret (password=…).
    const schema = /search_path\s*=\s*([^\s,]+)/.exec(url.searchParams.get('options') ?? '')?.[1];
    url.search = '';
    return schema === undefined ? url.toString() : `${url.toString()} (schema ${schema})`;
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/**
 * Opens and migrates the store a database URL names; its warnings (a failed checkpoint, a
 * lost connection) go to `log`. A database that cannot be opened is a ConfigError: the
 * server cannot start, and says which URL and why.
 */
export async function openStore(config: Readonly<Config>, log?: Logger): Promise<Store> {
  const warn = log === undefined ? {} : { warn: (message: string) => log.warn(message) };
  const store = config.databaseUrl.startsWith('sqlite:')
    ? new SqliteStore(sqlitePath(config.databaseUrl), warn)
    : new PostgresStore(config.databaseUrl, { ...warn, poolSize: config.databasePoolSize });

  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => {});
    if (store.dialect === 'sqlite') throw err;
    // The driver's own words (password authentication failed, database does not exist) say
    // what to fix; the domain error around them only says that the store failed.
    const cause = (err as { cause?: unknown }).cause;
    const code = (err as { details?: { message: string }[] }).details?.[0]?.message;
    const why =
      cause instanceof Error && cause.message !== ''
        ? cause.message
        : (code ?? (err as Error).message);
    throw new ConfigError(
      `OWOKX_DATABASE_URL: cannot open ${describeDatabase(config.databaseUrl)}: ${why}`,
    );
  }
  return store;
}

export async function startServer(
  config: Readonly<Config>,
  log: Logger = createLogger(config),
): Promise<RunningServer> {
  // Before tokens: a server that cannot open its store must not leave a generated
  // tokens.json behind.
  const store = await openStore(config, log);
  let tokens: ReturnType<typeof resolveTokens>;
  try {
    tokens = resolveTokens(config, log);
  } catch (err) {
    await store.close();
    throw err;
  }
  const engine = new SwarmEngine({ store, config, log });
  await engine.start();

  const app = await buildApp({ api: engine, config, logger: log, tokens });
  let address: string;
  try {
    address = await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await engine.stop();
    await store.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND' || code === 'EADDRNOTAVAIL' || code === 'EAI_AGAIN') {
      throw new ConfigError(`OWOKX_HOST: cannot listen on "${config.host}" (${code})`);
    }
    throw err;
  }
  const port = (app.server.address() as { port: number }).port;
  log.info({ address, database: describeDatabase(config.databaseUrl) }, 'owokx-swarm listening');

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      log.info('shutting down: no new requests; finishing in-flight ones');
      // Parked long-polls answer first, so the server is not held open by idle agents. A
      // keep-alive connection that was busy when closing began becomes idle only after its
      // answer is written, and Node closes idle connections once, at the start: sweep them
      // until the server is closed, or one agent holds shutdown for the keep-alive timeout.
      const stopping = engine.stop();
      const sweeper = setInterval(() => app.server.closeIdleConnections(), 100);
      try {
        await app.close();
      } finally {
        clearInterval(sweeper);
      }
      await stopping;
      await store.close();
      log.info('shut down cleanly');
    })();
    return closing;
  };

  return { url: address, port, app, engine, close };
}
