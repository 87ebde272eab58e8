import { isTerminal } from '@app/protocol';
import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Pool } from 'pg';
import { Counter, Gauge, register } from 'prom-client';
import type { Subscription } from 'rxjs';
import type { DataSource } from 'typeorm';
import { AgentLink } from '../agents/agent-link.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ExecutionEvents } from '../executions/execution-events.js';
import { rows } from '../executions/sql.js';
import { RetentionService } from '../retention/retention.service.js';
import { LiveConnections } from './live-connections.js';

/**
 * The control plane's Prometheus series (documented in the README). Each node reports its own:
 * counters count what this node did, gauges read this node's state, except the queue gauges,
 * which read the shared database. No series carries a tenant's name or id.
 */
@Injectable()
export class DevpilotMetrics implements OnModuleDestroy {
  private readonly subscriptions: Subscription[] = [];
  private readonly owned: string[] = [];

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @InjectDataSource() db: DataSource,
    events: ExecutionEvents,
    link: AgentLink,
    retention: RetentionService,
    live: LiveConnections,
  ) {
    const name = <T extends string>(n: T): T => (this.owned.push(n), n);
    const finished = new Counter({
      name: name('devpilot_executions_finished_total'),
      help: 'Executions this node moved to a terminal status, by status',
      labelNames: ['status'],
    });
    const outputBytes = new Counter({ name: name('devpilot_output_bytes_stored_total'), help: 'Output bytes this node stored' });
    this.subscriptions.push(
      events.status.subscribe((e) => isTerminal(e.status) && finished.inc({ status: e.status })),
      events.output.subscribe((e) => outputBytes.inc(e.data.length)),
    );

    const queued = new Gauge({ name: name('devpilot_executions_queued'), help: 'Executions waiting for their agent (all nodes)' });
    const oldest = new Gauge({ name: name('devpilot_executions_oldest_queued_seconds'), help: 'Age of the oldest queued execution (all nodes); 0 when none' });
    const active = new Gauge({
      name: name('devpilot_executions_active'),
      help: 'Executions dispatched or running (all nodes), by status',
      labelNames: ['status'],
      async collect() {
        const [q] = await rows<{ queued: string; dispatched: string; running: string; oldest: number | null }>(
          db,
          `SELECT count(*) FILTER (WHERE status = 'queued') AS queued, count(*) FILTER (WHERE status = 'dispatched') AS dispatched,
                  count(*) FILTER (WHERE status = 'running') AS running,
                  extract(epoch FROM now() - min(queued_at) FILTER (WHERE status = 'queued'))::float8 AS oldest
           FROM execution WHERE status IN ('queued', 'dispatched', 'running')`,
        );
        queued.set(Number(q?.queued ?? 0));
        oldest.set(q?.oldest ?? 0);
        this.set({ status: 'dispatched' }, Number(q?.dispatched ?? 0));
        this.set({ status: 'running' }, Number(q?.running ?? 0));
      },
    });
    void active;

    new Gauge({
      name: name('devpilot_agents_connected'),
      help: 'Agent connections held by this node',
      collect() {
        this.set(link.localConnections());
      },
    });
    new Gauge({
      name: name('devpilot_viewers_connected'),
      help: 'Dashboard feed connections held by this node',
      collect() {
        this.set(live.viewers);
      },
    });
    new Gauge({
      name: name('devpilot_sse_streams'),
      help: 'Server-Sent Events streams open on this node',
      collect() {
        this.set(live.sseStreams);
      },
    });

    const progress = retention.progress;
    const pruned = (n: string, help: string, read: () => number) =>
      new Gauge({
        name: name(n),
        help,
        collect() {
          this.set(read());
        },
      });
    pruned('devpilot_prune_output_rows_deleted', 'Output rows the pruning job deleted on this node since it started', () => progress.outputRows);
    pruned('devpilot_prune_output_bytes_deleted', 'Output bytes the pruning job deleted on this node since it started', () => progress.outputBytes);
    pruned('devpilot_prune_executions_expired', 'Executions whose output the pruning job removed on this node since it started', () => progress.executionsExpired);
    pruned('devpilot_prune_deliveries_deleted', 'Delivery records the pruning job deleted on this node since it started', () => progress.deliveries);
    pruned('devpilot_prune_backlog', 'Ended runs past retention still waiting when the last pass on this node stopped', () => progress.backlog);
    pruned('devpilot_prune_last_pass_timestamp_seconds', 'When this node last completed a pruning pass (0: never)', () =>
      progress.lastPassAt ? progress.lastPassAt.getTime() / 1000 : 0,
    );

    // TypeORM's PostgreSQL driver keeps its pg Pool as `master`.
    const pool = (db.driver as unknown as { master?: Pool }).master;
    new Gauge({
      name: name('devpilot_db_pool_connections'),
      help: 'Database connections of this node, by state (total, idle, waiting clients); max is DEVPILOT_DB_POOL_SIZE',
      labelNames: ['state'],
      collect() {
        this.set({ state: 'total' }, pool?.totalCount ?? 0);
        this.set({ state: 'idle' }, pool?.idleCount ?? 0);
        this.set({ state: 'waiting' }, pool?.waitingCount ?? 0);
        this.set({ state: 'max' }, config.dbPoolSize);
      },
    });
  }

  onModuleDestroy(): void {
    for (const s of this.subscriptions) s.unsubscribe();
    for (const n of this.owned) register.removeSingleMetric(n);
  }
}
