import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The `queue` concurrency policy: the webhook's check constraint takes it, and an index finds a
 * webhook's waiting and active runs in acceptance order (what the dispatcher, the deadline sweep
 * and every run's end ask for the next run of a `queue` webhook).
 */
export class QueuePolicy1765000000000 implements MigrationInterface {
  name = 'QueuePolicy1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE webhook DROP CONSTRAINT webhook_concurrency_check`);
    await q.query(`ALTER TABLE webhook ADD CONSTRAINT webhook_concurrency_check
      CHECK (concurrency IN ('parallel', 'queue', 'skip', 'replace'))`);
    await q.query(`CREATE INDEX execution_webhook_waiting_idx ON execution (webhook_id, queued_at, id)
      WHERE webhook_id IS NOT NULL AND status IN ('queued', 'dispatched', 'running')`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX execution_webhook_waiting_idx`);
    // The old constraint cannot hold `queue`: such webhooks go back to the default.
    await q.query(`UPDATE webhook SET concurrency = 'parallel' WHERE concurrency = 'queue'`);
    await q.query(`ALTER TABLE webhook DROP CONSTRAINT webhook_concurrency_check`);
    await q.query(`ALTER TABLE webhook ADD CONSTRAINT webhook_concurrency_check CHECK (concurrency IN ('parallel', 'skip', 'replace'))`);
  }
}
