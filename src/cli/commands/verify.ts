// `verify`: Drill 3's post-deploy validation, for the deployment workflow and for people.
// Prints a PASS/FAIL table; --report writes the same VerifyResult as --json, to a file.

import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { action } from '../context.ts';
import { EXIT } from '../exit.ts';
import { formatDuration } from '../format.ts';
import { positiveInteger } from '../options.ts';
import type { Output } from '../output.ts';
import { type VerifyResult, verify } from '../verify.ts';

interface VerifyOptions {
  report?: string;
  maxLatencyMs: number;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description(
      'post-deploy validation (Drill 3): health, readiness, metrics shape, auth, latency',
    )
    .option('--report <file>', 'also write the results as JSON to this file')
    .option('--max-latency-ms <ms>', 'a check slower than this fails', positiveInteger, 1000)
    .addHelpText(
      'after',
      '\nExample: swarmctl verify --url https://staging.example.com --report verify.json',
    )
    .action(
      action('verify', 'read', async (ctx, opts: VerifyOptions) => {
        const { token } = ctx;

        // The 403 check proves a read token cannot recover; a trade token standing in proves nothing.
        const readTokenProblem =
          token.scope !== undefined && token.scope !== 'read'
            ? `no read-only token: only ${token.source} (${token.scope} scope) is set; set OWOKX_API_TOKEN_READONLY or --token`
            : undefined;

        const result = await verify({
          url: ctx.url,
          client: ctx.clientWith(null),
          readToken: token.token,
          readTokenProblem,
          maxLatencyMs: opts.maxLatencyMs,
        });

        if (opts.report) await writeFile(opts.report, `${JSON.stringify(result, null, 2)}\n`);

        if (ctx.json) ctx.out.printJson(result);
        else printTable(ctx.out, result);

        if (result.unreachable) return EXIT.unreachable;
        return result.passed ? EXIT.ok : EXIT.failed;
      }),
    );
}

function printTable(out: Output, result: VerifyResult): void {
  out.line(`${out.heading('verify')}  ${out.c.dim(result.url)}`);
  out.line('');
  out.line(
    out.table(
      ['CHECK', 'RESULT', 'TIME', 'DETAIL'],
      result.checks.map((c) => [
        c.name,
        c.warning ? `${out.status(c.status)} ${out.status('WARN')}` : out.status(c.status),
        c.ms === null ? '-' : formatDuration(c.ms),
        c.detail,
      ]),
      ['left', 'left', 'right', 'left'],
    ),
  );
  out.line('');

  for (const w of result.warnings) out.line(out.c.yellow(`WARN ${w}`));

  const total = result.checks.filter((c) => c.status !== 'SKIP').length;
  if (result.unreachable) {
    out.line(out.c.red(`FAIL: ${result.url} is unreachable; nothing else could be checked`));
  } else if (result.passed) {
    out.line(out.c.green(`PASS: all ${total} checks passed`));
  } else {
    out.line(
      out.c.red(
        `FAIL: ${result.failed.length} of ${total} checks failed: ${result.failed.join(', ')}`,
      ),
    );
  }
}
