import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A webhook may pass the sender's request to its script (`pass_payload`, off by default). The
 * request of a run that has not ended is kept in `execution_payload`, sealed under the master key,
 * and deleted when the run ends (or with its execution). Expand only: a new column with a default
 * and a new table.
 */
export class PassPayload1765100000000 implements MigrationInterface {
  name = 'PassPayload1765100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE webhook ADD COLUMN pass_payload boolean NOT NULL DEFAULT false`);
    await q.query(`
      CREATE TABLE execution_payload (
        execution_id uuid PRIMARY KEY REFERENCES execution(id) ON DELETE CASCADE,
        body_encrypted bytea NOT NULL,
        event text NOT NULL DEFAULT '',
        delivery_id text NOT NULL DEFAULT '',
        content_type text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE execution_payload`);
    await q.query(`ALTER TABLE webhook DROP COLUMN pass_payload`);
  }
}
