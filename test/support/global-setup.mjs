// Plain ESM: jest loads globalSetup without the moduleNameMapper, so this uses the build (npm run build).
import { existsSync } from 'node:fs';
import { ensureScriptUser } from '../../scripts/script-user.mjs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');
const embeddedModule = path.join(root, 'dist/apps/control-plane/apps/control-plane/src/database/embedded-postgres.js');

/**
 * The PostgreSQL server the e2e tests use: TEST_DATABASE_URL or DATABASE_URL when given, else an
 * embedded one in a temporary folder. Each test file creates its own fresh database on it
 * (support/postgres.ts) and drops it afterwards.
 */
export default async function globalSetup() {
  if (!existsSync(embeddedModule)) throw new Error('the control plane is not built: run `npm run build` before the e2e tests');
  ensureScriptUser();
  const given = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
  if (given) {
    process.env.DEVPILOT_TEST_PG_URL = given;
    return;
  }
  const { EmbeddedPostgres } = await import(embeddedModule);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-test-pg-'));
  const pg = new EmbeddedPostgres({ dataDir: dir, log: () => undefined });
  process.env.DEVPILOT_TEST_PG_URL = await pg.start();
  globalThis.__devpilotEmbeddedPg = pg;
}

