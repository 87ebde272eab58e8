import { DataSource } from 'typeorm';
import { dataSourceOptions } from './data-source.js';

const MIGRATION_LOCK = 0x64706d67; // "dpmg"

/** Runs pending migrations under an advisory lock, so several control planes may start at once. */
export async function runMigrations(url: string): Promise<string[]> {
  const ds = new DataSource({ ...dataSourceOptions(url, 2), extra: { max: 1, connectionTimeoutMillis: 10_000 } });
  await ds.initialize();
  try {
    await ds.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      const ran = await ds.runMigrations({ transaction: 'all' });
      return ran.map((m) => m.name);
    } finally {
      await ds.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    await ds.destroy();
  }
}
