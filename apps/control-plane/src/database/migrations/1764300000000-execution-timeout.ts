import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The script's timeout as it was when the execution was created, so a run whose agent never
 * reports its end can be given up on at the right time even if the script's timeout changes
 * meanwhile. Null for executions created before this migration.
 */
export class ExecutionTimeout1764300000000 implements MigrationInterface {
  name = 'ExecutionTimeout1764300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE execution ADD COLUMN timeout_seconds integer`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE execution DROP COLUMN timeout_seconds`);
  }
}
