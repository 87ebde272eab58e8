import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { rows } from '../executions/sql.js';
import { ServerEvents } from '../servers/server-events.js';
import type { ServerStatus } from '../servers/server.entity.js';
import { type AgentInfo, AgentLink } from './agent-link.js';

/** A server no node has refreshed for this long has no agent connected (its node died): offline. */
const MIN_STALE_MS = 60_000;

/**
 * Keeps server.status / last_seen_at / agent facts current. Works across nodes: every node
 * refreshes last_seen_at of the servers whose agent it holds, and any node turns a server nobody
 * refreshed into `offline`.
 */
@Injectable()
export class AgentPresence {
  private readonly logger = new Logger(AgentPresence.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectDataSource() private readonly db: DataSource,
    private readonly link: AgentLink,
    private readonly events: ServerEvents,
  ) {}

  async connected(serverId: string, info: AgentInfo): Promise<void> {
    await this.set(serverId, 'online', [info.hostname, info.platform, info.agentVersion, info.protocolVersion, info.runsScriptsAs, info.switchesUsers, info.allowRunAs]);
  }

  /**
   * A socket of this server closed. Another may already be live (a newer connection replaced this
   * one, and its own `connected` may even have been written first): only without one is the server
   * offline, and the check after the write repairs the race where the newer one arrived in between.
   */
  async disconnected(serverId: string): Promise<void> {
    if (await this.link.hasAgent(serverId)) return this.settled(serverId, 'online', false);
    await this.set(serverId, 'offline');
    const back = await this.link.hasAgent(serverId);
    if (back) await this.set(serverId, 'online');
    this.settled(serverId, back ? 'online' : 'offline', true);
  }

  /** Says how a closed connection left its server, once nothing more is written for it. */
  private settled(serverId: string, status: ServerStatus, markedOffline: boolean): void {
    this.logger.log({ serverId, status, markedOffline }, 'agent connection closed: server status settled');
  }

  async heartbeat(): Promise<void> {
    const local = this.link.localServers();
    if (local.length) {
      await this.db.query(`UPDATE server SET last_seen_at = now() WHERE id = ANY($1::uuid[])`, [local]);
    }
    const staleMs = Math.max(MIN_STALE_MS, 3 * this.config.sweepIntervalMs);
    const stale = await rows<{ id: string; workspace_id: string }>(
      this.db,
      `UPDATE server SET status = 'offline', updated_at = now()
       WHERE status = 'online' AND (last_seen_at IS NULL OR last_seen_at < now() - make_interval(secs => $1))
         AND NOT (id = ANY($2::uuid[]))
       RETURNING id, workspace_id`,
      [staleMs / 1000, local],
    );
    for (const s of stale) {
      this.logger.log({ serverId: s.id }, 'no node refreshed this server: offline');
      this.events.statusChanged.next({ serverId: s.id, workspaceId: s.workspace_id, status: 'offline' });
    }
  }

  private async set(
    serverId: string,
    status: ServerStatus,
    info?: [string, string, string, number, string | null, boolean | null, string[] | null],
  ): Promise<void> {
    const params: unknown[] = [serverId, status];
    let extra = '';
    if (info) {
      params.push(...info);
      extra =
        ', hostname = $3, platform = $4, agent_version = $5, agent_protocol_version = $6, runs_scripts_as = $7, switches_users = $8, allow_run_as = $9::text[]';
    }
    const [row] = await rows<{ workspace_id: string }>(
      this.db,
      `UPDATE server SET status = $2, last_seen_at = now(), updated_at = now()${extra} WHERE id = $1 RETURNING workspace_id`,
      params,
    );
    if (row) this.events.statusChanged.next({ serverId, workspaceId: row.workspace_id, status });
  }
}
