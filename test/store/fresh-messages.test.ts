import { describe, expect, it } from 'vitest';
import { FreshMessages } from '../../src/store/sqlite/fresh-messages.ts';

describe('FreshMessages', () => {
  it('gives a text once', () => {
    const fresh = new FreshMessages(1000);
    fresh.add(1, 'one');

    expect(fresh.take(1)).toBe('one');
    expect(fresh.take(1)).toBeUndefined();
    expect(fresh.held).toBe(0);
  });

  it('keeps within its budget by dropping the oldest first', () => {
    const fresh = new FreshMessages(640);
    for (let id = 1; id <= 100; id += 1) fresh.add(id, 'x'.repeat(10));

    expect(fresh.held).toBeLessThanOrEqual(640);
    expect(fresh.count).toBe(64);
    expect(fresh.take(36)).toBeUndefined();
    expect(fresh.take(37)).toBe('x'.repeat(10));
    expect(fresh.take(100)).toBe('x'.repeat(10));
  });

  it('does not spend a slot on a text larger than a share of the budget', () => {
    const fresh = new FreshMessages(640);
    fresh.add(1, 'small');
    fresh.add(2, 'y'.repeat(11));

    expect(fresh.take(2)).toBeUndefined();
    expect(fresh.take(1)).toBe('small');
  });
});
