// Parsers for option values. They check only the form (an integer, a list); ranges are the
// server's to judge, so a message about a range always reads the same from curl and swarmctl.

import { InvalidArgumentError } from 'commander';
import { DEAD_LETTER_REASONS, type DeadLetterReason } from '../core/types.ts';

export function integer(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError('must be a non-negative integer');
  }
  return n;
}

export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('must be a positive integer');
  }
  return n;
}

/** `a,b,c` → ['a','b','c'], blanks dropped; repeating the flag adds to the list. */
export function idList(value: string, previous: string[] = []): string[] {
  const ids = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (ids.length === 0) throw new InvalidArgumentError('must list at least one id');
  return [...previous, ...ids];
}

export function reason(value: string): DeadLetterReason {
  if (!(DEAD_LETTER_REASONS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`must be one of ${DEAD_LETTER_REASONS.join(', ')}`);
  }
  return value as DeadLetterReason;
}

export function booleanFlag(value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new InvalidArgumentError('must be true or false');
}

export function httpUrl(value: string): string {
  let url: URL;

  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('must be an http:// or https:// URL');
  }

  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError('must be an http:// or https:// URL');
  }
  return value.replace(/\/+$/, '');
}
