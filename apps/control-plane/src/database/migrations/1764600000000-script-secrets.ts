import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Script secrets: values encrypted at rest, scoped to a workspace or to one of its servers, and
 * the names each script version declares. Expand only (a new table, a column with a default).
 */
export class ScriptSecrets1764600000000 implements MigrationInterface {
  name = 'ScriptSecrets1764600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE secret (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        workspace_id uuid NOT NULL REFERENCES workspace(id) ON DELETE CASCADE,
        server_id uuid REFERENCES server(id) ON DELETE CASCADE,
        name text NOT NULL CHECK (name ~ '^[A-Z][A-Z0-9_]*$' AND length(name) <= 64),
        value_encrypted bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE UNIQUE INDEX secret_workspace_name_idx ON secret (workspace_id, name) WHERE server_id IS NULL`);
    await q.query(`CREATE UNIQUE INDEX secret_server_name_idx ON secret (server_id, name) WHERE server_id IS NOT NULL`);
    await q.query(`CREATE INDEX secret_workspace_idx ON secret (workspace_id, created_at DESC, id DESC)`);
    await q.query(`ALTER TABLE script_version ADD COLUMN secrets text[] NOT NULL DEFAULT '{}'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE script_version DROP COLUMN secrets`);
    await q.query(`DROP TABLE secret`);
  }
}
