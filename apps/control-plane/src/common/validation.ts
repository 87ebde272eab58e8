import { applyDecorators, type ArgumentMetadata, HttpStatus, ValidationPipe, type ValidationError } from '@nestjs/common';
import { Transform } from 'class-transformer';
import { getMetadataStorage, Matches } from 'class-validator';
import { AppException } from './app-exception.js';

const MAX_DEPTH = 16;
const NULLABLE = 'devpilot:nullable';

/**
 * Characters a name must not hold: controls, zero-width ones (which make `srvA` and `srvA\u200b`
 * look the same) and bidirectional overrides and isolates (which make a name read backwards).
 */
const UNSAFE_NAME_CHARS = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/;
export const SAFE_NAME = new RegExp(`^(?:(?!${UNSAFE_NAME_CHARS.source}).)+$`, 's');

/**
 * A name people read (servers, scripts, webhooks, API keys, workspaces): NFC-normalised, so one
 * name has one spelling, and free of control, zero-width and bidi-override characters.
 */
export const SafeName = (): PropertyDecorator =>
  applyDecorators(
    Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.normalize('NFC') : value)),
    Matches(SAFE_NAME, { message: ({ property }) => `${property} must not contain control, zero-width or bidirectional override characters` }),
  );

/** Marks a DTO property that may be sent as null (every other property refuses null). */
export const Nullable = (): PropertyDecorator => (target, key) => {
  const ctor = target.constructor;
  const own = (Reflect.getOwnMetadata(NULLABLE, ctor) as string[] | undefined) ?? [];
  Reflect.defineMetadata(NULLABLE, [...own, String(key)], ctor);
};

/**
 * Whitelist validation: unknown fields are refused, every message names its field. On top of
 * class-validator's whitelist it refuses keys that shadow Object.prototype (`toString`,
 * `constructor`, ...), which class-transformer would otherwise let through, and bodies nested
 * deeper than any DTO needs, which would otherwise exhaust the stack. A null is refused unless the
 * property is @Nullable() (@IsOptional lets null through, which would write NULL into NOT NULL
 * columns), and so is a NUL character in any string (PostgreSQL text cannot hold it).
 */
class StrictValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    // Only DTO classes: gateway payloads (typed by interfaces) are validated with the protocol's schemas.
    const allowed = metadata.metatype ? allowedKeys(metadata.metatype) : EMPTY;
    if ((metadata.type === 'body' || metadata.type === 'query') && allowed.size > 0) {
      if (depth(value) > MAX_DEPTH) throw invalid(`${metadata.type} is nested too deeply`);
      if (isPlainObject(value)) {
        const unknown = Object.keys(value).find((k) => !allowed.has(k));
        if (unknown !== undefined) throw invalid(`${unknown} is not allowed`);
        const nullable = (Reflect.getMetadata(NULLABLE, metadata.metatype!) as string[] | undefined) ?? [];
        const isNull = Object.keys(value).find((k) => value[k] === null && !nullable.includes(k));
        if (isNull !== undefined) throw invalid(`${isNull} must not be null; leave it out instead`);
      }
      const nul = findNul(value, '');
      if (nul !== null) throw invalid(`${nul || metadata.type} must not contain NUL characters`);
    }
    return super.transform(value, metadata);
  }
}

export function validationPipe(): ValidationPipe {
  return new StrictValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    stopAtFirstError: true,
    exceptionFactory: (errors: ValidationError[]) => invalid(flatten(errors).join('; ') || 'Invalid request'),
  });
}

const invalid = (message: string) => new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', message);

const EMPTY = new Set<string>();
const keysByClass = new WeakMap<object, Set<string>>();
function allowedKeys(metatype: abstract new (...args: never[]) => unknown): Set<string> {
  let keys = keysByClass.get(metatype);
  if (!keys) {
    keys = new Set(getMetadataStorage().getTargetValidationMetadatas(metatype as never, '', true, false).map((m) => m.propertyName));
    keysByClass.set(metatype, keys);
  }
  return keys;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The path of the first string holding U+0000, or null. */
function findNul(v: unknown, path: string): string | null {
  if (typeof v === 'string') return v.includes('\u0000') ? path : null;
  if (typeof v !== 'object' || v === null) return null;
  for (const [k, child] of Object.entries(v)) {
    const found = findNul(child, path ? `${path}.${k}` : k);
    if (found !== null) return found;
  }
  return null;
}

function depth(v: unknown, level = 0): number {
  if (level > MAX_DEPTH || typeof v !== 'object' || v === null) return level;
  let max = level;
  for (const child of Object.values(v)) {
    max = Math.max(max, depth(child, level + 1));
    if (max > MAX_DEPTH) break;
  }
  return max;
}

function flatten(errors: ValidationError[], parent = ''): string[] {
  return errors.flatMap((e) => {
    const field = parent ? `${parent}.${e.property}` : e.property;
    const own = Object.values(e.constraints ?? {}).map((m) =>
      m.startsWith('property ') ? `${field} is not allowed` : m.replace(e.property, field),
    );
    return [...own, ...flatten(e.children ?? [], field)];
  });
}
