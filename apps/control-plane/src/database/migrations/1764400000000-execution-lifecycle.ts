import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What the explicit lifecycle needs. Expand only (new nullable columns), so nodes of the previous
 * release keep working beside this one during a rolling restart:
 * - execution.timeout_seconds: the script's timeout when the run was created, so a later edit of the
 *   script does not move the deadline of a run already under way (null on older rows: the script's).
 * - execution.accepted_at: when the agent accepted the start into its own queue (protocol v2, where
 *   `running` waits for the spawn); such a start is not resent.
 * - server.agent_protocol_version: the protocol version of the agent last connected for the server.
 */
export class ExecutionLifecycle1764400000000 implements MigrationInterface {
  name = 'ExecutionLifecycle1764400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE execution ADD COLUMN timeout_seconds integer, ADD COLUMN accepted_at timestamptz`);
    await q.query(`ALTER TABLE server ADD COLUMN agent_protocol_version integer`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE execution DROP COLUMN timeout_seconds, DROP COLUMN accepted_at`);
    await q.query(`ALTER TABLE server DROP COLUMN agent_protocol_version`);
  }
}
