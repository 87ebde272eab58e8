import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DataSource, Repository } from 'typeorm';
import { notFound } from '../common/app-exception.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
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

  /** The bootstrap workspace: where the local agent's server lives. */
  async bootstrapWorkspaceId(): Promise<string> {
    const row = await this.db.getRepository(ApiKey).findOne({ where: { isAdmin: true }, order: { createdAt: 'ASC' } });
    if (!row) throw new Error('no bootstrap workspace yet');
    return row.workspaceId;
  }
}
