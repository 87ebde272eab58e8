import { Injectable, Logger } from '@nestjs/common';
import { MAX_SECRETS_PER_RUN_BYTES } from '../secrets/secret-names.js';
import { ScriptSecretsService } from '../secrets/secrets.service.js';
import { ExecutionRepository } from './execution.repository.js';
import { type ClaimedExecution, type ClaimRow, startCommand } from './run-commands.js';

/**
 * Start commands for claimed runs, with the values of the secrets their script version declares,
 * read when the run is dispatched (so a rotated value applies to runs not yet started) and kept
 * nowhere but in the command on its way to the agent. A run whose secrets cannot all be given
 * ends `failed` before it starts, its reason naming what is missing, and nothing runs.
 */
@Injectable()
export class StartCommands {
  private readonly logger = new Logger(StartCommands.name);

  constructor(
    private readonly secrets: ScriptSecretsService,
    private readonly repo: ExecutionRepository,
  ) {}

  async build(rows: ClaimRow[]): Promise<ClaimedExecution[]> {
    const ready: ClaimedExecution[] = [];
    for (const r of rows) {
      let values: Record<string, string> = {};
      if (r.secrets.length) {
        const found = await this.secrets.valuesFor(r.workspace_id, r.server_id, r.secrets);
        if (found.missing.length) {
          const names = found.missing.join(', ');
          await this.fail(r, `secret${found.missing.length > 1 ? 's' : ''} ${names} ${found.missing.length > 1 ? 'are' : 'is'} not defined for this server or its workspace; nothing ran`);
          continue;
        }
        const bytes = Object.entries(found.values).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v) + 2, 0);
        if (bytes > MAX_SECRETS_PER_RUN_BYTES) {
          await this.fail(r, `the declared secrets add up to ${bytes} bytes, more than the ${MAX_SECRETS_PER_RUN_BYTES} a run may get; nothing ran`);
          continue;
        }
        values = found.values;
      }
      ready.push({ id: r.id, workspaceId: r.workspace_id, serverId: r.server_id, start: startCommand(r, values) });
    }
    return ready;
  }

  private async fail(r: ClaimRow, reason: string): Promise<void> {
    this.logger.warn({ executionId: r.id }, 'a run could not get its secrets; failed before it started');
    await this.repo.transition([r.id], 'failed', { error: reason });
  }
}
