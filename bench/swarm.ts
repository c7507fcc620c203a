// `npm run benchmark:swarm -- --messages 1000 --agents 5 --runs 3`, and `swarmctl bench`.
// The operator guide's release benchmark: see docs/benchmarks.md for what each number means.

import { pathToFileURL } from 'node:url';
import { runBenchmark } from './lib/main.ts';

/** Runs the benchmark with these flags (as after `process.argv.slice(2)`); resolves to the exit code. */
export function main(argv: string[]): Promise<number> {
  return runBenchmark(argv, { stdout: process.stdout, stderr: process.stderr, env: process.env });
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;

if (invokedDirectly) {
  // Exiting runs the 'exit' handlers, which stop our own server and delete its store; the
  // default action of these signals would skip them.
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbenchmark interrupted (${signal}): stopping\n`);
      process.exit(code);
    });
  }

  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`benchmark failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
