// The server as one plain-JavaScript file, so production runs on node alone. Under tsx the
// server also carries tsx's loader thread and transform caches: measured on the 2-core
// machine, 174 MB resident when idle from the sources against 107 MB from this bundle.
// Dependencies stay in node_modules (packages: 'external'), so the file must live inside the
// package for them to resolve: dist/ for `npm start`, .tmp/ for the benchmark's own server.
//
//   tsx scripts/bundle.ts [outfile]     (default dist/swarmctl.js)

import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { build, stop } from 'esbuild';

import { packageRoot } from '../src/core/package-root.ts';

const ROOT = packageRoot(import.meta.url);

export async function bundleServer(outfile: string): Promise<string> {
  const target = path.resolve(ROOT, outfile);
  await build({
    entryPoints: [path.join(ROOT, 'src/cli/main.ts')],
    outfile: target,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    // Function names appear in logs, stack traces and CPU profiles.
    keepNames: true,
    sourcemap: 'linked',
    logLevel: 'warning',
  });
  // esbuild keeps a service process for the next build; the benchmark would run beside it.
  await stop();
  return target;
}

if (
  process.argv[1] !== undefined &&
  fileURLToPath(import.meta.url) === path.resolve(process.argv[1])
) {
  const outfile = await bundleServer(process.argv[2] ?? 'dist/swarmctl.js');
  process.stdout.write(`built ${path.relative(process.cwd(), outfile)}\n`);
}
