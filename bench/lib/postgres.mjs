// The PostgreSQL server the bench uses, and a fresh database on it per scenario.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { EMBEDDED_PG_MODULE } from './paths.mjs';

async function answers(url) {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * TEST_DATABASE_URL or DATABASE_URL when given; else the machine's PostgreSQL on 127.0.0.1:5432 if
 * it lets us in (as PGUSER, or `postgres`); else an embedded one (the control plane's own class).
 */
export async function pgServer(log) {
  const given = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
  if (given) {
    if (!(await answers(given))) throw new Error('TEST_DATABASE_URL/DATABASE_URL is set but that server does not answer');
    return { url: given, kind: 'given (TEST_DATABASE_URL/DATABASE_URL)', stop: async () => undefined };
  }
  const user = process.env.PGUSER || 'postgres';
  const pass = process.env.PGPASSWORD ? `:${encodeURIComponent(process.env.PGPASSWORD)}` : '';
  const local = `postgres://${encodeURIComponent(user)}${pass}@127.0.0.1:5432/postgres`;
  if (await answers(local)) return { url: local, kind: 'the machine\'s PostgreSQL on 127.0.0.1:5432', stop: async () => undefined };
  log('no PostgreSQL on 127.0.0.1:5432 that lets us in: starting an embedded one');
  const { EmbeddedPostgres } = await import(EMBEDDED_PG_MODULE);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-bench-pg-'));
  const embedded = new EmbeddedPostgres({ dataDir: dir, log: () => undefined });
  const url = await embedded.start();
  return {
    url,
    kind: 'embedded PostgreSQL',
    async stop() {
      await embedded.stop();
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

/** A fresh, uniquely named database, dropped by drop(). */
export async function createDatabase(serverUrl) {
  const name = `devpilot_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const pool = new pg.Pool({ connectionString: url, max: 3 });
  // An idle connection the server closed (a restart, an administrator) is replaced on the next query;
  // unhandled, its error would end the whole run.
  pool.on('error', () => undefined);
  return {
    url,
    name,
    pool,
    async query(sql, params) {
      return (await pool.query(sql, params)).rows;
    },
    async drop() {
      await pool.end().catch(() => undefined);
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
