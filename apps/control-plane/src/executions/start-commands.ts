import type { RunPayload } from '@app/protocol';
import { Injectable, Logger } from '@nestjs/common';
import { SecretsService } from '../common/secrets.service.js';
import { MAX_SECRETS_PER_RUN_BYTES } from '../secrets/secret-names.js';
import { ScriptSecretsService } from '../secrets/secrets.service.js';
import { ExecutionRepository } from './execution.repository.js';
import { type ClaimedExecution, type ClaimRow, PAYLOAD_PURPOSE, startCommand } from './run-commands.js';

/**
 * Start commands for claimed runs, with the values of the secrets their script version declares,
 * read when the run is dispatched (so a rotated value applies to runs not yet started) and kept
 * nowhere but in the command on its way to the agent. A run whose secrets cannot all be given,
 * or whose `runAs` its server's agent is too old to honour, ends `failed` before it starts, its
 * reason naming what is missing, and nothing runs. A webhook's request kept for its run is read
 * and opened here too, at every dispatch (a run queued while its agent was offline gets it when
 * the agent connects); it stays sealed in the database until the run ends.
 */
@Injectable()
export class StartCommands {
  private readonly logger = new Logger(StartCommands.name);

  constructor(
    private readonly secrets: ScriptSecretsService,
    private readonly repo: ExecutionRepository,
    private readonly sealed: SecretsService,
  ) {}

  async build(rows: ClaimRow[]): Promise<ClaimedExecution[]> {
    const ready: ClaimedExecution[] = [];
    // Rows of a claim carry their sealed secrets and request; a created row reads them here.
    const payloads = await this.payloads(rows.filter((r) => r.has_payload && r.sealed_payload === undefined).map((r) => r.id));
    for (const r of rows) {
      if (r.sealed_payload) {
        const p = r.sealed_payload;
        this.openPayload(payloads, { execution_id: r.id, body_encrypted: Buffer.from(p.body, 'base64'), event: p.event, delivery_id: p.deliveryId, content_type: p.contentType });
      }
    }
    for (const r of rows) {
      if (r.run_as && !r.agent_knows_run_as) {
        await this.fail(r, `the script asks to run as "${r.run_as}", but the agent of this server is too old to run scripts as another user: upgrade it; nothing ran`, 'runAs');
        continue;
      }
      let values: Record<string, string> = {};
      if (r.secrets.length) {
        const found = r.sealed_secrets
          ? this.secrets.open(r.secrets, r.sealed_secrets.map((x) => ({ name: x.name, value: Buffer.from(x.value, 'base64') })))
          : await this.secrets.valuesFor(r.workspace_id, r.server_id, r.secrets);
        if (found.missing.length) {
          const names = found.missing.join(', ');
          await this.fail(r, `secret${found.missing.length > 1 ? 's' : ''} ${names} ${found.missing.length > 1 ? 'are' : 'is'} not defined for this server or its workspace; nothing ran`, 'secrets');
          continue;
        }
        const bytes = Object.entries(found.values).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v) + 2, 0);
        if (bytes > MAX_SECRETS_PER_RUN_BYTES) {
          await this.fail(r, `the declared secrets add up to ${bytes} bytes, more than the ${MAX_SECRETS_PER_RUN_BYTES} a run may get; nothing ran`, 'secrets');
          continue;
        }
        values = found.values;
      }
      if (r.has_payload && !r.agent_knows_payload) {
        await this.fail(r, 'this webhook passes the request to the script, but the agent of this server is too old to give it: upgrade it; nothing ran', 'payload');
        continue;
      }
      const payload = payloads.get(r.id);
      if (r.has_payload && !payload) {
        await this.fail(r, 'the request this run was to get is gone (it could not be read or opened); nothing ran', 'payload');
        continue;
      }
      ready.push({ id: r.id, workspaceId: r.workspace_id, serverId: r.server_id, start: startCommand(r, values, payload) });
    }
    return ready;
  }

  private async payloads(ids: string[]): Promise<Map<string, RunPayload>> {
    const found = new Map<string, RunPayload>();
    for (const p of await this.repo.payloads(ids)) this.openPayload(found, p);
    return found;
  }

  private openPayload(found: Map<string, RunPayload>, p: { execution_id: string; body_encrypted: Buffer; event: string; delivery_id: string; content_type: string }): void {
    try {
      const body = this.sealed.openBytes(p.body_encrypted, PAYLOAD_PURPOSE);
      found.set(p.execution_id, { body, event: p.event, deliveryId: p.delivery_id, contentType: p.content_type });
    } catch (err) {
      // Sealed under another master key: the run cannot get what it was promised.
      this.logger.error({ executionId: p.execution_id, err: (err as Error).message }, 'a kept request could not be opened');
    }
  }

  private async fail(r: ClaimRow, reason: string, why: 'secrets' | 'runAs' | 'payload'): Promise<void> {
    this.logger.warn({ executionId: r.id, why }, 'a run could not be started as its script asks; failed before it started');
    await this.repo.transition([r.id], 'failed', { error: reason });
  }
}
