// Positions in a profile of a tsx-run server point into tsx's transformed code, which is
// whitespace-minified (a 1,100-line file becomes a few long lines), so "sqlite-store.ts:32"
// names nothing. tsx keeps each transform with its source map in a cache directory; this maps
// a profile position back to the line in the .ts file, so an anonymous function is findable.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import os from 'node:os';
import path from 'node:path';

interface CacheEntry {
  map?: SourceMapPayload & { sourcesContent?: (string | null)[] };
}

/** tsx's cache: `<tmpdir>/tsx-<uid>`, as tsx itself names it. */
export function tsxCacheDir(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return path.join(os.tmpdir(), `tsx-${uid}`);
}

export class TsxSourceMaps {
  private index: Map<string, SourceMap> | null = null;

  constructor(private readonly cacheDir: string = tsxCacheDir()) {}

  /** The 1-based line in the original file, or null when no cached map covers it. */
  originalLine(file: string, line0: number, column0: number): number | null {
    const map = this.load().get(file);
    if (!map) return null;

    const entry = map.findEntry(line0, column0) as { originalLine?: number };
    return typeof entry?.originalLine === 'number' ? entry.originalLine + 1 : null;
  }

  // One pass over the cache. When a file was transformed more than once (it was edited), the
  // transform of its current content wins, else the newest one.
  private load(): Map<string, SourceMap> {
    if (this.index) return this.index;

    const best = new Map<string, { map: SourceMap; current: boolean; mtime: number }>();
    let names: string[] = [];
    try {
      names = readdirSync(this.cacheDir);
    } catch {
      names = [];
    }

    for (const name of names) {
      const full = path.join(this.cacheDir, name);

      try {
        const entry = JSON.parse(readFileSync(full, 'utf8')) as CacheEntry;
        const source = entry.map?.sources?.[0];
        if (!entry.map || !source) continue;

        const current = entry.map.sourcesContent?.[0] === readCurrent(source);
        const mtime = statSync(full).mtimeMs;
        const seen = best.get(source);
        if (
          !seen ||
          (current && !seen.current) ||
          (current === seen.current && mtime > seen.mtime)
        ) {
          best.set(source, { map: new SourceMap(entry.map), current, mtime });
        }
      } catch {
        // Another tool's file, or one being written right now: not a map we need.
      }
    }

    this.index = new Map([...best].map(([file, { map }]) => [file, map]));
    return this.index;
  }
}

const contents = new Map<string, string | null>();

function readCurrent(file: string): string | null {
  if (!contents.has(file)) {
    try {
      contents.set(file, readFileSync(file, 'utf8'));
    } catch {
      contents.set(file, null);
    }
  }
  return contents.get(file) ?? null;
}
