import { HttpStatus } from '@nestjs/common';
import type { ObjectLiteral, SelectQueryBuilder } from 'typeorm';
import { AppException } from './app-exception.js';

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** An opaque cursor over (timestamp, id), newest first. */
export interface Cursor {
  at: Date;
  id: string;
}

export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.at.toISOString(), c.id])).toString('base64url');
}

export function decodeCursor(value: string | undefined): Cursor | null {
  if (!value) return null;
  try {
    const [at, id] = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as [string, string];
    const date = new Date(at);
    // What encodeCursor wrote, and nothing PostgreSQL would refuse (a 500 otherwise).
    if (typeof at !== 'string' || !isCursorTime(at) || Number.isNaN(date.getTime()) || date.toISOString() !== at || !isUuid(id)) {
      throw new Error('bad cursor');
    }
    return { at: date, id };
  } catch {
    throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', 'cursor is not valid');
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (v: unknown): v is string => typeof v === 'string' && UUID.test(v);
/** An ISO time of years 1000-9999 (what PostgreSQL and a cursor both hold), fractions of up to 6 digits. */
export const isCursorTime = (v: string) => /^[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?Z$/.test(v);

/** Builds a page from `limit + 1` rows fetched newest first. */
export function toPage<R, T>(rows: R[], limit: number, key: (r: R) => Cursor, map: (r: R) => T): Page<T> {
  return toPageBy(rows, limit, (r) => encodeCursor(key(r)), map);
}

/** Builds a page from `limit + 1` rows, `cursorOf` giving the opaque cursor that follows a row. */
export function toPageBy<R, T>(rows: R[], limit: number, cursorOf: (r: R) => string, map: (r: R) => T): Page<T> {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  const last = items[items.length - 1];
  return { items: items.map(map), nextCursor: more && last ? cursorOf(last) : null };
}

/** An opaque cursor over a positive integer key listed in descending order (a script's versions). */
export function encodeNumberCursor(n: number): string {
  return Buffer.from(JSON.stringify([n])).toString('base64url');
}

/** The key an encodeNumberCursor wrote; anything else is a 400, never a database error. */
export function decodeNumberCursor(value: string | undefined): number | null {
  if (!value) return null;
  try {
    const [n] = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as [unknown];
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 2_147_483_647) throw new Error('bad cursor');
    return n;
  } catch {
    throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', 'cursor is not valid');
  }
}

/**
 * Orders a query newest first by (created_at, id) and applies the cursor. Compared at millisecond
 * precision on both sides: the cursor holds a JS Date, which has no microseconds, and comparing it
 * with the column's microseconds would skip rows created within the same millisecond.
 */
export function newestFirst<T extends ObjectLiteral>(
  qb: SelectQueryBuilder<T>,
  alias: string,
  cursor: string | undefined,
  limit: number,
): SelectQueryBuilder<T> {
  const at = `date_trunc('milliseconds', ${alias}.created_at)`;
  qb.orderBy(at, 'DESC').addOrderBy(`${alias}.id`, 'DESC').limit(limit + 1);
  const c = decodeCursor(cursor);
  if (c) qb.andWhere(`(${at}, ${alias}.id) < (:cursorAt, :cursorId)`, { cursorAt: c.at, cursorId: c.id });
  return qb;
}
