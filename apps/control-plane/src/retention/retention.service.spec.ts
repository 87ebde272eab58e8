import { beforeAll, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { AppConfig } from '../config/app-config.js';
import type { ExecutionRepository } from '../executions/execution.repository.js';
import type { DeliveryLog } from '../webhooks/delivery-log.service.js';
import { type Clock, DutyCycle } from './duty-cycle.js';
import { RetentionService } from './retention.service.js';

beforeAll(() => Logger.overrideLogger(false));

describe('RetentionService', () => {
  it('pauses after every pruning statement three times as long as it took', async () => {
    // A fake clock: each statement "takes" its time on it, each pause is recorded.
    let t = 0;
    const events: string[] = [];
    const clock: Clock = {
      now: () => t,
      sleep: (ms) => {
        events.push(`pause ${ms}`);
        t += ms;
        return Promise.resolve();
      },
    };
    const statement = <T>(name: string, took: number, result: T) => {
      events.push(name);
      t += took;
      return Promise.resolve(result);
    };
    const due = [{ id: 'run-1', workspace_id: 'ws' }];
    const outputs = [500, 200, 0];
    const executions = {
      outputsPastRetention: () => statement('select', 10, due.splice(0)),
      pruneOutput: () => statement('delete', 40, { rows: outputs.shift() ?? 0, bytes: 0, expired: 0 }),
      pruneRememberedDeliveries: () => statement('forget ids', 8, 0),
      reconcileWorkspaceUsage: () => Promise.resolve(0),
    } as unknown as ExecutionRepository;
    const deliveries = { pruneExpired: () => statement('deliveries', 20, 0) } as unknown as DeliveryLog;
    const conn = { connect: async () => undefined, release: async () => undefined, query: async (sql: string) => (sql.includes('try_advisory') ? [{ locked: true }] : []) };
    const db = { createQueryRunner: () => conn } as unknown as DataSource;
    const config = { outputRetentionSeconds: 60, deliveryRetentionSeconds: 60, pruneIntervalSeconds: 60 } as AppConfig;

    const service = new RetentionService(config, db, executions, deliveries);
    Object.assign(service, { paced: new DutyCycle(0.25, 5, new AbortController().signal, clock) });
    await service.pass();

    expect(events).toEqual([
      'select', 'pause 30',
      'delete', 'pause 120', 'delete', 'pause 120', 'delete', 'pause 120',
      'select', 'pause 30',
      'deliveries', 'pause 60',
      'forget ids', 'pause 24',
    ]);
    expect(service.progress).toMatchObject({ outputRows: 700, passes: 1, backlog: 0 });
  });
});
