import { createHash } from 'node:crypto';
import type { Pool, QueryResult } from 'pg';
import { type DataSource, QueryFailedError } from 'typeorm';

/** Anything TypeORM can run raw SQL on: the DataSource, an EntityManager, a transaction's manager. */
export interface Queryable {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

/**
 * The rows of a raw query. TypeORM answers `UPDATE/DELETE ... RETURNING` on PostgreSQL as
 * `[rows, affectedCount]` and everything else as `rows`; this hides the difference.
 */
export async function rows<T>(q: Queryable, sql: string, params: unknown[] = []): Promise<T[]> {
  const r = await q.query(sql, params);
  if (Array.isArray(r) && r.length === 2 && Array.isArray(r[0]) && typeof r[1] === 'number') return r[0] as T[];
  return r as T[];
}

const statementNames = new Map<string, string>();

/** A name per statement text, the same on every connection and in every process of a version. */
function statementName(sql: string): string {
  let name = statementNames.get(sql);
  if (name === undefined) {
    name = `dp_${createHash('sha256').update(sql).digest('hex').slice(0, 24)}`;
    statementNames.set(sql, name);
  }
  return name;
}

/**
 * rows() for the statements every trigger and every report runs, on its own (autocommit), as a
 * named prepared statement: PostgreSQL parses it once per pooled connection and, after a few
 * runs, keeps its plan, where an unnamed statement is parsed and planned on every call (for the
 * trigger's statements that cost about as much as running them). Only for statements whose text
 * is one of a fixed few: the name comes from the text, and each connection keeps every statement
 * it prepared. Errors come as TypeORM's QueryFailedError, as from the DataSource.
 */
export async function preparedRows<T>(db: DataSource, sql: string, params: unknown[] = []): Promise<T[]> {
  // TypeORM's PostgreSQL driver keeps its pg Pool as `master` (the pool its own queries use).
  const pool = (db.driver as unknown as { master: Pool }).master;
  let result: QueryResult;
  try {
    result = await pool.query({ name: statementName(sql), text: sql, values: params });
  } catch (e) {
    throw new QueryFailedError(sql, params, e as Error);
  }
  return result.rows as T[];
}
