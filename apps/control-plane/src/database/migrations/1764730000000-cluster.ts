import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Several nodes: the table the socket.io PostgreSQL adapter keeps packets in that do not fit a
 * NOTIFY (binary, or over 8000 bytes; rows live about 30 s), and the trigger failure limiter's
 * counters, shared by every node. Expand only (new tables).
 */
export class Cluster1764730000000 implements MigrationInterface {
  name = 'Cluster1764730000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE socket_io_attachments (
        id bigserial UNIQUE,
        created_at timestamptz DEFAULT now(),
        payload bytea
      )`);
    // The layout rate-limiter-flexible's RateLimiterPostgres creates itself (tableCreated: true skips its DDL).
    await q.query(`
      CREATE TABLE trigger_failure_limit (
        key varchar(255) PRIMARY KEY,
        points integer NOT NULL DEFAULT 0,
        expire bigint
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE trigger_failure_limit`);
    await q.query(`DROP TABLE socket_io_attachments`);
  }
}
