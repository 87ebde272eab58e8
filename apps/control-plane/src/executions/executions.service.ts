import { type ExecutionStatus, isTerminal, type Trigger } from '@app/protocol';
import { HttpStatus, Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { filter, firstValueFrom, take, timer, race } from 'rxjs';
import { DataSource, type EntityManager } from 'typeorm';
import { AppException, notFound } from '../common/app-exception.js';
import type { Page } from '../common/pagination.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { Script } from '../scripts/script.entity.js';
import { Server } from '../servers/server.entity.js';
import { ExecutionEvents } from './execution-events.js';
import { Execution } from './execution.entity.js';
import { decodeExecutionCursor, type ExecutionRow, type ExecutionView, toPageOfExecutions, toView, VIEW_SELECT } from './execution-view.js';
import { rows } from './sql.js';

/** How long a trigger's answer waits for the dispatcher's first attempt before saying `queued`. */
const SETTLE_WAIT_MS = 2_000;

export interface ExecutionFilters {
  scriptId?: string;
  serverId?: string;
  webhookId?: string;
  trigger?: Trigger;
  status?: ExecutionStatus;
}

export interface EnqueueInput {
  workspaceId: string;
  scriptId: string;
  serverId: string;
  webhookId: string | null;
  trigger: Trigger;
}

/** The 202 answer of a trigger or a manual run. */
export interface Accepted {
  executionId: string;
  status: Execution['status'];
  links: { execution: string; output: string; events: string };
}

@Injectable()
export class ExecutionsService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectDataSource() private readonly db: DataSource,
    private readonly events: ExecutionEvents,
  ) {}

  /**
   * Records a new `queued` execution of the script's current version. Pass the caller's
   * transaction manager to make it part of a larger atomic change; call `announce` after commit.
   */
  async enqueue(input: EnqueueInput, manager: EntityManager = this.db.manager): Promise<Execution> {
    const script = await manager.findOne(Script, { where: { id: input.scriptId, workspaceId: input.workspaceId } });
    if (!script) throw notFound('Script');
    const server = await manager.exists(Server, { where: { id: input.serverId, workspaceId: input.workspaceId } });
    if (!server) throw notFound('Server');
    const repo = manager.getRepository(Execution);
    return repo.save(
      repo.create({
        ...input,
        scriptVersion: script.currentVersion,
        status: 'queued',
        deliverBy: new Date(Date.now() + this.config.deliveryDeadlineMs),
      }),
    );
  }

  /** Tells the dispatcher and viewers about a committed new execution. */
  announce(execution: Execution): void {
    this.events.created.next(execution);
  }

  /**
   * Announces a committed new execution and waits (briefly) for the dispatcher's first attempt, so
   * the 202 says `dispatched`/`running` when the agent is online and `queued` when it is not.
   */
  async dispatch(execution: Execution): Promise<Accepted> {
    const settled = firstValueFrom(
      race(
        this.events.dispatchSettled.pipe(
          filter((e) => e.executionId === execution.id),
          take(1),
        ),
        timer(SETTLE_WAIT_MS),
      ),
    );
    this.announce(execution);
    await settled;
    const [row] = await rows<{ status: ExecutionStatus }>(this.db, `SELECT status FROM execution WHERE id = $1`, [execution.id]);
    return this.accepted({ id: execution.id, status: row?.status ?? execution.status });
  }

  /** A manual run of the script's current version on one of the workspace's servers. */
  async runManually(workspaceId: string, scriptId: string, serverId: string): Promise<Accepted> {
    const execution = await this.enqueue({ workspaceId, scriptId, serverId, webhookId: null, trigger: 'manual' });
    return this.dispatch(execution);
  }

  async list(workspaceId: string, f: ExecutionFilters, limit = 50, cursor?: string): Promise<Page<ExecutionView>> {
    const params: unknown[] = [workspaceId];
    const where = ['e.workspace_id = $1'];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (f.scriptId) add('e.script_id = ?', f.scriptId);
    if (f.serverId) add('e.server_id = ?', f.serverId);
    if (f.webhookId) add('e.webhook_id = ?', f.webhookId);
    if (f.trigger) add('e.trigger = ?', f.trigger);
    if (f.status) add('e.status = ?', f.status);
    const c = decodeExecutionCursor(cursor);
    if (c) {
      params.push(c.at, c.id);
      where.push(`(e.queued_at, e.id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
    }
    params.push(limit + 1);
    const found = await rows<ExecutionRow>(
      this.db,
      `${VIEW_SELECT} WHERE ${where.join(' AND ')} ORDER BY e.queued_at DESC, e.id DESC LIMIT $${params.length}`,
      params,
    );
    return toPageOfExecutions(found, limit);
  }

  async get(workspaceId: string, id: string): Promise<ExecutionView> {
    const [row] = await rows<ExecutionRow>(this.db, `${VIEW_SELECT} WHERE e.workspace_id = $1 AND e.id = $2`, [workspaceId, id]);
    if (!row) throw notFound('Execution');
    return toView(row);
  }

  /**
   * Stops an execution: a queued one is `cancelled` at once; a dispatched or running one gets
   * cancel_requested and its agent is told (it reports `cancelled` when the process is gone).
   */
  async cancel(workspaceId: string, id: string): Promise<ExecutionView> {
    const [queued] = await rows<{ id: string; server_id: string }>(
      this.db,
      `UPDATE execution SET status = 'cancelled', cancel_requested = true, finished_at = now(), error = 'cancelled before it started'
       WHERE id = $1 AND workspace_id = $2 AND status = 'queued' RETURNING id, server_id`,
      [id, workspaceId],
    );
    if (queued) {
      this.events.status.next({ executionId: id, workspaceId, serverId: queued.server_id, status: 'cancelled', exitCode: null });
      return this.get(workspaceId, id);
    }
    const [active] = await rows<{ id: string; server_id: string }>(
      this.db,
      `UPDATE execution SET cancel_requested = true
       WHERE id = $1 AND workspace_id = $2 AND status IN ('dispatched', 'running') RETURNING id, server_id`,
      [id, workspaceId],
    );
    if (active) {
      this.events.cancelRequested.next({ executionId: id, serverId: active.server_id });
      return this.get(workspaceId, id);
    }
    const current = await this.get(workspaceId, id);
    if (isTerminal(current.status)) {
      throw new AppException(HttpStatus.CONFLICT, 'INVALID_STATE', `The execution is already ${current.status}`);
    }
    // It moved between the two updates (queued -> dispatched): try once more.
    return this.cancel(workspaceId, id);
  }

  accepted(execution: Pick<Execution, 'id' | 'status'>): Accepted {
    const base = `/api/v1/executions/${execution.id}`;
    return {
      executionId: execution.id,
      status: execution.status,
      links: { execution: base, output: `${base}/output`, events: `${base}/events` },
    };
  }
}
