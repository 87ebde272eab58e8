import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A webhook's call counter moves in `webhook_call_tally`, a few rows per webhook (one per shard,
 * chosen by the accepting database session), instead of on the webhook's own row: every accepted
 * call updated that one row, so the accepts of all nodes queued on its lock until each commit.
 * The count shown is `webhook.call_count` plus the tally's rows. Expand only: old nodes still move
 * `call_count` during a rolling upgrade, which the sum keeps counting.
 */
export class WebhookCallTally1765200000000 implements MigrationInterface {
  name = 'WebhookCallTally1765200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE webhook_call_tally (
        webhook_id uuid NOT NULL REFERENCES webhook(id) ON DELETE CASCADE,
        shard smallint NOT NULL,
        calls bigint NOT NULL,
        last_called_at timestamptz NOT NULL,
        PRIMARY KEY (webhook_id, shard)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    // The tally's calls go back onto the webhook rows before the table goes.
    await q.query(`
      UPDATE webhook w SET call_count = w.call_count + t.calls, last_called_at = greatest(w.last_called_at, t.last_called_at)
      FROM (SELECT webhook_id, sum(calls) AS calls, max(last_called_at) AS last_called_at FROM webhook_call_tally GROUP BY webhook_id) t
      WHERE w.id = t.webhook_id`);
    await q.query(`DROP TABLE webhook_call_tally`);
  }
}
