import { Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { newestFirst, type Page, toPage } from '../common/pagination.js';
import { WebhookDelivery } from './webhook-delivery.entity.js';

/** What one trigger call is recorded as. */
export interface DeliveryRecord {
  webhookId: string | null;
  workspaceId: string | null;
  sourceIp: string;
  statusCode: number;
  /** ACCEPTED or the error code answered. */
  code: string;
  reason: string;
  executionId: string | null;
  userAgent: string | null;
}

/** A delivery as the API lists it: the record, less the ids the caller already knows. */
export type DeliveryView = Omit<DeliveryRecord, 'webhookId' | 'workspaceId'> & { id: string; createdAt: Date };

/** Deliveries kept per webhook, and for calls that matched no webhook (all together). */
export const KEPT_PER_WEBHOOK = 200;
export const KEPT_UNMATCHED = 1000;
/** Old rows are pruned once per this many new rows of the same webhook, not on every call. */
export const PRUNE_EVERY = 50;
/** Rejected calls waiting to be written; beyond this they are counted and dropped, never queued without bound. */
const MAX_PENDING = 5000;
const BATCH = 500;
const UNMATCHED = '';
const FOREIGN_KEY_VIOLATION = '23503';

/**
 * The log of trigger calls an owner reads to debug a caller. An accepted call's row is written in
 * the trigger's own transaction (then `committed`); a rejected call's row is handed over (`record`) and
 * written in the background, many rows per INSERT, so a rejection never waits for the database and
 * a flood of bad calls costs a bounded queue, not a connection each. A failure here is logged and
 * never changes the answer a caller got.
 */
@Injectable()
export class DeliveryLog implements BeforeApplicationShutdown {
  private readonly logger = new Logger(DeliveryLog.name);
  private pending: DeliveryRecord[] = [];
  private readonly sinceLastPrune = new Map<string, number>();
  private readonly pruneDue = new Set<string>();
  private writing: Promise<void> | null = null;
  private dropped = 0;

  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** Queues a rejected call's row. Synchronous and cheap: it never throws and never waits. */
  record(row: DeliveryRecord): void {
    if (this.pending.length >= MAX_PENDING) {
      if (this.dropped++ % 1000 === 0) this.logger.warn({ dropped: this.dropped }, 'delivery log queue full: dropping rejected-call records');
      return;
    }
    this.pending.push({ ...row, userAgent: row.userAgent?.slice(0, 512) ?? null });
    this.kick();
  }

  /** An accepted call's row was committed (by the trigger's own transaction): counts it towards the next prune. */
  committed(webhookId: string): void {
    if (this.count(webhookId)) this.kick();
  }

  /** Resolves when everything queued so far (rows and prunes) has been written. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  async list(webhookId: string, limit = 50, cursor?: string): Promise<Page<DeliveryView>> {
    await this.flush();
    const qb = this.db
      .getRepository(WebhookDelivery)
      .createQueryBuilder('d')
      .where('d.webhook_id = :webhookId', { webhookId });
    newestFirst(qb, 'd', cursor, limit);
    return toPage(await qb.getMany(), limit, (d) => ({ at: d.createdAt, id: d.id }), toView);
  }

  /** A deleted webhook's rows went with it (ON DELETE CASCADE); stop counting towards its prune. */
  forget(webhookId: string): void {
    this.sinceLastPrune.delete(webhookId);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.flush();
  }

  private kick(): void {
    this.writing ??= this.drain().finally(() => {
      this.writing = null;
      // Something arrived between the last check and now: go again.
      if (this.pending.length || this.pruneDue.size) this.kick();
    });
  }

  private async drain(): Promise<void> {
    // Let the calls of this tick join the first batch.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.pending.length || this.pruneDue.size) {
      if (this.pending.length) {
        const batch = this.pending.splice(0, BATCH);
        await this.write(batch);
        continue;
      }
      const [key] = this.pruneDue;
      this.pruneDue.delete(key!);
      await this.prune(key!).catch((e: unknown) => this.logger.warn({ err: describe(e) }, 'could not prune delivery records'));
    }
  }

  private async write(batch: DeliveryRecord[]): Promise<void> {
    const repo = this.db.getRepository(WebhookDelivery);
    let written = batch;
    try {
      await repo.insert(batch);
    } catch (e) {
      // A webhook deleted since its call was answered fails the whole batch: keep the others.
      if ((e as { driverError?: { code?: string } }).driverError?.code !== FOREIGN_KEY_VIOLATION) {
        this.logger.warn({ err: describe(e), rows: batch.length }, 'could not write delivery records');
        return;
      }
      written = [];
      for (const row of batch) {
        if (await repo.insert(row).then(() => true, () => false)) written.push(row);
      }
    }
    for (const row of written) this.count(row.webhookId ?? UNMATCHED);
  }

  /** Counts a new row; true when its webhook is due for a prune. */
  private count(key: string): boolean {
    const n = (this.sinceLastPrune.get(key) ?? 0) + 1;
    if (n < PRUNE_EVERY) {
      this.sinceLastPrune.set(key, n);
      return false;
    }
    this.sinceLastPrune.delete(key);
    this.pruneDue.add(key);
    return true;
  }

  /**
   * Retention: deletes up to `limit` delivery records older than their workspace's retention (the
   * instance's, or the workspace's own when shorter; unmatched calls use the instance's). Returns
   * how many went.
   */
  async pruneExpired(instanceSeconds: number, limit: number): Promise<number> {
    const [, deleted] = (await this.db.query(
      `DELETE FROM webhook_delivery WHERE id IN (
         SELECT d.id FROM webhook_delivery d LEFT JOIN workspace w ON w.id = d.workspace_id
         WHERE d.created_at < now() - make_interval(secs => LEAST($1::int, COALESCE(w.delivery_retention_seconds, $1::int)))
         LIMIT $2)`,
      [instanceSeconds, limit],
    )) as [unknown, number];
    return deleted;
  }

  /** Deletes all but the newest rows of one webhook (or of the unmatched calls), using their index. */
  private async prune(key: string): Promise<void> {
    if (key === UNMATCHED) {
      await this.db.query(
        `DELETE FROM webhook_delivery WHERE webhook_id IS NULL AND (created_at, id) < (
           SELECT created_at, id FROM webhook_delivery WHERE webhook_id IS NULL
           ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1)`,
        [KEPT_UNMATCHED - 1],
      );
      return;
    }
    await this.db.query(
      `DELETE FROM webhook_delivery WHERE webhook_id = $1 AND (created_at, id) < (
         SELECT created_at, id FROM webhook_delivery WHERE webhook_id = $1
         ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1)`,
      [key, KEPT_PER_WEBHOOK - 1],
    );
  }
}

function toView(d: WebhookDelivery): DeliveryView {
  return {
    id: d.id,
    createdAt: d.createdAt,
    sourceIp: d.sourceIp,
    statusCode: d.statusCode,
    code: d.code,
    reason: d.reason,
    executionId: d.executionId,
    userAgent: d.userAgent,
  };
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
