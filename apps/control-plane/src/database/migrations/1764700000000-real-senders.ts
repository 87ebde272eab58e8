import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Real senders: a webhook's signature scheme (set at creation, default `devpilot`, today's), its
 * concurrency policy and cooldown, and
 * the delivery ids each webhook accepted, remembered for a while so a sender's retry or a replay
 * runs nothing. Expand only (a column with a default, a new table).
 */
export class RealSenders1764700000000 implements MigrationInterface {
  name = 'RealSenders1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE webhook ADD COLUMN signature_scheme text NOT NULL DEFAULT 'devpilot'
      CHECK (signature_scheme IN ('devpilot', 'github', 'gitlab', 'standard-webhooks', 'slack'))`);
    // How a webhook's runs may overlap, and the least time between two accepted calls.
    await q.query(`ALTER TABLE webhook ADD COLUMN concurrency text NOT NULL DEFAULT 'parallel'
      CHECK (concurrency IN ('parallel', 'skip', 'replace'))`);
    await q.query(`ALTER TABLE webhook ADD COLUMN cooldown_seconds integer NOT NULL DEFAULT 0
      CHECK (cooldown_seconds BETWEEN 0 AND 86400)`);
    // No foreign key to execution: the row and its execution are written by one statement, and an
    // execution row outlives the id anyway (retention keeps rows).
    await q.query(`
      CREATE TABLE webhook_delivery_id (
        webhook_id uuid NOT NULL REFERENCES webhook(id) ON DELETE CASCADE,
        delivery_id text NOT NULL,
        execution_id uuid NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (webhook_id, delivery_id)
      )`);
    await q.query(`CREATE INDEX webhook_delivery_id_expires_idx ON webhook_delivery_id (expires_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE webhook_delivery_id`);
    await q.query(`ALTER TABLE webhook DROP COLUMN cooldown_seconds`);
    await q.query(`ALTER TABLE webhook DROP COLUMN concurrency`);
    await q.query(`ALTER TABLE webhook DROP COLUMN signature_scheme`);
  }
}
