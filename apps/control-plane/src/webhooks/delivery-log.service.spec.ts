import { beforeAll, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { DeliveryLog, type DeliveryRecord, KEPT_PER_WEBHOOK, KEPT_UNMATCHED, PRUNE_EVERY } from './delivery-log.service.js';

const WEBHOOK = '11111111-1111-4111-8111-111111111111';
const row = (webhookId: string | null = WEBHOOK, n = 0): DeliveryRecord => ({
  webhookId,
  workspaceId: webhookId ? '22222222-2222-4222-8222-222222222222' : null,
  sourceIp: '127.0.0.1',
  statusCode: 404,
  code: 'INVALID_TOKEN',
  reason: `call ${n}`,
  executionId: null,
  userAgent: 'x'.repeat(1000),
});

function fakeDb(insert: (rows: DeliveryRecord | DeliveryRecord[]) => Promise<unknown>) {
  const inserted: DeliveryRecord[] = [];
  const insertCalls: number[] = [];
  const queries: unknown[][] = [];
  const db = {
    getRepository: () => ({
      insert: async (rows: DeliveryRecord | DeliveryRecord[]) => {
        const list = Array.isArray(rows) ? rows : [rows];
        insertCalls.push(list.length);
        await insert(rows);
        inserted.push(...list);
      },
    }),
    query: async (...args: unknown[]) => {
      queries.push(args);
      return [];
    },
  } as unknown as DataSource;
  return { db, inserted, insertCalls, queries };
}

beforeAll(() => Logger.overrideLogger(false));

describe('DeliveryLog', () => {
  it('writes rejected calls in the background, many rows per INSERT, without waiting for the database', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const insertStarted = new Promise<void>((r) => (started = r));
    const f = fakeDb(() => {
      started();
      return gate;
    });
    const log = new DeliveryLog(f.db);
    for (let i = 0; i < 30; i++) log.record(row(WEBHOOK, i));
    // All 30 calls returned before their rows were written, and went into one INSERT.
    await insertStarted;
    expect(f.insertCalls).toEqual([30]);
    expect(f.inserted).toHaveLength(0);
    release();
    await log.flush();
    expect(f.inserted).toHaveLength(30);
    expect(f.inserted[0]!.userAgent).toHaveLength(512);
  });

  it('a failing database loses log rows, not answers', async () => {
    const f = fakeDb(async () => {
      throw new Error('connection refused');
    });
    const log = new DeliveryLog(f.db);
    log.record(row());
    await expect(log.flush()).resolves.toBeUndefined();
    log.record(row());
    await expect(log.flush()).resolves.toBeUndefined();
  });

  it('keeps the rest of a batch when one row names a webhook deleted meanwhile', async () => {
    const gone = '33333333-3333-4333-8333-333333333333';
    const f = fakeDb(async (rows) => {
      const list = Array.isArray(rows) ? rows : [rows];
      if (list.some((r) => r.webhookId === gone)) throw Object.assign(new Error('fk'), { driverError: { code: '23503' } });
    });
    const log = new DeliveryLog(f.db);
    log.record(row(WEBHOOK, 1));
    log.record(row(gone, 2));
    log.record(row(null, 3));
    await log.flush();
    expect(f.inserted.map((r) => r.reason)).toEqual(['call 1', 'call 3']);
  });

  it('bounds the queue while the database is slow', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const f = fakeDb(() => gate);
    const log = new DeliveryLog(f.db);
    for (let i = 0; i < 6000; i++) log.record(row(null, i));
    release();
    await log.flush();
    expect(f.inserted).toHaveLength(5000);
  });

  it('prunes a webhook once per PRUNE_EVERY new rows, accepted or rejected, keeping the newest', async () => {
    const f = fakeDb(async () => undefined);
    const log = new DeliveryLog(f.db);
    for (let i = 0; i < PRUNE_EVERY - 2; i++) log.record(row(WEBHOOK, i));
    log.committed(WEBHOOK);
    await log.flush();
    expect(f.queries).toHaveLength(0);
    log.record(row(WEBHOOK));
    await log.flush();
    expect(f.queries).toHaveLength(1);
    expect(f.queries[0]![0]).toMatch(/DELETE FROM webhook_delivery WHERE webhook_id = \$1/);
    expect(f.queries[0]![1]).toEqual([WEBHOOK, KEPT_PER_WEBHOOK - 1]);
    for (let i = 0; i < PRUNE_EVERY; i++) log.record(row(null, i));
    await log.flush();
    expect(f.queries).toHaveLength(2);
    expect(f.queries[1]![0]).toMatch(/webhook_id IS NULL/);
    expect(f.queries[1]![1]).toEqual([KEPT_UNMATCHED - 1]);
  });

  it('flush waits for rows recorded while a write is in flight', async () => {
    const f = fakeDb(async () => new Promise((r) => setTimeout(r, 5)));
    const log = new DeliveryLog(f.db);
    log.record(row(null, 1));
    await new Promise((r) => setImmediate(r)); // the first INSERT is now in flight
    log.record(row(null, 2));
    await log.flush();
    expect(f.inserted.map((r) => r.reason)).toEqual(['call 1', 'call 2']);
  });
});
