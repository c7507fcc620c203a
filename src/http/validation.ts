// Request validation: TypeBox's compiled checkers in place of Fastify's Ajv, so that nothing is
// coerced, clamped or stripped. Fastify's Ajv defaults (coerceTypes, removeAdditional) would
// turn {"limit":"5"} into 5 and drop a misspelt field silently; the contract wants both
// rejected with a message naming the field and its allowed range.
//
// Bodies are checked as sent. Querystrings and path parameters arrive as strings, so integers
// and booleans are converted first, strictly: "25" becomes 25, but "abc", "2.5", "0x10" and
// "1e3" stay strings and fail the check (TypeBox's own Convert would truncate 2.5 to 2).

import type { FastifySchemaCompiler } from 'fastify';
import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import type { TLocalizedValidationError } from 'typebox/error';
import { type ErrorDetail, SwarmError } from '../core/errors.ts';

type JsonSchema = {
  type?: string;
  description?: string;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  patternProperties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  default?: unknown;
};

type HttpPart = 'body' | 'querystring' | 'params' | 'headers';

const INTEGER = /^-?\d{1,16}$/;

/** Fastify's validator compiler: one compiled checker per route and part, built at startup. */
export const compileValidator: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const part = (httpPart ?? 'body') as HttpPart;
  const root = schema as JsonSchema;
  const checker = Compile(schema);
  const withDefaults = hasDefaults(root);
  const convert = part === 'body' ? null : stringConverter(root);

  return (data: unknown) => {
    if (convert !== null) convert(data);

    // Filling defaults walks the schema, so it is skipped where no field has one: the hot
    // enqueue body has none.
    const value = withDefaults ? checker.Default(data) : data;
    if (checker.Check(value)) return { value };

    return { error: validationError(root, checker.Errors(value), part) };
  };
};

/** Whether a body schema accepts `{}`: the routes whose every field is optional. */
export function acceptsEmptyObject(schema: unknown): boolean {
  const checker = Compile(schema as TSchema);
  return checker.Check(hasDefaults(schema as JsonSchema) ? checker.Default({}) : {});
}

/** Converts the integer and boolean fields of a flat query or params object, in place. */
function stringConverter(root: JsonSchema): ((data: unknown) => void) | null {
  const fields: [string, 'integer' | 'boolean'][] = [];

  for (const [key, sub] of Object.entries(root.properties ?? {})) {
    if (sub.type === 'integer' || sub.type === 'boolean') fields.push([key, sub.type]);
  }
  if (fields.length === 0) return null;

  return (data) => {
    if (typeof data !== 'object' || data === null) return;
    const record = data as Record<string, unknown>;

    for (const [key, kind] of fields) {
      const raw = record[key];
      if (typeof raw !== 'string') continue;

      if (kind === 'integer' && INTEGER.test(raw)) record[key] = Number(raw);
      else if (kind === 'boolean' && (raw === 'true' || raw === 'false'))
        record[key] = raw === 'true';
    }
  };
}

function hasDefaults(schema: JsonSchema | undefined): boolean {
  if (schema === undefined) return false;
  if (schema.default !== undefined) return true;

  return (
    Object.values(schema.properties ?? {}).some(hasDefaults) ||
    (schema.items !== undefined && hasDefaults(schema.items))
  );
}

// ---- errors: one detail per field, in words ----

function validationError(
  root: JsonSchema,
  errors: TLocalizedValidationError[],
  part: HttpPart,
): SwarmError {
  const details: ErrorDetail[] = [];
  const seen = new Set<string>();

  const add = (segments: string[], message: string, keyword: string) => {
    const field = fieldName(segments, part);
    if (seen.has(field)) return;

    seen.add(field);
    details.push({ field, message: message.replace('{field}', field), keyword });
  };

  for (const error of errors) {
    const segments = pointerSegments(error.instancePath);

    if (error.keyword === 'required') {
      const params = error.params as { requiredProperties?: string[] };
      for (const name of params.requiredProperties ?? []) {
        add([...segments, name], '{field} is required', 'required');
      }
      continue;
    }

    if (error.keyword === 'additionalProperties') {
      const params = error.params as { additionalProperties?: string[] };
      const known = Object.keys(schemaAt(root, segments)?.properties ?? {});
      const hint = known.length > 0 ? ` (known fields: ${known.join(', ')})` : '';
      for (const name of params.additionalProperties ?? []) {
        add([...segments, name], `{field} is not a known field${hint}`, 'additionalProperties');
      }
      continue;
    }

    // `additionalProperties: false` also reports each extra field as a failed `false` schema;
    // the additionalProperties error above already named it.
    if (error.keyword === 'boolean' && error.schemaPath.endsWith('/additionalProperties')) continue;

    const schema = schemaAt(root, segments);
    const rule = schema === undefined ? 'valid' : describe(schema);
    add(segments, `{field} must be ${rule}`, error.keyword);
  }

  if (details.length === 0) {
    details.push({ field: part, message: `${part} is not valid`, keyword: 'unknown' });
  }

  const first = details[0] as ErrorDetail;
  const more = details.length > 1 ? ` (and ${details.length - 1} more problems)` : '';
  return new SwarmError('invalid_request', `${first.message}${more}`, details);
}

