import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../../src/http/limits.ts';

const nested = (levels: number, open = '[', close = ']') =>
  `${open.repeat(levels)}${close.repeat(levels)}`;

describe('nestsDeeperThan', () => {
  it('allows exactly the limit and refuses one level more', () => {
    expect(nestsDeeperThan(nested(MAX_JSON_DEPTH), MAX_JSON_DEPTH)).toBe(false);
    expect(nestsDeeperThan(nested(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH)).toBe(true);
  });

  it('counts objects and arrays alike', () => {
    const mixed = `${'{"a":['.repeat(3)}1${']}'.repeat(3)}`;
    expect(JSON.parse(mixed)).toBeTruthy();
    expect(nestsDeeperThan(mixed, 6)).toBe(false);
    expect(nestsDeeperThan(mixed, 5)).toBe(true);
  });

  it('measures depth, not the number of brackets', () => {
    const wide = JSON.stringify(Array.from({ length: 1000 }, () => ({ a: [1] })));
    expect(nestsDeeperThan(wide, 3)).toBe(false);
    expect(nestsDeeperThan(wide, 2)).toBe(true);
  });

  it('skips brackets inside strings, escaped quotes included', () => {
    const text = JSON.stringify({ s: '[[[[{{{{', t: 'a \\" [[[[ "', u: ['\\', '{'] });
    expect(JSON.parse(text)).toBeTruthy();
    expect(nestsDeeperThan(text, 2)).toBe(false);
    expect(nestsDeeperThan(text, 1)).toBe(true);
  });

  it('agrees with a walk of the parsed value on random documents', () => {
    const depthOf = (value: unknown): number =>
      value !== null && typeof value === 'object'
        ? 1 + Math.max(0, ...Object.values(value).map(depthOf))
        : 0;
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const build = (level: number): unknown => {
      const r = random();
      if (level > 8 || r < 0.3) return r < 0.15 ? 'x"[{\\' : 1;
      const children = Array.from({ length: 1 + Math.floor(random() * 3) }, () => build(level + 1));
      return r < 0.65 ? children : Object.fromEntries(children.map((c, i) => [`k${i}{`, c]));
    };

    for (let i = 0; i < 200; i += 1) {
      const value = build(0);
      const text = JSON.stringify(value);
      const depth = depthOf(value);
      expect(nestsDeeperThan(text, depth)).toBe(false);
      if (depth > 0) expect(nestsDeeperThan(text, depth - 1)).toBe(true);
    }
  });
});
