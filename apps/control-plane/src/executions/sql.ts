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
