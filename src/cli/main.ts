// swarmctl: one binary for `serve` and every operator action of the guide. Run it as
// `npx swarmctl …` (bin/swarmctl.js) or `tsx src/cli/main.ts …`; exit codes are in exit.ts.

import { Command, CommanderError } from 'commander';
import { packageVersion } from '../core/package-root.ts';
import { registerAgents } from './commands/agents.ts';
import { registerAudit } from './commands/audit.ts';
import { registerBench } from './commands/bench.ts';
import { registerDlq } from './commands/dlq.ts';
import { registerDrill } from './commands/drill.ts';
import { registerHealth } from './commands/health.ts';
import { registerQueue } from './commands/queue.ts';
import { registerRecovery } from './commands/recovery.ts';
import { registerRouting } from './commands/routing.ts';
import { registerServe } from './commands/serve.ts';
import { registerVerify } from './commands/verify.ts';
import { registerWatch } from './commands/watch.ts';
import { DEFAULT_TIMEOUT_MS, DEFAULT_URL } from './context.ts';
import { EXIT } from './exit.ts';
import { httpUrl, positiveInteger } from './options.ts';
import { Output } from './output.ts';

const version = (): string => packageVersion(import.meta.url);

export function buildProgram(): Command {
  const program = new Command('swarmctl');

  program
    .description(
      'Operate an owokx swarm: health, queue, dead letters, recovery drills, verification',
    )
    .version(version(), '-V, --version')
    .option(
      '--url <url>',
      'the coordinator (OWOKX_URL)',
      httpUrl,
      process.env.OWOKX_URL || DEFAULT_URL,
    )
    .option(
      '--token <token>',
      'bearer token (OWOKX_TOKEN; else the least-scoped OWOKX_API_TOKEN_* that the command needs)',
    )
    .option('--json', 'stable machine output on stdout', false)
    .option(
      '--timeout <ms>',
      'how long each request may wait for an answer',
      positiveInteger,
      DEFAULT_TIMEOUT_MS,
    )
    .option(
      '--data-dir <dir>',
      'the server data directory, where generated tokens are (OWOKX_DATA_DIR, default ./data)',
    )
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .showHelpAfterError('(swarmctl --help lists the commands and options)')
    // Inherited by every subcommand added below: usage errors come back to us as exceptions.
    .exitOverride();

  registerServe(program);
  registerHealth(program);
  registerAgents(program);
  registerRouting(program);
  registerQueue(program);
  registerDlq(program);
  registerRecovery(program);
  registerAudit(program);
  registerWatch(program);
  registerDrill(program);
  registerVerify(program);
  registerBench(program);

  return program;
}

export async function main(argv: string[] = process.argv): Promise<void> {
  // `swarmctl watch | head` closes the pipe early; that is the reader being done, not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.ok);
    throw err;
  });

  const program = buildProgram();

  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version end with 0; everything else commander rejects is a usage error.
      process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }

    new Output({ json: false }).error(err instanceof Error ? err.message : String(err));
    process.exitCode = EXIT.failed;
  }
}

await main();
