import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * One-time tickets a browser opens its `/dashboard` socket with (instead of putting an API key in
 * a URL): kept hashed, in the database so any node can redeem one. Expand only (a new table).
 */
export class FeedTickets1764930000000 implements MigrationInterface {
  name = 'FeedTickets1764930000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE feed_ticket (
        ticket_hash bytea PRIMARY KEY,
        api_key_id uuid NOT NULL REFERENCES api_key(id) ON DELETE CASCADE,
        expires_at timestamptz NOT NULL
      )`);
    await q.query(`CREATE INDEX feed_ticket_expires_idx ON feed_ticket (expires_at)`);
    await q.query(`CREATE INDEX feed_ticket_api_key_idx ON feed_ticket (api_key_id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE feed_ticket`);
  }
}
