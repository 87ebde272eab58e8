import type { Trigger } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, type EntityManager } from 'typeorm';
import { notFound } from '../common/app-exception.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { Script } from '../scripts/script.entity.js';
import { Server } from '../servers/server.entity.js';
import { ExecutionEvents } from './execution-events.js';
import { Execution } from './execution.entity.js';

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

  accepted(execution: Pick<Execution, 'id' | 'status'>): Accepted {
    const base = `/api/v1/executions/${execution.id}`;
    return {
      executionId: execution.id,
      status: execution.status,
      links: { execution: base, output: `${base}/output`, events: `${base}/events` },
    };
  }
}
