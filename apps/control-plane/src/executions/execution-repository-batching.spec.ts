import { beforeAll, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { AppConfig } from '../config/app-config.js';
import { ExecutionEvents, type StatusChanged } from './execution-events.js';
import { ExecutionRepository } from './execution.repository.js';

const SERVER = '0b7a3c1e-2f4d-4e8a-9c61-5d2e7f8a9b10';
const OTHER_SERVER = '5d2e7f8a-9b10-4e8a-9c61-0b7a3c1e2f4d';
const WS = '9c610b7a-3c1e-4f4d-8e8a-5d2e7f8a9b10';
const id = (n: number) => `7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e${String(n).padStart(2, '0')}`;

interface Statement {
  text: string;
  values: unknown[];
  answer: (rows: object[]) => void;
  fail: (err: Error) => void;
}

/** A pool whose statements the test answers by hand, in the shape preparedRows reads (`rows`). */
function setup() {
  const statements: Statement[] = [];
  const pool = {
    query: (q: { text: string; values: unknown[] }) =>
      new Promise((resolve, reject) => statements.push({ text: q.text, values: q.values, answer: (rows) => resolve({ rows }), fail: reject })),
  };
  const db = { driver: { master: pool } } as unknown as DataSource;
  const events = new ExecutionEvents();
  const seen: StatusChanged[] = [];
  events.status.subscribe((e) => seen.push(e));
  const repo = new ExecutionRepository({} as AppConfig, db, events);
  return { repo, statements, seen };
}

beforeAll(() => Logger.overrideLogger(false));

const tick = () => new Promise((r) => setImmediate(r));
const running = (n: number, cancelRequested = false, server = SERVER) => ({
  id: id(n),
  workspace_id: WS,
  server_id: server,
  status: 'running',
  exit_code: null,
  cancel_requested: cancelRequested,
});

describe('ExecutionRepository.markSpawned: a server’s spawn reports in one statement', () => {
  it('the first goes at once; those that arrive while it runs go together in the next, each answered by its own row', async () => {
    const { repo, statements, seen } = setup();
    const first = repo.markSpawned(id(1), SERVER);
    const later = [2, 3, 4].map((n) => repo.markSpawned(id(n), SERVER));
    await tick();
    expect(statements.map((s) => s.values)).toEqual([[[id(1)], SERVER]]);

    statements[0]!.answer([running(1)]);
    await expect(first).resolves.toEqual({ cancelRequested: false });
    await tick();
    expect(statements.map((s) => s.values)).toEqual([
      [[id(1)], SERVER],
      [[id(2), id(3), id(4)], SERVER],
    ]);

    // 3 was no longer dispatched (ended meanwhile, or another server's): no row, so null.
    statements[1]!.answer([running(4, true), running(2)]);
    await expect(Promise.all(later)).resolves.toEqual([{ cancelRequested: false }, null, { cancelRequested: true }]);
    // One status event per run that changed, after its statement.
    expect(seen.map((e) => [e.executionId, e.status])).toEqual([
      [id(1), 'running'],
      [id(4), 'running'],
      [id(2), 'running'],
    ]);
  });

  it('keeps the lifecycle guard and the server in the statement, and locks rows in id order', async () => {
    const { repo, statements } = setup();
    void repo.markSpawned(id(1), SERVER);
    await tick();
    const sql = statements[0]!.text.replace(/\s+/g, ' ');
    expect(sql).toContain(`x.server_id = $2 AND x.status = ANY('{dispatched}'::text[]) ORDER BY x.id FOR UPDATE`);
    expect(sql).toContain(`WHERE x.id = l.id AND x.status = ANY('{dispatched}'::text[])`);
  });

  it('servers do not wait on each other; a report repeated in one group changes the run once', async () => {
    const { repo, statements } = setup();
    void repo.markSpawned(id(1), SERVER);
    const other = repo.markSpawned(id(9), OTHER_SERVER);
    const again = [repo.markSpawned(id(2), SERVER), repo.markSpawned(id(2), SERVER)];
    await tick();
    expect(statements.map((s) => s.values)).toEqual([
      [[id(1)], SERVER],
      [[id(9)], OTHER_SERVER],
    ]);
    statements[1]!.answer([running(9, false, OTHER_SERVER)]);
    await expect(other).resolves.toEqual({ cancelRequested: false });
    statements[0]!.answer([running(1)]);
    await tick();
    expect(statements[2]!.values).toEqual([[id(2), id(2)], SERVER]);
    statements[2]!.answer([running(2)]);
    // The repeat answers as if it came after the first: not dispatched any more.
    await expect(Promise.all(again)).resolves.toEqual([{ cancelRequested: false }, null]);
  });

  it('a failed statement fails the reports of its group only', async () => {
    const { repo, statements, seen } = setup();
    const first = repo.markSpawned(id(1), SERVER);
    const second = repo.markSpawned(id(2), SERVER);
    await tick();
    statements[0]!.fail(new Error('connection lost'));
    await expect(first).rejects.toThrow('connection lost');
    await tick();
    expect(statements[1]!.values).toEqual([[id(2)], SERVER]);
    statements[1]!.answer([running(2)]);
    await expect(second).resolves.toEqual({ cancelRequested: false });
    expect(seen.map((e) => e.executionId)).toEqual([id(2)]);
  });
});
