// `bench`: the release benchmark of bench/swarm.ts, so `swarmctl bench …` and
// `npm run benchmark:swarm -- …` are one tool. Everything after `bench` is passed through;
// the global --json, --url and --token (which swarmctl itself parses) are handed on as the
// benchmark's --json, --base-url and --token.

import { pathToFileURL } from 'node:url';

import type { Command } from 'commander';

import { packageRoot } from '../../core/package-root.ts';
import { dataDirOf, type GlobalOptions } from '../context.ts';
import { usageError } from '../exit.ts';
import { resolveToken } from '../tokens.ts';

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(
      'the release benchmark (npm run benchmark:swarm); swarmctl bench --help for its flags',
    )
    .argument('[args...]', 'benchmark flags, e.g. --messages 1000 --agents 5 --runs 3')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async (args: string[], _opts: unknown, cmd: Command) => {
      process.exitCode = await bench(args, cmd);
    });
}

async function bench(args: string[], cmd: Command): Promise<number> {
  const globals = cmd.optsWithGlobals() as GlobalOptions;
  const root = cmd.parent as Command;
  const argv = [...args];

  if (globals.json && !argv.includes('--json')) argv.push('--json');

  // Only an explicit --url means "measure that server"; otherwise the benchmark starts its own.
  if (root.getOptionValueSource('url') === 'cli' && !argv.includes('--base-url')) {
    argv.push('--base-url', globals.url);

    const token = resolveToken('trade', {
      flag: globals.token,
      env: process.env,
      url: globals.url,
      dataDir: dataDirOf(globals),
    });
    if (token.token && !argv.includes('--token')) argv.push('--token', token.token);
  }

  // Loaded only when asked for: the benchmark brings its own dependencies (histograms, bars).
  // The path is computed, so the server's bundle (scripts/bundle.ts) does not take the
  // benchmark in with it; the benchmark runs from the sources, as bin/swarmctl.js does.
  const entry = new URL('bench/swarm.ts', pathToFileURL(`${packageRoot(import.meta.url)}/`));
  let bench: { main(argv: string[]): Promise<number> };
  try {
    bench = (await import(entry.href)) as typeof bench;
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
    throw usageError(
      'the benchmark runs from the TypeScript sources: use npx swarmctl bench or npm run benchmark:swarm',
    );
  }
  return bench.main(argv);
}
