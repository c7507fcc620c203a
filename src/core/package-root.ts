// Where the package lives, found from any module of it: the same answer whether the code runs
// from its TypeScript sources (under tsx) or from the bundle in dist/, whose depth differs.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const NAME = 'owokx-swarm';

/** The directory of owokx-swarm's package.json, walking up from `moduleUrl`. */
export function packageRoot(moduleUrl: string): string {
  let dir = path.dirname(fileURLToPath(moduleUrl));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      const { name } = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string };
      if (name === NAME) return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no ${NAME} package.json above ${moduleUrl}`);
    dir = parent;
  }
}

export function packageVersion(moduleUrl: string): string {
  const manifest = path.join(packageRoot(moduleUrl), 'package.json');
  return String((JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version);
}
