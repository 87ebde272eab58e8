import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestDatabase } from './postgres.js';

const execFileAsync = promisify(execFile);

/** The database as text: pg_dump when its version can read the server, else every table as JSON rows. */
export async function dumpDatabase(db: TestDatabase): Promise<{ how: string; text: string }> {
  try {
    const { stdout } = await execFileAsync('pg_dump', ['--data-only', '--no-owner', db.url], { maxBuffer: 512 * 1024 * 1024 });
    return { how: 'pg_dump', text: stdout };
  } catch (e) {
    const why = String((e as { stderr?: string }).stderr ?? e).split('\n')[0];
    const tables = await db.query<{ name: string }>(`SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`);
    const parts: string[] = [];
    for (const { name } of tables) {
      const rows = await db.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM ${name} t`);
      parts.push(`-- ${name}\n${rows.map((r) => r.row).join('\n')}`);
    }
    return { how: `SELECT of ${tables.length} tables (pg_dump: ${why})`, text: parts.join('\n') };
  }
}

/** The forms a leaked secret could take in a log or a dump. */
export function forms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  return [value, bytes.toString('hex'), bytes.toString('base64').replace(/=+$/, ''), bytes.toString('base64url').replace(/=+$/, '')];
}

/** Every file under `dir` (recursively), as latin1 text, for a search. */
export async function filesText(dir: string): Promise<{ files: number; text: string }> {
  const parts: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) parts.push(await readFile(p, 'latin1').catch(() => ''));
    }
  };
  await walk(dir);
  return { files: parts.length, text: parts.join('\n') };
}
