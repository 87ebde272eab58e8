import { beforeAll, describe, expect, it } from '@jest/globals';
import { allowedFrom, type ExecutionFinished } from '@app/protocol';
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

const report = (n: number, over: Partial<ExecutionFinished> = {}): ExecutionFinished => ({
  executionId: id(n),
  exitCode: 0,
  signal: null,
  timedOut: false,
  cancelled: false,
  error: null,
  lastSeq: n,
  outputBytes: 10,
  truncated: false,
  ...over,
});

describe('ExecutionRepository.complete: a server’s finished reports in one statement', () => {
  it('groups what arrives while a statement runs, one column per field, and answers each report by its own row', async () => {
    const { repo, statements, seen } = setup();
    const first = repo.complete(SERVER, report(1), true);
    const later = [
      repo.complete(SERVER, report(2, { exitCode: 3 }), true),
      repo.complete(SERVER, report(3), true),
      repo.complete(SERVER, report(4, { cancelled: true, exitCode: null, signal: 'SIGTERM' }), false),
      repo.complete(SERVER, report(5), true),
      repo.complete(SERVER, report(6), true),
    ];
    await tick();
    expect(statements).toHaveLength(1);
    expect(statements[0]!.values[1]).toEqual([id(1)]);
    statements[0]!.answer([{ id: id(1), before: 'running', whole: true, done: { ...running(1), status: 'succeeded', exit_code: 0 } }]);
    await expect(first).resolves.toBe('done');
    await tick();

    const v = statements[1]!.values;
    expect(v[0]).toBe(SERVER);
    expect(v[1]).toEqual([2, 3, 4, 5, 6].map(id));
    expect(v[2]).toEqual([2, 3, 4, 5, 6]); // lastSeq
    expect(v[3]).toEqual(['failed', 'succeeded', 'cancelled', 'succeeded', 'succeeded']); // the outcome, as outcome() decides it
    expect(v[4]).toEqual([3, 0, null, 0, 0]);
    expect(v[5]).toEqual([null, null, 'SIGTERM', null, null]);
    expect(v[9]).toEqual([true, true, false, true, true]); // hold
    expect(JSON.parse((v[8] as string[])[2]!)).toEqual(report(4, { cancelled: true, exitCode: null, signal: 'SIGTERM' }));
    statements[1]!.answer([
      { id: id(2), before: 'running', whole: true, done: { ...running(2), status: 'failed', exit_code: 3 } },
      // 3: not whole yet (held); 4: already over; 5: still queued; 6: no row (not this server's).
      { id: id(3), before: 'running', whole: false, done: null },
      { id: id(4), before: 'cancelled', whole: true, done: null },
      { id: id(5), before: 'queued', whole: false, done: null },
    ]);
    await expect(Promise.all(later)).resolves.toEqual(['done', 'incomplete', 'over', 'queued', 'unknown']);
    expect(seen.map((e) => [e.executionId, e.status, e.exitCode])).toEqual([
      [id(1), 'succeeded', 0],
      [id(2), 'failed', 3],
    ]);
  });

  it('a repeated report waits for the next statement (it sees the first one’s outcome); servers do not wait on each other', async () => {
    const { repo, statements } = setup();
    void repo.complete(SERVER, report(1), true);
    const a = repo.complete(SERVER, report(2), true);
    const again = repo.complete(SERVER, report(2), true);
    const b = repo.complete(SERVER, report(3), true);
    const other = repo.complete(OTHER_SERVER, report(9), true);
    await tick();
    expect(statements.map((s) => [s.values[0], s.values[1]])).toEqual([
      [SERVER, [id(1)]],
      [OTHER_SERVER, [id(9)]],
    ]);
    statements[1]!.answer([]);
    await expect(other).resolves.toBe('unknown');
    statements[0]!.answer([]);
    await tick();
    expect(statements[2]!.values[1]).toEqual([id(2)]);
    statements[2]!.answer([{ id: id(2), before: 'running', whole: true, done: { ...running(2), status: 'succeeded', exit_code: 0 } }]);
    await expect(a).resolves.toBe('done');
    await tick();
    expect(statements[3]!.values[1]).toEqual([id(2), id(3)]);
    statements[3]!.answer([
      { id: id(2), before: 'succeeded', whole: true, done: null },
      { id: id(3), before: 'running', whole: true, done: { ...running(3), status: 'succeeded', exit_code: 0 } },
    ]);
    await expect(Promise.all([again, b])).resolves.toEqual(['over', 'done']);
  });

  it('the status each row may take is guarded by the transitions table, per row', async () => {
    const { repo, statements } = setup();
    void repo.complete(SERVER, report(1), true);
    await tick();
    const sql = statements[0]!.text.replace(/\s+/g, ' ');
    for (const to of ['succeeded', 'failed', 'timed_out', 'cancelled'] as const) {
      expect(sql).toContain(`WHEN '${to}' THEN x.status = ANY('{${allowedFrom(to).join(',')}}'::text[])`);
    }
    expect(sql).toContain('ELSE false END');
    expect(sql).toContain('x.server_id = $1 ORDER BY x.id FOR UPDATE');
  });
});

