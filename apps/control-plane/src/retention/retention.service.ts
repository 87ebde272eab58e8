import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ExecutionRepository } from '../executions/execution.repository.js';
import { DeliveryLog } from '../webhooks/delivery-log.service.js';
import { DutyCycle } from './duty-cycle.js';

/** One pruning job in the whole cluster at a time. */
const PRUNE_LOCK = 0x64707275; // "dpru"
/** Runs pruned together, output rows and delivery records deleted per statement. */
const RUNS_PER_QUERY = 50;
const OUTPUT_ROWS_PER_STATEMENT = 500;
const DELIVERIES_PER_STATEMENT = 1000;
/** A pass stops after this long and goes on at the next one, so shutdown never waits on it. */
const PASS_BUDGET_MS = 20_000;
/**
 * Share of the time the job spends in statements (the rest it waits, in proportion to what each
 * statement took). Back to back, they delayed the trigger's commits (which queue on the webhook's
 * row, each waiting for its WAL flush): p99 1.5-2x. At a quarter, about 1.1x, and an unloaded
 * database still prunes about 20,000 output rows a second.
 */
const DUTY = 0.25;
/** The least pause between two statements, so other work (the trigger, output batches) runs. */
const MIN_PAUSE_MS = 5;

/** What the pruning job has done since this process started (for /metrics). */
export interface PruneProgress {
  outputRows: number;
  outputBytes: number;
  executionsExpired: number;
  deliveries: number;
  /** Remembered delivery ids forgotten after their expiry. */
  deliveryIds: number;
  passes: number;
  lastPassAt: Date | null;
  /** Ended runs waiting for their output to be pruned when the last pass stopped (0: caught up). */
  backlog: number;
}

/**
 * Retention: removes execution output and delivery records older than their workspace's
 * retention, in small statements each followed by a pause three times as long as it took (no
 * long lock, no table rewrite, nothing that holds up the trigger), on one node at a time (a
 * session advisory lock), never touching a run that has not ended. A pruned execution keeps its
 * row, status and byte count and says when its output went (`outputExpiredAt`).
 */
@Injectable()
export class RetentionService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(RetentionService.name);
  private timer?: NodeJS.Timeout;
  private running: Promise<void> | null = null;
  private stopping = false;
  private reconciled = false;
  private readonly stopped = new AbortController();
  private readonly paced = new DutyCycle(DUTY, MIN_PAUSE_MS, this.stopped.signal);
  readonly progress: PruneProgress = { outputRows: 0, outputBytes: 0, executionsExpired: 0, deliveries: 0, deliveryIds: 0, passes: 0, lastPassAt: null, backlog: 0 };

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectDataSource() private readonly db: DataSource,
    private readonly executions: ExecutionRepository,
    private readonly deliveries: DeliveryLog,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.pass(), this.config.pruneIntervalSeconds * 1000);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    this.stopped.abort();
    clearInterval(this.timer);
    await this.running;
  }

  /** One pruning pass, if no other node (or an earlier pass here) runs one now. */
  pass(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.locked()
      .catch((err: unknown) => this.logger.error({ err }, 'pruning pass failed; the next one retries'))
      .finally(() => (this.running = null));
    return this.running;
  }

  private async locked(): Promise<void> {
    const conn = this.db.createQueryRunner();
    try {
      await conn.connect();
      const [{ locked }] = (await conn.query(`SELECT pg_try_advisory_lock($1) AS locked`, [PRUNE_LOCK])) as [{ locked: boolean }];
      if (!locked) return;
      try {
        await this.prune();
      } finally {
        await conn.query(`SELECT pg_advisory_unlock($1)`, [PRUNE_LOCK]);
      }
    } finally {
      await conn.release();
    }
  }

  private async prune(): Promise<void> {
    const until = Date.now() + PASS_BUDGET_MS;
    const more = () => !this.stopping && Date.now() < until;
    let backlog = 0;
    outer: while (more()) {
      const due = await this.paced.run(() => this.executions.outputsPastRetention(this.config.outputRetentionSeconds, RUNS_PER_QUERY));
      backlog = due.length;
      if (due.length === 0) break;
      const ids = due.map((r) => r.id);
      for (;;) {
        if (!more()) break outer;
        const { rows, bytes, expired } = await this.paced.run(() => this.executions.pruneOutput(ids, OUTPUT_ROWS_PER_STATEMENT));
        this.progress.outputRows += rows;
        this.progress.outputBytes += bytes;
        this.progress.executionsExpired += expired;
        if (rows === 0) break;
      }
    }
    while (more()) {
      const n = await this.paced.run(() => this.deliveries.pruneExpired(this.config.deliveryRetentionSeconds, DELIVERIES_PER_STATEMENT));
      this.progress.deliveries += n;
      if (n < DELIVERIES_PER_STATEMENT) break;
    }
    // Delivery ids past their memory (24 h): a later call with one of them runs again.
    while (more()) {
      const n = await this.paced.run(() => this.executions.pruneRememberedDeliveries(DELIVERIES_PER_STATEMENT));
      this.progress.deliveryIds += n;
      if (n < DELIVERIES_PER_STATEMENT) break;
    }
    // Once per process: deletions give their runs' output back as they happen (deleteWithRuns),
    // so this only repairs usage left behind by an earlier version; scanning every run each pass would not scale.
    if (!this.stopping && !this.reconciled) {
      this.reconciled = true;
      const fixed = await this.executions.reconcileWorkspaceUsage();
      if (fixed) this.logger.log({ workspaces: fixed }, 'workspace output usage corrected (runs deleted with their script or server)');
    }
    this.progress.passes++;
    this.progress.lastPassAt = new Date();
    this.progress.backlog = backlog;
  }
}
