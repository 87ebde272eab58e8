import { randomBytes } from 'node:crypto';
import pg from 'pg';

export interface TestDatabase {
  url: string;
  name: string;
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

function serverUrl(): string {
  const url = process.env.DEVPILOT_TEST_PG_URL;
  if (!url) throw new Error('DEVPILOT_TEST_PG_URL is not set: run the e2e tests through jest (globalSetup)');
  return url;
}

/** A fresh, uniquely named database on the test PostgreSQL server, dropped by drop(). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `devpilot_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(serverUrl());
  u.pathname = `/${name}`;
  const url = u.toString();
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  // end() resolves before its connections are closed; the forced DROP may reach one first and its
  // server says so (57P01), which unheard would fail the whole test file.
  pool.on('error', () => undefined);
  return {
    url,
    name,
    async query(sql, params) {
      return (await pool.query(sql, params)).rows;
    },
    async drop() {
      await pool.end();
      const c = new pg.Client({ connectionString: serverUrl() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