describe('ExecutionRepository.accept: a server’s webhook calls in one statement (group commit)', () => {
  const WEBHOOK = '3c1e2f4d-0b7a-4e8a-9c61-5d2e7f8a9b10';
  const call = (deliveryId: string | null = null) => ({
    trigger: 'webhook' as const,
    webhookId: WEBHOOK,
    allowedIps: [],
    sourceIp: '192.0.2.1',
    userAgent: null,
    deliveryId,
    policy: { concurrency: 'parallel' as const, cooldownSeconds: 0 },
    passPayload: false,
    payload: null,
  });
  const created = (n: number, status: 'queued' | 'dispatched') => ({ id: id(n), workspace_id: WS, server_id: SERVER, status, overloaded: false, duplicate: false });
  const callsOf = (s: Statement) => (JSON.parse(s.values[0] as string) as { i: number; delivery_id: string | null }[]).map((c) => [c.i, c.delivery_id]);

  it('a lone call goes at once in its own statement; the calls that arrive meanwhile go together, each answered by its row', async () => {
    const { repo, statements, seen } = setup();
    const first = repo.accept(call(), SERVER, true);
    const later = [call('a'), call(), call('b')].map((c) => repo.accept(c, SERVER, true));
    await tick();
    expect(statements).toHaveLength(1);
    expect(statements[0]!.values[0]).toBe(true);

    statements[0]!.answer([created(1, 'dispatched')]);
    await expect(first).resolves.toMatchObject({ id: id(1), status: 'dispatched' });
    await tick();
    expect(statements).toHaveLength(2);
    expect(callsOf(statements[1]!)).toEqual([
      [1, 'a'],
      [2, null],
      [3, 'b'],
    ]);
    statements[1]!.answer([
      { ...created(2, 'dispatched') },
      { id: null, overloaded: true, duplicate: false },
      { id: null, overloaded: false, duplicate: true },
    ]);
    const answers = await Promise.all(later);
    expect(answers[0]).toMatchObject({ id: id(2), status: 'dispatched' });
    expect(answers[0]).not.toHaveProperty('overloaded');
    expect(answers.slice(1)).toEqual(['overloaded', 'duplicate']);
    expect(seen.map((e) => [e.executionId, e.status])).toEqual([
      [id(1), 'dispatched'],
      [id(2), 'dispatched'],
    ]);
  });

  it('one delivery id twice never shares a statement; servers do not wait on each other', async () => {
    const { repo, statements } = setup();
    void repo.accept(call(), SERVER, false);
    void repo.accept(call('same'), SERVER, false);
    void repo.accept(call('same'), SERVER, false);
    void repo.accept(call(), OTHER_SERVER, false);
    await tick();
    expect(statements).toHaveLength(2);
    statements[0]!.answer([created(1, 'queued')]);
    await tick();
    // The second 'same' waits for the next statement, where it finds the first one remembered.
    expect(statements.map((s) => (s.values.length === 5 ? callsOf(s) : 'alone'))).toEqual(['alone', 'alone', 'alone']);
  });

  it('a failed group statement is retried call by call, each call getting its own answer', async () => {
    const { repo, statements } = setup();
    void repo.accept(call(), SERVER, false);
    const later = [call(), call()].map((c) => repo.accept(c, SERVER, false));
    await tick();
    statements[0]!.answer([created(1, 'queued')]);
    await tick();
    statements[1]!.fail(Object.assign(new Error('insert or update on table "execution" violates foreign key constraint'), { code: '23503' }));
    await tick();
    await tick();
    expect(statements).toHaveLength(4);
    statements[2]!.answer([created(3, 'queued')]);
    statements[3]!.fail(Object.assign(new Error('insert or update on table "execution" violates foreign key constraint'), { code: '23503' }));
    await expect(Promise.all(later)).resolves.toEqual([expect.objectContaining({ id: id(3) }), null]);
  });
});

describe('ExecutionRepository.createUnderPolicy: its connection', () => {
  it('goes back to the pool even when the rollback after a failed statement fails too', async () => {
    const released: number[] = [];
    const qr = {
      isTransactionActive: false,
      connect: async () => undefined,
      startTransaction: async () => {
        qr.isTransactionActive = true;
      },
      query: async () => {
        throw new Error('Connection terminated unexpectedly');
      },
      rollbackTransaction: async () => {
        throw new Error('Connection terminated unexpectedly');
      },
      release: async () => {
        released.push(1);
      },
    };
    const db = { createQueryRunner: () => qr } as unknown as DataSource;
    const repo = new ExecutionRepository({} as AppConfig, db, new ExecutionEvents());
    const spec = {
      trigger: 'webhook' as const,
      webhookId: id(1),
      allowedIps: [],
      sourceIp: '127.0.0.1',
      userAgent: null,
      deliveryId: null,
      policy: { concurrency: 'queue' as const, cooldownSeconds: 0 },
      passPayload: false,
      payload: null,
    };
    await expect(repo.createUnderPolicy(spec, false)).rejects.toThrow('Connection terminated unexpectedly');
    expect(released).toHaveLength(1);
  });
});
