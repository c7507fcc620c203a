import { describe, expect, it } from 'vitest';
import { printable } from '../../src/cli/format.ts';

describe('printable', () => {
  it('leaves ordinary names as they are', () => {
    for (const name of ['signals.fx', 'type:analyst', 'a b', 'Ünïcødé', '(x', '--']) {
      expect(printable(name)).toBe(name);
    }
  });

  it('quotes names that could pass for a placeholder', () => {
    expect(printable('(no topic)')).toBe('"(no topic)"');
    expect(printable('-')).toBe('"-"');
    expect(printable(' padded')).toBe('" padded"');
  });

  it('never lets a control character through', () => {
    const hostile = '\u001b[2J\u001b[Hhealthy\r\n\u009b31m\u202eevil\u0007';
    const shown = printable(hostile);

    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point.
    expect(shown).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
    expect(shown).toContain('\\u001b[2J');
    expect(shown).toContain('\\u009b');
    expect(shown).toContain('\\u202e');
  });
});
