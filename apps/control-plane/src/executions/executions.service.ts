import { type ExecutionStatus, type StartExecution, type Trigger } from '@app/protocol';
import { HttpStatus, Inject, Injectable } from '@nestjs/common';
import { AgentLink } from '../agents/agent-link.js';
import { AppException, notFound, overloaded } from '../common/app-exception.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import type { Page } from '../common/pagination.js';
import { ExecutionEvents } from './execution-events.js';
import { type CreatedRow, ExecutionRepository, type NewExecution, type RememberedDelivery, type Skipped } from './execution.repository.js';
import { Execution } from './execution.entity.js';
import { decodeExecutionCursor, type ExecutionView, toPageOfExecutions, toView } from './execution-view.js';
import { StartCommands } from './start-commands.js';

export interface ExecutionFilters {
  scriptId?: string;
  serverId?: string;
  webhookId?: string;
  trigger?: Trigger;
  status?: ExecutionStatus;
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
    private readonly repo: ExecutionRepository,
    private readonly events: ExecutionEvents,
    private readonly link: AgentLink,
    private readonly commands: StartCommands,
  ) {}

  /**
   * The one way an execution comes about, for webhook calls and manual runs alike: one statement
   * records it (created `dispatched` with its start command when the server's agent is online, on
   * this node or another, and nothing older waits, else `queued`; a webhook call without a policy
   * may share its statement with others, see ExecutionRepository.accept), then the dispatcher is told. Null when
   * the webhook, script or server no longer matches; 503 OVERLOADED when the server's backlog is
   * at its bound (nothing written).
   */
  async create(spec: NewExecution, serverId: string): Promise<CreatedRow | { duplicate: RememberedDelivery } | { skipped: Skipped } | null> {
    const underPolicy = spec.trigger === 'webhook' && (spec.policy.concurrency !== 'parallel' || spec.policy.cooldownSeconds > 0);
    const decided = underPolicy ? await this.repo.createUnderPolicy(spec, this.link.hasLocalReadyAgent(serverId)) : null;
    if (decided !== null && typeof decided === 'object' && 'skipped' in decided) return decided;
    const row = underPolicy
      ? decided !== null && typeof decided === 'object'
        ? decided.created
        : decided
      : spec.trigger === 'webhook'
        ? await this.repo.accept(spec, serverId, this.link.hasLocalReadyAgent(serverId))
        : await this.repo.create(spec, this.link.hasLocalReadyAgent(serverId));
    if (row === 'duplicate' || row === 'overloaded') {
      // A delivery seen before answers as such even while the backlog is full (it would not add to it).
      const seen = spec.trigger === 'webhook' && spec.deliveryId !== null ? await this.repo.remembered(spec.webhookId, spec.deliveryId) : null;
      if (seen) return { duplicate: seen };
      if (row === 'overloaded') throw overloaded(this.config.maxQueuedPerServer, this.config.maxQueuedRequestBytesPerServer);
      // Remembered by a call whose statement had not committed when this one read: now it has.
      return null;
    }
    if (!row) return null;
    // Built only where it is sent: for an agent on another node only the run's id goes (Dispatcher).
    const [claimed] = row.status === 'dispatched' && this.link.hasLocalReadyAgent(row.server_id) ? await this.commands.build([row]) : [];
    this.events.created.next(toCreated(row, claimed?.start ?? null));
    // replace: the runs that were active when this one was accepted are cancelled, naming it.
    if (decided !== null && typeof decided === 'object' && 'replaces' in decided) {
      for (const id of decided.replaces) {
        await this.repo.cancel(row.workspace_id, id, (sid) => this.link.hasAgent(sid), `replaced by execution ${row.id}`);
      }
    }
    return row;
  }

  /** A manual run of the script's current version on one of the workspace's servers. */
  async runManually(workspaceId: string, scriptId: string, serverId: string): Promise<Accepted> {
    const row = await this.create({ trigger: 'manual', workspaceId, scriptId, serverId }, serverId);
    if (!row || 'duplicate' in row || 'skipped' in row) throw notFound(await this.repo.scriptExists(workspaceId, scriptId) ? 'Server' : 'Script');
    return this.accepted(row);
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
    return toPageOfExecutions(await this.repo.list(where, params, limit + 1), limit);
  }

  async get(workspaceId: string, id: string): Promise<ExecutionView> {
    const row = await this.repo.view(workspaceId, id);
    if (!row) throw notFound('Execution');
    return toView(row);
  }

  /** The execution, if its output is still kept: 410 OUTPUT_EXPIRED once retention removed it. */
  async withOutput(workspaceId: string, id: string): Promise<ExecutionView> {
    const view = await this.get(workspaceId, id);
    if (view.outputExpiredAt) {
      throw new AppException(HttpStatus.GONE, 'OUTPUT_EXPIRED', `The output of this execution was removed by retention on ${view.outputExpiredAt.toISOString()}`);
    }
    return view;
  }

  /**
   * Stops an execution: a queued one is `cancelled` at once, and so is one whose agent is offline
   * (the agent is told when it reconnects); a dispatched or running one with its agent online gets
   * cancel_requested and its agent is told (it reports `cancelled` when the process is gone).
   */
  async cancel(workspaceId: string, id: string): Promise<ExecutionView> {
    const result = await this.repo.cancel(workspaceId, id, (serverId) =>
      // Not knowing (a node not answering) counts as online: the agent is asked, and its next hello settles it.
      this.link.hasAgent(serverId).catch(() => true),
    );
    if (result === 'unknown') throw notFound('Execution');
    const current = await this.get(workspaceId, id);
    if (result === 'over') throw new AppException(HttpStatus.CONFLICT, 'INVALID_STATE', `The execution is already ${current.status}`);
    return current;
  }

  accepted(execution: { id: string; status: Execution['status'] }): Accepted {
    const base = `/api/v1/executions/${execution.id}`;
    return {
      executionId: execution.id,
      status: execution.status,
      links: { execution: base, output: `${base}/output`, events: `${base}/events` },
    };
  }
}

/** What ExecutionEvents.created carries: the new row, and its start command when it was created `dispatched`. */
function toCreated(r: CreatedRow, start: StartExecution | null): Execution & { start: StartExecution | null } {
  return Object.assign(new Execution(), {
    id: r.id,
    workspaceId: r.workspace_id,
    scriptId: r.script_id,
    scriptVersion: r.script_version,
    serverId: r.server_id,
    webhookId: r.webhook_id,
    trigger: r.trigger,
    status: r.status,
    queuedAt: r.queued_at,
    deliverBy: r.deliver_by,
    start,
  });
}
