import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * When the agent's finished report was last held for an execution whose output was not yet
 * whole: a run whose missing output never comes (a gap the agent does not fill) can then be
 * given up on after a while without more of it.
 */
export class ExecutionFinishHeldAt1764300000000 implements MigrationInterface {
  name = 'ExecutionFinishHeldAt1764300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE execution ADD COLUMN finish_held_at timestamptz`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE execution DROP COLUMN finish_held_at`);
  }
}
