import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Who runs scripts: the user a script version asks to run as (versioned with the content), and
 * what each server's agent said about it in its handshake. Expand only (nullable columns).
 */
export class RunAs1764710000000 implements MigrationInterface {
  name = 'RunAs1764710000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE script_version ADD COLUMN run_as text CHECK (length(run_as) BETWEEN 1 AND 32)`);
    await q.query(`ALTER TABLE server ADD COLUMN runs_scripts_as text, ADD COLUMN switches_users boolean, ADD COLUMN allow_run_as text[]`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE server DROP COLUMN allow_run_as, DROP COLUMN switches_users, DROP COLUMN runs_scripts_as`);
    await q.query(`ALTER TABLE script_version DROP COLUMN run_as`);
  }
}
