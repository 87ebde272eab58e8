import { type BeforeApplicationShutdown, Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { promisify } from 'node:util';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ServersService } from '../servers/servers.service.js';
import { Server } from '../servers/server.entity.js';
import { WorkspacesService } from '../workspaces/workspaces.service.js';
import { installRoot } from './agent-files.js';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';

export const LOCAL_SERVER_NAME = 'local';
/** The unprivileged user the local agent runs scripts as when the control plane runs as root. */
export const SCRIPT_USER = 'devpilot-run';
/** Files of the data directory a script must never read. */
const SECRET_FILES = ['master.key', 'admin-api-key', 'postgres-password'];
const execFileAsync = promisify(execFile);
const MAX_BACKOFF_MS = 30_000;
/** A run this long resets the restart backoff. */
const STABLE_MS = 60_000;
const STOP_WAIT_MS = 15_000;

/**
 * With DEVPILOT_LOCAL_AGENT=true (what `npm start` sets), runs an agent for this machine as the
 * server `local` of the bootstrap workspace: a new user can run a script on the first try. The
 * token is rotated at each start (only its hash is stored) and handed over on a pipe (fd 3),
 * never in the environment or on the command line; the agent gets none of the control plane's
 * environment. As root, the agent runs scripts as `devpilot-run` (created when missing), which
 * cannot read the data directory's secret files. Restarted with backoff if it dies; stopped
 * before the database.
 * Meant for one machine: several control planes with this on would each rotate the token.
 */
@Injectable()
export class LocalAgentService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(LocalAgentService.name);
  private child: ChildProcess | null = null;
  private stopping = false;
  private backoffMs = 1_000;
  private restartTimer?: NodeJS.Timeout;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly adapterHost: HttpAdapterHost,
    private readonly servers: ServersService,
    private readonly workspaces: WorkspacesService,
    @InjectRepository(Server) private readonly serverRows: Repository<Server>,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.localAgent) return;
    const http = this.adapterHost.httpAdapter.getHttpServer() as HttpServer;
    // Started once the port listens (and every bootstrap hook, the workspace's included, ran).
    const go = () => void this.launch(http);
    if (http.listening) go();
    else http.once('listening', go);
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.logger.log({ pid: child.pid }, 'stopping the local agent');
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_WAIT_MS);
    await exited;
    clearTimeout(timer);
  }

  private agentPath(): string | null {
    const file = path.join(installRoot(), 'dist/agent/devpilot-agent.cjs');
    return existsSync(file) ? file : null;
  }

  private async launch(http: HttpServer): Promise<void> {
    if (this.stopping) return;
    const bundle = this.agentPath();
    if (!bundle) {
      this.logger.warn('DEVPILOT_LOCAL_AGENT is on but the agent is not built (npm run build:agent): no local agent');
      return;
    }
    let token: string;
    try {
      await this.prepareScriptUser();
      token = await this.localServerToken();
    } catch (err) {
      this.logger.error({ err }, 'could not prepare the local server; retrying');
      return this.scheduleRestart(http);
    }
    const port = (http.address() as AddressInfo).port;
    const host = ['0.0.0.0', '::', ''].includes(this.config.host) ? '127.0.0.1' : this.config.host;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    const env: NodeJS.ProcessEnv = { DEVPILOT_URL: url, DEVPILOT_AGENT_TOKEN_FD: '3', DEVPILOT_AGENT_SHUTDOWN_GRACE_MS: '5000' };
    for (const name of ['PATH', 'HOME', 'LANG'] as const) if (process.env[name]) env[name] = process.env[name];
    const child = spawn(process.execPath, [bundle], { env, stdio: ['ignore', 'inherit', 'inherit', 'pipe'] });
    const tokenPipe = child.stdio[3] as Writable | null;
    // The agent closes its end once it has read the token; a late error there says nothing.
    tokenPipe?.on('error', (err) => this.logger.debug({ err }, 'local agent token pipe'));
    tokenPipe?.end(token);
    this.child = child;
    const startedAt = Date.now();
    this.logger.log({ pid: child.pid, url }, `local agent started as server "${LOCAL_SERVER_NAME}"`);
    child.once('error', (err) => this.logger.error({ err }, 'local agent failed to start'));
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      if (this.stopping) return;
      if (Date.now() - startedAt > STABLE_MS) this.backoffMs = 1_000;
      this.logger.warn({ code, signal, restartInMs: this.backoffMs }, 'local agent exited; restarting');
      this.scheduleRestart(http);
    });
  }

  private scheduleRestart(http: HttpServer): void {
    if (this.stopping) return;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    this.restartTimer = setTimeout(() => void this.launch(http), wait);
    this.restartTimer.unref();
  }

  /**
   * As root the agent can switch users, so its scripts run as `devpilot-run`: created when missing
   * (a system user with its own home and no login shell), and the secret files of the data
   * directory are made unreadable by anybody but their owner, whatever mode an older version or
   * a hand-made file left them with.
   */
  private async prepareScriptUser(): Promise<void> {
    if (process.getuid?.() !== 0) return;
    const exists = await execFileAsync('id', ['-u', SCRIPT_USER]).then(
      () => true,
      () => false,
    );
    if (!exists) {
      await execFileAsync('useradd', ['--system', '--user-group', '--create-home', '--home-dir', `/var/lib/${SCRIPT_USER}`, '--shell', '/usr/sbin/nologin', SCRIPT_USER]);
      this.logger.log({ user: SCRIPT_USER }, 'created the OS user the local agent runs scripts as');
    }
    for (const name of SECRET_FILES) {
      const file = path.join(this.config.dataDir, name);
      const mode = await stat(file).then((st) => st.mode & 0o777, () => null);
      if (mode !== null && mode & 0o077) {
        await chmod(file, mode & 0o700);
        this.logger.warn({ file, mode: mode.toString(8) }, 'a secret file of the data directory was readable by other users: made it 0600');
      }
    }
  }

  /** Ensures the server `local` exists in the bootstrap workspace and gives it a fresh token. */
  private async localServerToken(): Promise<string> {
    const workspaceId = await this.workspaces.bootstrapWorkspaceId();
    const existing = await this.serverRows.findOne({ where: { workspaceId, name: LOCAL_SERVER_NAME } });
    if (existing) return (await this.servers.rotateToken(workspaceId, existing.id)).agentToken;
    try {
      return (await this.servers.create(workspaceId, LOCAL_SERVER_NAME)).agentToken;
    } catch {
      // Created meanwhile (another start): rotate that one.
      const row = await this.serverRows.findOneOrFail({ where: { workspaceId, name: LOCAL_SERVER_NAME } });
      return (await this.servers.rotateToken(workspaceId, row.id)).agentToken;
    }
  }
}