/** "limit", "message.target", "messages[3].message.payload"; the part itself for the root. */
function fieldName(segments: string[], part: HttpPart): string {
  if (segments.length === 0) return part === 'querystring' ? 'query' : part;

  let name = '';
  for (const segment of segments) {
    if (/^\d+$/.test(segment)) name += `[${segment}]`;
    else name += name === '' ? segment : `.${segment}`;
  }
  return name;
}

function pointerSegments(pointer: string): string[] {
  if (pointer === '' || pointer === '/') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
}

/** The sub-schema that governs the value at `segments`, following objects, maps and arrays. */
function schemaAt(root: JsonSchema, segments: string[]): JsonSchema | undefined {
  let schema: JsonSchema | undefined = root;

  for (const segment of segments) {
    if (schema === undefined) return undefined;
    schema = containerOf(schema);

    if (schema?.properties?.[segment] !== undefined) schema = schema.properties[segment];
    else if (schema?.patternProperties !== undefined) {
      schema = Object.values(schema.patternProperties)[0];
    } else if (schema?.items !== undefined) schema = schema.items;
    else return undefined;
  }

  return schema;
}

/** A union such as `topic: string | null` is walked through its object or array branch. */
function containerOf(schema: JsonSchema): JsonSchema | undefined {
  if (schema.anyOf === undefined) return schema;
  return schema.anyOf.find((s) => s.properties || s.patternProperties || s.items) ?? schema;
}

/** Finishes the sentence "<field> must be …" for a schema. */
function describe(schema: JsonSchema): string {
  if (schema.description !== undefined) return schema.description;
  if (schema.enum !== undefined) return `one of ${schema.enum.join(', ')}`;
  if (schema.anyOf !== undefined) return schema.anyOf.map(describe).join(', or ');

  switch (schema.type) {
    case 'integer':
      return `an integer${range(schema.minimum, schema.maximum, '')}`;
    case 'number':
      return `a number${range(schema.minimum, schema.maximum, '')}`;
    case 'boolean':
      return 'true or false';
    case 'string':
      return `a string${span(schema.minLength, schema.maxLength, 'characters')}`;
    case 'array':
      return `an array${span(schema.minItems, schema.maxItems, 'items')}`;
    case 'object':
      return schema.maxProperties !== undefined
        ? `a JSON object of at most ${schema.maxProperties} fields`
        : 'a JSON object';
    case 'null':
      return 'null';
    default:
      return 'valid JSON';
  }
}

const FAR = Number.MAX_SAFE_INTEGER;

function range(min: number | undefined, max: number | undefined, unit: string): string {
  const hasMin = min !== undefined;
  const hasMax = max !== undefined && max < FAR;
  const suffix = unit === '' ? '' : ` ${unit}`;

  if (hasMin && hasMax) return ` from ${min} to ${max}${suffix}`;
  if (hasMin) return ` of at least ${min}${suffix}`;
  if (hasMax) return ` of at most ${max}${suffix}`;
  return '';
}

function span(min: number | undefined, max: number | undefined, unit: string): string {
  const lower = min ?? 0;

  if (max !== undefined && lower > 0) return ` of ${lower} to ${max} ${unit}`;
  if (max !== undefined) return ` of at most ${max} ${unit}`;
  if (lower > 0) return ` of at least ${lower} ${unit}`;
  return '';
}
