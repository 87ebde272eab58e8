import { HttpStatus, Inject, Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, QueryFailedError, Repository } from 'typeorm';
import { AppException, notFound } from '../common/app-exception.js';
import { newestFirst, type Page, toPage } from '../common/pagination.js';
import { newAgentToken, sha256 } from '../common/tokens.js';
import { reserveWorkspaceSlot } from '../common/workspace-limits.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ServerEvents } from './server-events.js';
import { Server } from './server.entity.js';
import { deleteWithRuns } from '../executions/run-deletion.js';

export interface ServerView {
  id: string;
  name: string;
  status: Server['status'];
  lastSeenAt: Date | null;
  hostname: string | null;
  platform: string | null;
  agentVersion: string | null;
  /** Who runs scripts, as its agent said when it last connected (null: never connected, or an older agent). */
  runsScriptsAs: string | null;
  /** False: the agent runs scripts as itself (it cannot switch users). */
  switchesUsers: boolean | null;
  /** The users a script's runAs may name on this server. */
  allowRunAs: string[] | null;
  installCommand: string;
  createdAt: Date;
}

@Injectable()
export class ServersService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectRepository(Server) private readonly servers: Repository<Server>,
    @InjectDataSource() private readonly db: DataSource,
    private readonly events: ServerEvents,
  ) {}

  /** Creates a server; its agent token is returned this once and kept only as a hash. */
  async create(workspaceId: string, name: string): Promise<ServerView & { agentToken: string }> {
    const token = newAgentToken();
    const row = await this.servers.manager
      .transaction(async (tx) => {
        await reserveWorkspaceSlot(tx, this.config, workspaceId, 'servers');
        const repo = tx.getRepository(Server);
        return repo.save(repo.create({ workspaceId, name, agentTokenHash: sha256(token) }));
      })
      .catch(uniqueName);
    return { ...this.toView(row, token), agentToken: token };
  }

  async list(workspaceId: string, limit = 50, cursor?: string): Promise<Page<ServerView>> {
    const qb = this.servers
      .createQueryBuilder('s')
      .where('s.workspace_id = :workspaceId', { workspaceId });
    newestFirst(qb, 's', cursor, limit);
    return toPage(await qb.getMany(), limit, (s) => ({ at: s.createdAt, id: s.id }), (s) => this.toView(s));
  }

  async get(workspaceId: string, id: string): Promise<ServerView> {
    return this.toView(await this.find(workspaceId, id));
  }

  async find(workspaceId: string, id: string): Promise<Server> {
    const row = await this.servers.findOne({ where: { id, workspaceId } });
    if (!row) throw notFound('Server');
    return row;
  }

  async rename(workspaceId: string, id: string, name: string): Promise<ServerView> {
    const row = await this.find(workspaceId, id);
    row.name = name;
    return this.toView(await this.servers.save(row).catch(uniqueName));
  }

  async delete(workspaceId: string, id: string): Promise<void> {
    if (!(await deleteWithRuns(this.db, 'server', workspaceId, id))) throw notFound('Server');
    this.events.tokenRevoked.next({ serverId: id });
  }

  /** A new agent token, returned once; the old one stops working and its connection is dropped. */
  async rotateToken(workspaceId: string, id: string): Promise<ServerView & { agentToken: string }> {
    const row = await this.find(workspaceId, id);
    const token = newAgentToken();
    await this.servers.update({ id: row.id }, { agentTokenHash: sha256(token) });
    this.events.tokenRevoked.next({ serverId: row.id });
    return { ...this.toView(row, token), agentToken: token };
  }

  /** The server an agent token belongs to, looked up by its hash. */
  async findByAgentToken(token: string): Promise<Server | null> {
    return this.servers.findOne({ where: { agentTokenHash: sha256(token) } });
  }

  installCommand(token?: string): string {
    const url = this.config.publicUrl;
    return `curl -fsSL ${url}/agent/install.sh | sudo sh -s -- --url ${url} --token ${token ?? '<agent token>'}`;
  }

  toView(s: Server, token?: string): ServerView {
    return {
      id: s.id,
      name: s.name,
      status: s.status,
      lastSeenAt: s.lastSeenAt,
      hostname: s.hostname,
      platform: s.platform,
      agentVersion: s.agentVersion,
      runsScriptsAs: s.runsScriptsAs,
      switchesUsers: s.switchesUsers,
      allowRunAs: s.allowRunAs,
      installCommand: this.installCommand(token),
      createdAt: s.createdAt,
    };
  }
}

function uniqueName(e: unknown): never {
  if (e instanceof QueryFailedError && (e.driverError as { code?: string }).code === '23505') {
    throw new AppException(HttpStatus.CONFLICT, 'CONFLICT', 'A server with this name already exists in the workspace');
  }
  throw e;
}
