import { HttpStatus, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { AppException, notFound } from '../common/app-exception.js';
import type { AuthContext } from '../common/auth/auth-context.js';
import { newApiKey, sha256 } from '../common/tokens.js';
import { ApiKey, type ApiKeyRole } from './api-key.entity.js';
import { ApiKeyEvents } from './api-key-events.js';

export interface ApiKeyView {
  id: string;
  name: string;
  role: ApiKeyRole;
  prefix: string;
  isAdmin: boolean;
  lastUsedAt: Date | null;
  createdAt: Date;
}

/** Recording every use would be a write per request: once a minute is enough to be useful. */
const LAST_USED_RESOLUTION = "interval '1 minute'";

@Injectable()
export class ApiKeysService {
  constructor(
    @InjectRepository(ApiKey) private readonly keys: Repository<ApiKey>,
    private readonly events: ApiKeyEvents,
  ) {}

  /** Looks a key up by its SHA-256: the lookup compares hashes, never the secret itself. */
  async authenticate(key: string): Promise<AuthContext | null> {
    if (key.length > 512) return null;
    const row = await this.keys.findOne({ where: { keyHash: sha256(key) } });
    if (!row) return null;
    if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > 60_000) {
      await this.keys
        .createQueryBuilder()
        .update()
        .set({ lastUsedAt: () => 'now()' })
        .where(`id = :id AND (last_used_at IS NULL OR last_used_at < now() - ${LAST_USED_RESOLUTION})`, { id: row.id })
        .execute();
    }
    return { keyId: row.id, workspaceId: row.workspaceId, role: row.role, isAdmin: row.isAdmin };
  }

  /** Creates a key and returns it once; only its hash is kept. */
  async create(
    workspaceId: string,
    name: string,
    role: ApiKeyRole,
    opts: { key?: string; isAdmin?: boolean; repo?: Repository<ApiKey> } = {},
  ): Promise<{ row: ApiKey; key: string }> {
    const key = opts.key ?? newApiKey();
    const repo = opts.repo ?? this.keys;
    const row = await repo.save(
      repo.create({ workspaceId, name, role, keyHash: sha256(key), keyPrefix: key.slice(0, 8), isAdmin: opts.isAdmin ?? false }),
    );
    return { row, key };
  }

  async list(workspaceId: string): Promise<ApiKeyView[]> {
    const rows = await this.keys.find({ where: { workspaceId }, order: { createdAt: 'ASC', id: 'ASC' } });
    return rows.map(toView);
  }

  async get(workspaceId: string, id: string): Promise<ApiKeyView> {
    const row = await this.keys.findOne({ where: { id, workspaceId } });
    if (!row) throw notFound('API key');
    return toView(row);
  }

  async delete(auth: AuthContext, id: string): Promise<void> {
    const row = await this.keys.findOne({ where: { id, workspaceId: auth.workspaceId } });
    if (!row) throw notFound('API key');
    if (row.isAdmin) throw new AppException(HttpStatus.CONFLICT, 'CONFLICT', 'The instance admin key cannot be deleted');
    if (row.id === auth.keyId) throw new AppException(HttpStatus.CONFLICT, 'CONFLICT', 'A key cannot delete itself; use another owner key');
    await this.keys.delete({ id: row.id });
    this.events.revoked.next({ keyId: row.id });
  }

  async hasAdminKey(key: string): Promise<boolean> {
    return this.keys.exists({ where: { keyHash: sha256(key), isAdmin: true } });
  }
}

export function toView(row: ApiKey): ApiKeyView {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    prefix: row.keyPrefix,
    isAdmin: row.isAdmin,
    lastUsedAt: row.lastUsedAt,
    createdAt: row.createdAt,
  };
}
