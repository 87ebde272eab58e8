import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DataSource, Repository } from 'typeorm';
import { HttpStatus } from '@nestjs/common';
import { AppException, notFound } from '../common/app-exception.js';
import { APP_CONFIG, type AppConfig, parseDuration } from '../config/app-config.js';
import { ApiKey } from './api-key.entity.js';
import { ApiKeysService } from './api-keys.service.js';
import { Workspace } from './workspace.entity.js';

/** Serialises bootstraps of several control planes starting on one empty database. */
const BOOTSTRAP_LOCK = 0x64657670; // "devp"

@Injectable()
export class WorkspacesService implements OnApplicationBootstrap {
  private readonly logger = new Logger(WorkspacesService.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectDataSource() private readonly db: DataSource,
    @InjectRepository(Workspace) private readonly workspaces: Repository<Workspace>,
    private readonly apiKeys: ApiKeysService,
  ) {}

  /** First start on an empty database: a workspace and the owner key that is also the instance admin. */
  async onApplicationBootstrap(): Promise<void> {
    const generated = await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK]);
      if ((await tx.getRepository(Workspace).count()) > 0) return null;
      const ws = await tx.getRepository(Workspace).save({ name: 'default' });
      const { key } = await this.apiKeys.create(ws.id, 'admin', 'owner', {
        key: this.config.adminApiKey ?? undefined,
        isAdmin: true,
        repo: tx.getRepository(ApiKey),
      });
      this.logger.log(`bootstrapped workspace ${ws.id} with the instance admin key`);
      return this.config.adminApiKey ? null : key;
    });
    if (generated) {
      const file = path.join(this.config.dataDir, 'admin-api-key');
      await writeFile(file, `${generated}\n`, { mode: 0o600 });
      // Printed once, on purpose and outside the structured log: it is the only way in.
      process.stdout.write(`\nAdmin API key (shown once, also saved to ${file}):\n\n  ${generated}\n\n`);
    } else if (this.config.adminApiKey && !(await this.apiKeys.hasAdminKey(this.config.adminApiKey))) {
      this.logger.warn('DEVPILOT_ADMIN_API_KEY is not the admin key of this database (it was bootstrapped with another); ignoring it');
    }
  }

  /** A new workspace and its first owner key, returned once. */
  async create(name: string): Promise<{ id: string; name: string; apiKey: string }> {
    return this.db.transaction(async (tx) => {
      const ws = await tx.getRepository(Workspace).save({ name });
      const { key } = await this.apiKeys.create(ws.id, `${name} owner`, 'owner', { repo: tx.getRepository(ApiKey) });
      return { id: ws.id, name: ws.name, apiKey: key };
    });
  }

  async get(id: string): Promise<Workspace> {
    const ws = await this.workspaces.findOne({ where: { id } });
    if (!ws) throw notFound('Workspace');
    return ws;
  }

  /** The workspace's settings and storage, as its owner sees them. */
  async settings(id: string): Promise<WorkspaceSettings> {
    const ws = await this.get(id);
    const c = this.config;
    const output = Math.min(ws.outputRetentionSeconds ?? c.outputRetentionSeconds, c.outputRetentionSeconds);
    const deliveries = Math.min(ws.deliveryRetentionSeconds ?? c.deliveryRetentionSeconds, c.deliveryRetentionSeconds);
    return {
      id: ws.id,
      name: ws.name,
      outputRetention: formatDuration(output),
      outputRetentionSeconds: output,
      deliveryRetention: formatDuration(deliveries),
      deliveryRetentionSeconds: deliveries,
      instanceOutputRetention: formatDuration(c.outputRetentionSeconds),
      instanceDeliveryRetention: formatDuration(c.deliveryRetentionSeconds),
      outputBytes: ws.outputBytes,
      outputQuotaBytes: c.workspaceOutputQuotaBytes,
    };
  }

  /** A workspace owner may shorten its retention (never past the instance's); null goes back to the instance's. */
  async updateRetention(id: string, change: { outputRetention?: string | null; deliveryRetention?: string | null }): Promise<WorkspaceSettings> {
    const patch: Partial<Workspace> = {};
    if (change.outputRetention !== undefined) {
      patch.outputRetentionSeconds = retention('outputRetention', change.outputRetention, this.config.outputRetentionSeconds);
    }
    if (change.deliveryRetention !== undefined) {
      patch.deliveryRetentionSeconds = retention('deliveryRetention', change.deliveryRetention, this.config.deliveryRetentionSeconds);
    }
    if (Object.keys(patch).length) await this.workspaces.update({ id }, patch);
    return this.settings(id);
  }

  /** The bootstrap workspace: where the local agent's server lives. */
  async bootstrapWorkspaceId(): Promise<string> {
    const row = await this.db.getRepository(ApiKey).findOne({ where: { isAdmin: true }, order: { createdAt: 'ASC' } });
    if (!row) throw new Error('no bootstrap workspace yet');
    return row.workspaceId;
  }
}

export interface WorkspaceSettings {
  id: string;
  name: string;
  /** Effective retention (the workspace's own when shorter than the instance's). */
  outputRetention: string;
  outputRetentionSeconds: number;
  deliveryRetention: string;
  deliveryRetentionSeconds: number;
  instanceOutputRetention: string;
  instanceDeliveryRetention: string;
  /** Output stored now, and the instance's quota per workspace. */
  outputBytes: number;
  outputQuotaBytes: number;
}

function retention(field: string, value: string | null, instanceSeconds: number): number | null {
  if (value === null) return null;
  const seconds = parseDuration(value);
  if (seconds === null) throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', `${field} must be a duration such as 30d, 12h, 90s`);
  if (seconds > instanceSeconds) {
    throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', `${field} may not be longer than the instance's ${formatDuration(instanceSeconds)}`);
  }
  return seconds;
}

/** Seconds as the largest whole unit: 2592000 -> 30d, 43200 -> 12h, 90 -> 90s. */
export function formatDuration(seconds: number): string {
  for (const [unit, n] of [['d', 86_400], ['h', 3600], ['m', 60]] as const) if (seconds % n === 0) return `${seconds / n}${unit}`;
  return `${seconds}s`;
}
