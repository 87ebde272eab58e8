import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { canTransition, EXECUTION_STATUSES, type ExecutionStatus, TRANSITIONS } from '@app/protocol';
import { Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { AppConfig } from '../apps/control-plane/src/config/app-config.js';
import { dataSourceOptions } from '../apps/control-plane/src/database/data-source.js';
import { ExecutionEvents, type StatusChanged } from '../apps/control-plane/src/executions/execution-events.js';
import { ExecutionRepository } from '../apps/control-plane/src/executions/execution.repository.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

/**
 * The transitions table is the only place that knows which status may follow which: every pair
 * (from, to) is tried against the real PostgreSQL through the repository's one status writer.
 */
describe('execution lifecycle: every transition against PostgreSQL', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let repo: ExecutionRepository;
  const events = new ExecutionEvents();
  const seen: StatusChanged[] = [];
  let ids: { workspace: string; script: string; server: string };

  beforeAll(async () => {
    // The repository's Nest logger, with no app around it, would print every change to the console.
    Logger.overrideLogger(false);
    db = await createTestDatabase();
    ds = new DataSource(dataSourceOptions(db.url, 2));
    await ds.initialize();
    await ds.runMigrations();
    const config = { deliveryDeadlineMs: 600_000 } as AppConfig;
    repo = new ExecutionRepository(config, ds, events);
    events.status.subscribe((e) => seen.push(e));
    const [w] = await db.query<{ id: string }>(`INSERT INTO workspace (name) VALUES ('w') RETURNING id`);
    const [s] = await db.query<{ id: string }>(`INSERT INTO script (workspace_id, name) VALUES ($1, 's') RETURNING id`, [w!.id]);
    await db.query(`INSERT INTO script_version (script_id, version, content) VALUES ($1, 1, 'true')`, [s!.id]);
    const [sv] = await db.query<{ id: string }>(
      `INSERT INTO server (workspace_id, name, agent_token_hash) VALUES ($1, 'srv', sha256(gen_random_uuid()::text::bytea)) RETURNING id`,
      [w!.id],
    );
    ids = { workspace: w!.id, script: s!.id, server: sv!.id };
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
  });

  const insert = async (status: ExecutionStatus): Promise<string> => {
    const [row] = await db.query<{ id: string }>(
      `INSERT INTO execution (workspace_id, script_id, script_version, server_id, trigger, status, deliver_by)
       VALUES ($1, $2, 1, $3, 'manual', $4, now() + interval '1 hour') RETURNING id`,
      [ids.workspace, ids.script, ids.server, status],
    );
    return row!.id;
  };

  it('lists every status, and nothing leaves a terminal one', () => {
    expect(Object.keys(TRANSITIONS).sort()).toEqual([...EXECUTION_STATUSES].sort());
    for (const s of ['succeeded', 'failed', 'timed_out', 'cancelled', 'lost', 'undeliverable'] as const) expect(TRANSITIONS[s]).toEqual([]);
  });

  const pairs = EXECUTION_STATUSES.flatMap((from) => EXECUTION_STATUSES.map((to) => [from, to] as const));
  it.each(pairs)('%s -> %s', async (from, to) => {
    const id = await insert(from);
    seen.length = 0;
    const changed = await repo.transition([id], to, { error: 'test' });
    const [after] = await db.query<{ status: string; finished_at: Date | null }>(`SELECT status, finished_at FROM execution WHERE id = $1`, [id]);
    if (canTransition(from, to)) {
      expect(changed.map((c) => c.status)).toEqual([to]);
      expect(after!.status).toBe(to);
      expect(seen.map((e) => [e.executionId, e.status])).toEqual([[id, to]]);
      if (TRANSITIONS[to].length === 0) expect(after!.finished_at).not.toBeNull();
    } else {
      expect(changed).toEqual([]);
      expect(after!.status).toBe(from);
      expect(seen).toEqual([]);
    }
  });

  it('lets exactly one of two racing changes of one execution win', async () => {
    const id = await insert('running');
    const results = await Promise.all([repo.transition([id], 'succeeded'), repo.transition([id], 'lost'), repo.transition([id], 'timed_out')]);
    expect(results.filter((r) => r.length === 1)).toHaveLength(1);
  });
});
