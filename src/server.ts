// The server's life: open the store and migrate it, start the engine's loops, listen, and on
// close do it all backwards — stop accepting, let in-flight requests finish, stop the loops,
// close the store. Leases held by pull agents are in the store and simply run their course.

import pino, { type Logger } from 'pino';

import { type Config, ConfigError, sqlitePath } from './config.ts';
import { SwarmEngine } from './engine/engine.ts';
import { type App, buildApp } from './http/app.ts';
import { REDACT_PATHS } from './http/logging.ts';
import { resolveTokens } from './http/tokens.ts';
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

/** Refuses a database URL no store of this release can open. */
function requireKnownStore(config: Readonly<Config>): void {
  if (!config.databaseUrl.startsWith('sqlite:')) {
    throw new ConfigError(
      `OWOKX_DATABASE_URL: PostgreSQL is not available in this release; use sqlite:<path> (got "${config.databaseUrl}")`,
    );
  }
}

/** Opens the store a database URL names; its warnings (a failed checkpoint) go to `log`. */
export async function openStore(config: Readonly<Config>, log?: Logger): Promise<Store> {
  requireKnownStore(config);

  const store = new SqliteStore(
    sqlitePath(config.databaseUrl),
    log === undefined ? {} : { warn: (message) => log.warn(message) },
  );
  await store.migrate();
  return store;
}

export async function startServer(
  config: Readonly<Config>,
  log: Logger = createLogger(config),
): Promise<RunningServer> {
  // Before tokens: a server that cannot start must not leave a generated tokens.json behind.
  requireKnownStore(config);
  const tokens = resolveTokens(config, log);
  const store = await openStore(config, log);
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
  log.info({ address, database: config.databaseUrl.split('?')[0] }, 'owokx-swarm listening');

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
