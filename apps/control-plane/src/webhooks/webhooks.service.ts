import { HttpStatus, Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { AppException, notFound } from '../common/app-exception.js';
import type { AuthContext } from '../common/auth/auth-context.js';
import { newestFirst, type Page, toPage } from '../common/pagination.js';
import { SecretsService } from '../common/secrets.service.js';
import { newWebhookToken, sha256 } from '../common/tokens.js';
import { reserveWorkspaceSlot } from '../common/workspace-limits.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { Script } from '../scripts/script.entity.js';
import { Server } from '../servers/server.entity.js';
import { DeliveryLog, type DeliveryView } from './delivery-log.service.js';
import type { CreateWebhookDto, UpdateWebhookDto } from './dto/webhooks.dto.js';
import { InvalidAllowlistEntry, normalizeAllowlist } from './ip-allowlist.js';
import { webhookExamples, type WebhookExamples } from './webhook-examples.js';
import { generateSecret, secretProblem, type SignatureScheme } from './webhook-signature.js';
import { Webhook } from './webhook.entity.js';
import { ExecutionRepository, type WebhookPolicy } from '../executions/execution.repository.js';
import { ExecutionEvents } from '../executions/execution-events.js';

export const TOKEN_PURPOSE = 'webhook-token';
export const HMAC_PURPOSE = 'webhook-hmac';

export interface WebhookView {
  id: string;
  name: string;
  scriptId: string;
  serverId: string;
  /** The owner reads it back here; null for a viewer key (a viewer must not be able to run scripts). */
  token: string | null;
  active: boolean;
  allowedIps: string[];
  hmacEnabled: boolean;
  signatureScheme: SignatureScheme;
  concurrency: WebhookPolicy['concurrency'];
  cooldownSeconds: number;
  passPayload: boolean;
  /** Only in the answer that created the webhook, and only when the secret was generated there. */
  hmacSecret?: string;
  callCount: number;
  lastCalledAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  examples: WebhookExamples;
}

/** Webhook management: create, read (with the token, for owners), change, delete, and the delivery log. */
@Injectable()
export class WebhooksService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectDataSource() private readonly db: DataSource,
    private readonly secrets: SecretsService,
    private readonly deliveries: DeliveryLog,
    private readonly executions: ExecutionRepository,
    private readonly executionEvents: ExecutionEvents,
  ) {}

  private get webhooks() {
    return this.db.getRepository(Webhook);
  }

  async create(auth: AuthContext, scriptId: string, dto: CreateWebhookDto): Promise<WebhookView> {
    const allowedIps = allowlist(dto.allowedIps ?? []);
    await this.requireScript(auth.workspaceId, scriptId);
    const server = await this.db.getRepository(Server).exists({ where: { id: dto.serverId, workspaceId: auth.workspaceId } });
    if (!server) throw notFound('Server');
    const scheme = dto.signatureScheme ?? 'devpilot';
    let secret = dto.hmacSecret ?? null;
    let generated: string | undefined;
    if (secret === null && scheme === 'slack') {
      throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', "hmacSecret is required for the slack scheme: paste the app's Signing Secret");
    }
    if (secret === null && scheme !== 'devpilot' && scheme !== 'slack') secret = generated = generateSecret(scheme);
    const problem = secret === null ? null : secretProblem(scheme, secret);
    if (problem) throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', problem);
    const token = newWebhookToken();
    const row = await this.db.transaction(async (tx) => {
      await reserveWorkspaceSlot(tx, this.config, auth.workspaceId, 'webhooks');
      const repo = tx.getRepository(Webhook);
      return repo.save(
        repo.create({
          workspaceId: auth.workspaceId,
          scriptId,
          serverId: dto.serverId,
          name: dto.name,
          tokenEncrypted: this.secrets.seal(token, TOKEN_PURPOSE),
          tokenHash: sha256(token),
          active: true,
          allowedIps,
          hmacSecretEncrypted: secret === null ? null : this.secrets.seal(secret, HMAC_PURPOSE),
          hmacEnabled: secret !== null,
          signatureScheme: scheme,
          concurrency: dto.concurrency ?? 'parallel',
          cooldownSeconds: dto.cooldownSeconds ?? 0,
          passPayload: dto.passPayload ?? false,
          callCount: 0,
          lastCalledAt: null,
        }),
      );
    });
    const view = this.toView(row, auth, token);
    return generated === undefined ? view : { ...view, hmacSecret: generated };
  }

  async list(auth: AuthContext, scriptId: string, limit = 50, cursor?: string): Promise<Page<WebhookView>> {
    await this.requireScript(auth.workspaceId, scriptId);
    const qb = this.webhooks
      .createQueryBuilder('w')
      .addSelect('w.tokenEncrypted')
      .where('w.script_id = :scriptId AND w.workspace_id = :workspaceId', { scriptId, workspaceId: auth.workspaceId });
    newestFirst(qb, 'w', cursor, limit);
    return toPage(await qb.getMany(), limit, (w) => ({ at: w.createdAt, id: w.id }), (w) => this.toView(w, auth));
  }

  async get(auth: AuthContext, id: string): Promise<WebhookView> {
    return this.toView(await this.find(auth.workspaceId, id), auth);
  }

  async update(auth: AuthContext, id: string, dto: UpdateWebhookDto): Promise<WebhookView> {
    const allowedIps = dto.allowedIps === undefined ? undefined : allowlist(dto.allowedIps);
    const row = await this.find(auth.workspaceId, id);
    const change: Partial<Pick<Webhook, 'name' | 'active' | 'allowedIps' | 'concurrency' | 'cooldownSeconds' | 'passPayload'>> = {};
    if (dto.concurrency !== undefined) change.concurrency = dto.concurrency;
    if (dto.cooldownSeconds !== undefined) change.cooldownSeconds = dto.cooldownSeconds;
    if (dto.passPayload !== undefined) change.passPayload = dto.passPayload;
    if (dto.name !== undefined) change.name = dto.name;
    if (dto.active !== undefined) change.active = dto.active;
    if (allowedIps !== undefined) change.allowedIps = allowedIps;
    // Only the named columns: never a read-modify-write of call_count racing the trigger.
    if (change.concurrency !== undefined && change.concurrency !== 'queue') {
      await this.leaveQueue(row.id, auth.workspaceId, change);
    } else if (Object.keys(change).length) {
      await this.webhooks.update({ id: row.id, workspaceId: auth.workspaceId }, change);
    }
    return this.get(auth, id);
  }

  /**
   * A change that may take the webhook out of the `queue` policy: decided under its row lock (the
   * trigger decides policy calls under the same lock), and the runs that waited behind the policy
   * get their deadline from now in the same transaction, then are dispatched.
   */
  private async leaveQueue(id: string, workspaceId: string, change: Partial<Webhook>): Promise<void> {
    const servers = await this.db.transaction(async (m) => {
      const [current] = await m.query<{ concurrency: string }[]>(`SELECT concurrency FROM webhook WHERE id = $1 AND workspace_id = $2 FOR UPDATE`, [id, workspaceId]);
      const released = current?.concurrency === 'queue' ? await this.executions.releaseWaiting(id, m) : [];
      await m.getRepository(Webhook).update({ id, workspaceId }, change);
      return released;
    });
    for (const serverId of servers) this.executionEvents.released.next(serverId);
  }

  async delete(auth: AuthContext, id: string): Promise<void> {
    // Under the row lock the trigger takes for policy calls: no call slips in between.
    const cancelled = await this.db.transaction(async (m) => {
      const [current] = await m.query<{ concurrency: string }[]>(`SELECT concurrency FROM webhook WHERE id = $1 AND workspace_id = $2 FOR UPDATE`, [id, auth.workspaceId]);
      if (!current) throw notFound('Webhook');
      const waiting = current.concurrency === 'queue' ? await this.executions.cancelWaitingOf(id, m) : [];
      await m.getRepository(Webhook).delete({ id, workspaceId: auth.workspaceId });
      return waiting;
    });
    this.executions.announce(cancelled);
    this.deliveries.forget(id);
  }

  async listDeliveries(auth: AuthContext, id: string, limit = 50, cursor?: string): Promise<Page<DeliveryView>> {
    const exists = await this.webhooks.exists({ where: { id, workspaceId: auth.workspaceId } });
    if (!exists) throw notFound('Webhook');
    return this.deliveries.list(id, limit, cursor);
  }

  private async find(workspaceId: string, id: string): Promise<Webhook> {
    const row = await this.webhooks
      .createQueryBuilder('w')
      .addSelect('w.tokenEncrypted')
      .where('w.id = :id AND w.workspace_id = :workspaceId', { id, workspaceId })
      .getOne();
    if (!row) throw notFound('Webhook');
    return row;
  }

  private async requireScript(workspaceId: string, id: string): Promise<void> {
    if (!(await this.db.getRepository(Script).exists({ where: { id, workspaceId } }))) throw notFound('Script');
  }

  private toView(w: Webhook, auth: AuthContext, token?: string): WebhookView {
    const visible = auth.role === 'owner' ? (token ?? this.secrets.open(w.tokenEncrypted, TOKEN_PURPOSE)) : null;
    return {
      id: w.id,
      name: w.name,
      scriptId: w.scriptId,
      serverId: w.serverId,
      token: visible,
      active: w.active,
      allowedIps: w.allowedIps,
      hmacEnabled: w.hmacEnabled,
      signatureScheme: w.signatureScheme,
      concurrency: w.concurrency,
      cooldownSeconds: w.cooldownSeconds,
      passPayload: w.passPayload,
      callCount: w.callCount,
      lastCalledAt: w.lastCalledAt,
      createdAt: w.createdAt,
      updatedAt: w.updatedAt,
      examples: webhookExamples(this.config.publicUrl, visible, w.hmacEnabled, w.signatureScheme),
    };
  }
}

function allowlist(entries: string[]): string[] {
  try {
    return normalizeAllowlist(entries);
  } catch (e) {
    if (e instanceof InvalidAllowlistEntry) throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', e.message);
    throw e;
  }
}
