import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Retention and storage quotas. Expand only (new columns with defaults, new indexes), so nodes of
 * the previous release keep working beside this one during a rolling restart.
 * - workspace.output_retention_seconds / delivery_retention_seconds: a workspace's own, shorter
 *   retention (null: the instance's).
 * - workspace.output_bytes: output stored for the workspace now (what its quota counts), kept by
 *   the statements that store and prune output.
 * - execution.output_expired_at: when retention removed the run's output (the row stays).
 * - execution.output_truncated_by: why output was cut (`script_limit`, `workspace_quota`).
 */
export class RetentionAndQuota1764500000000 implements MigrationInterface {
  name = 'RetentionAndQuota1764500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE workspace
      ADD COLUMN output_retention_seconds integer CHECK (output_retention_seconds > 0),
      ADD COLUMN delivery_retention_seconds integer CHECK (delivery_retention_seconds > 0),
      ADD COLUMN output_bytes bigint NOT NULL DEFAULT 0`);
    await q.query(`ALTER TABLE execution
      ADD COLUMN output_expired_at timestamptz,
      ADD COLUMN output_truncated_by text CHECK (output_truncated_by IN ('script_limit', 'workspace_quota'))`);
    await q.query(`UPDATE execution SET output_truncated_by = 'script_limit' WHERE output_truncated`);
    await q.query(`UPDATE workspace w SET output_bytes = (SELECT coalesce(sum(e.output_bytes), 0) FROM execution e WHERE e.workspace_id = w.id)`);
    // What the pruning job looks for: ended runs whose output is still there, oldest first.
    await q.query(`CREATE INDEX execution_output_kept_idx ON execution (finished_at) WHERE output_expired_at IS NULL AND finished_at IS NOT NULL`);
    await q.query(`CREATE INDEX webhook_delivery_created_idx ON webhook_delivery (created_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX webhook_delivery_created_idx`);
    await q.query(`DROP INDEX execution_output_kept_idx`);
    await q.query(`ALTER TABLE execution DROP COLUMN output_expired_at, DROP COLUMN output_truncated_by`);
    await q.query(`ALTER TABLE workspace DROP COLUMN output_retention_seconds, DROP COLUMN delivery_retention_seconds, DROP COLUMN output_bytes`);
  }
}
