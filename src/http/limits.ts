// Size rules that JSON Schema cannot state: a body nests at most 64 levels; a payload is at most
// 256 KiB and metadata at most 8 KiB once serialized. Measuring means serializing, so the payload check first asks whether
// the request body is big enough to hold an oversized payload at all; nearly every enqueue is
// a few hundred bytes and skips the work.

import type { FastifyRequest } from 'fastify';
import { type ErrorDetail, invalidRequest } from '../core/errors.ts';
import { MAX_METADATA_BYTES, MAX_PAYLOAD_BYTES } from '../core/schemas.ts';

/** The UTF-8 size of a value's JSON, as the store will keep it. */
export function jsonBytes(value: unknown): number {
  const text = JSON.stringify(value);
  return text === undefined ? 0 : Buffer.byteLength(text, 'utf8');
}

// Re-serializing can make JSON longer than it arrived only through numbers: "1e20" comes back
// as 21 digits, a factor of 5.25. A body under a sixth of the limit can hold no payload over it.
const EXPANSION = 6;

/** Nesting allowed in a request body: far beyond any real message, far below the stack. */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether JSON text, already known to parse, opens more than `max` arrays or objects inside one
 * another. A scan of the text rather than a walk of the parsed value: it allocates nothing,
 * and brackets inside strings are skipped, escapes included.
 */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;

  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);

    if (c === QUOTE) {
      i += 1;
      while (i < text.length) {
        const d = text.charCodeAt(i);
        if (d === QUOTE) break;
        i += d === BACKSLASH ? 2 : 1;
      }
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth += 1;
      if (depth > max) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth -= 1;
    }
  }
  return false;
}

/**
 * Where a parsed body holds a lone UTF-16 surrogate ("\ud800" with no partner), in a string
 * or a key: the path to it, else null. Such text has no UTF-8 form, and a database turns it
 * into U+FFFD, so two different ids would become one. Raw UTF-8 cannot carry one (Node
 * decodes invalid bytes as U+FFFD), only a \u escape can: bodies without such an escape,
 * nearly all of them, are passed without a walk.
 */
export function loneSurrogateAt(text: string, value: unknown): string | null {
  if (!SURROGATE_ESCAPE.test(text)) return null;
  return walkForSurrogate(value, 'body');
}

const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function walkForSurrogate(value: unknown, path: string): string | null {
  if (typeof value === 'string') return LONE_SURROGATE.test(value) ? path : null;
  if (typeof value !== 'object' || value === null) return null;

  for (const [key, item] of Object.entries(value)) {
    const at = Array.isArray(value) ? `${path}[${key}]` : `${path}.${key}`;
    if (LONE_SURROGATE.test(key)) return at;
    const found = walkForSurrogate(item, at);
    if (found !== null) return found;
  }
  return null;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

function bodyMayHold(request: FastifyRequest, bytes: number): boolean {
  const length = Number(request.headers['content-length']);
  return !(length * EXPANSION <= bytes);
}

function tooLarge(field: string, limit: number, size: number): ErrorDetail {
  return { field, message: `${field} must be at most ${limit} bytes of JSON`, limit, size };
}

function throwIfAny(details: ErrorDetail[]): void {
  if (details.length === 0) return;

  const first = details[0] as ErrorDetail;
  const more = details.length > 1 ? ` (and ${details.length - 1} more problems)` : '';
  throw invalidRequest(`${first.message}${more}`, details);
}

/** Rejects any message payload over 256 KiB; `fieldOf` names the payload at an index. */
export function checkPayloads(
  request: FastifyRequest,
  payloads: readonly unknown[],
  fieldOf: (index: number) => string,
): void {
  if (!bodyMayHold(request, MAX_PAYLOAD_BYTES)) return;

  const details: ErrorDetail[] = [];
  payloads.forEach((payload, index) => {
    const size = jsonBytes(payload);
    if (size > MAX_PAYLOAD_BYTES) details.push(tooLarge(fieldOf(index), MAX_PAYLOAD_BYTES, size));
  });

  throwIfAny(details);
}

/** Rejects an agent's metadata (or heartbeat metrics) over 8 KiB. */
export function checkObjectSize(value: unknown, field: string): void {
  if (value === undefined) return;

  const size = jsonBytes(value);
  throwIfAny(size > MAX_METADATA_BYTES ? [tooLarge(field, MAX_METADATA_BYTES, size)] : []);
}
