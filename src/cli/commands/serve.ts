// `serve`: start the coordinator in this process. Flags override OWOKX_* variables; both are
// validated by the config module, and a bad value stops us before anything listens.

import v8 from 'node:v8';
import type { Command } from 'commander';
import { ConfigError, type ConfigFlags, loadConfig } from '../../config.ts';
import { EXIT } from '../exit.ts';
import { Output } from '../output.ts';

interface ServeOptions {
  host?: string;
  port?: string;
  db?: string;
  dataDir?: string;
  logLevel?: string;
  staleAfterMs?: string;
  autoPruneAfterMs?: string;
  dispatchIntervalMs?: string;
  pruneMinStaleMs?: string;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('start the coordinator (the same as npm start)')
    .option('--host <host>', 'address to listen on (OWOKX_HOST, default 127.0.0.1)')
    .option('--port <port>', 'port to listen on, 0 for any free port (OWOKX_PORT, default 8787)')
    .option(
      '--db <url>',
      'sqlite:<path> or postgres://… (OWOKX_DATABASE_URL, default sqlite:./data/swarm.db)',
    )
    .option(
      '--log-level <level>',
      'fatal|error|warn|info|debug|trace|silent (OWOKX_LOG_LEVEL, default info)',
    )
    .option(
      '--stale-after-ms <ms>',
      'no heartbeat for this long makes an agent stale (OWOKX_STALE_AFTER_MS)',
    )
    .option(
      '--auto-prune-after-ms <ms>',
      'prune agents stale this long, 0 disables (OWOKX_AUTO_PRUNE_AFTER_MS)',
    )
    .option(
      '--dispatch-interval-ms <ms>',
      'how often the dispatcher pushes (OWOKX_DISPATCH_INTERVAL_MS)',
    )
    .option(
      '--prune-min-stale-ms <ms>',
      'smallest staleMs prune-stale accepts (OWOKX_PRUNE_MIN_STALE_MS)',
    )
    .action(async (_opts: ServeOptions, cmd: Command) => {
      process.exitCode = await serve(cmd.optsWithGlobals() as ServeOptions & { json?: boolean });
    });
}

async function serve(opts: ServeOptions & { json?: boolean }): Promise<number> {
  const out = new Output({ json: opts.json === true });

  const flags: ConfigFlags = {
    host: opts.host,
    port: opts.port,
    databaseUrl: opts.db,
    dataDir: opts.dataDir,
    logLevel: opts.logLevel,
    staleAfterMs: opts.staleAfterMs,
    autoPruneAfterMs: opts.autoPruneAfterMs,
    dispatchIntervalMs: opts.dispatchIntervalMs,
    pruneMinStaleMs: opts.pruneMinStaleMs,
  };

  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env, flags);
  } catch (err) {
    if (err instanceof ConfigError) {
      out.error(err.message);
      return EXIT.usage;
    }
    throw err;
  }

  boundHeapGrowth(config.heapGrowthPercent);

  // Loaded here, not at the top: every other command starts without Fastify and SQLite.
  const { startServer } = await import('../../server.ts');

  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(config);
  } catch (err) {
    out.error(startFailure(err, config.host, config.port));
    // A refused configuration (e.g. no tokens on a public address) is the operator's to fix.
    const refused = err instanceof ConfigError || (err as Error)?.name === 'TokenSetupError';
    return refused ? EXIT.usage : EXIT.failed;
  }

  let closing = false;
  const stop = (signal: NodeJS.Signals): void => {
    // A second signal means "now": the operator does not want to wait for the drain.
    if (closing) process.exit(signal === 'SIGINT' ? 130 : 143);
    closing = true;

    server.close().then(
      () => process.exit(EXIT.ok),
      (err: unknown) => {
        out.error(`error while closing: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(EXIT.failed);
      },
    );
  };

  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return EXIT.ok;
}

function startFailure(err: unknown, host: string, port: number): string {
  const e = err as { code?: string; message?: string };

  if (e?.code === 'EADDRINUSE') {
    return `cannot listen on ${host}:${port}: the port is already in use (another server running? try --port)`;
  }
  if (e?.code === 'EACCES') return `cannot listen on ${host}:${port}: permission denied`;
  return `cannot start the server: ${e?.message ?? String(err)}`;
}

/**
 * V8 sizes the heap for the machine: on 24 GiB it lets the old generation grow to about four
 * times what survives each full GC before collecting again. The server keeps ~25 MB live and
 * allocates fast, so under load its resident memory climbed to 200-220 MB although the live
 * heap never passed 30 MB. A bounded growth factor collects sooner: peak RSS in the 100k
 * benchmark fell to 140-165 MB, for a few percent of throughput (docs/benchmarks.md).
 * V8 reads this flag each time it sets the next limit, so setting it at start takes effect.
 */
function boundHeapGrowth(percent: number): void {
  if (percent > 0) v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}
