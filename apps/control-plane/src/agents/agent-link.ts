import { AGENT_EVENTS, AgentEvents, type AgentToServerEvents, PAYLOAD_SINCE_PROTOCOL, type ServerToAgentEvents, type StartExecution } from '@app/protocol';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Namespace } from 'socket.io';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';

/** What an agent says about itself in its handshake. */
export interface AgentInfo {
  hostname: string;
  platform: string;
  agentVersion: string;
  protocolVersion: number;
  /** Who runs its scripts (absent from agents older than this field: null on the server's page). */
  runsScriptsAs: string | null;
  switchesUsers: boolean | null;
  allowRunAs: string[] | null;
}

/** What the gateway keeps on each authenticated agent socket. */
export interface AgentSocketData {
  serverId: string;
  workspaceId: string;
  agent: AgentInfo;
  /** The protocol version the agent announced in its handshake (one of SUPPORTED_PROTOCOL_VERSIONS). */
  protocolVersion: number;
  /** The hello exchange is done: the socket is in the ready room and may get work. */
  ready: boolean;
}

export type AgentNamespace = Namespace<AgentToServerEvents, ServerToAgentEvents, Record<string, never>, AgentSocketData>;

export type StartOutcome =
  | { kind: 'accepted' }
  | { kind: 'refused'; reason: string }
  /** No connected agent got it: it certainly did not run. */
  | { kind: 'nobody' }
  /** The agent is not on this node: the node that holds it must send the start (see ClusterNews.handOver). */
  | { kind: 'elsewhere' }
  /** An agent got it but did not answer in time: the next hello decides. */
  | { kind: 'no-answer' };

/** Every socket of a server's agent (normally one). */
export const serverRoom = (serverId: string) => `server:${serverId}`;
/** The socket of a server's agent once its hello is reconciled: where commands go. */
export const readyRoom = (serverId: string) => `server:${serverId}:ready`;


/**
 * Sends commands to agents through socket.io rooms rather than socket references, so with a
 * socket.io adapter (Redis, PostgreSQL) a command reaches the agent whichever node holds it.
 */
@Injectable()
export class AgentLink {
  private readonly logger = new Logger(AgentLink.name);
  private nsp: AgentNamespace | null = null;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  attach(nsp: AgentNamespace): void {
    this.nsp = nsp;
  }

  get initialised(): boolean {
    return this.nsp !== null;
  }

  /** Whether any socket of this server is connected to any node. */
  async hasAgent(serverId: string): Promise<boolean> {
    if (!this.nsp) return false;
    return (await this.nsp.in(serverRoom(serverId)).fetchSockets()).length > 0;
  }

  /** Whether a ready agent of this server is connected to this very node (no adapter round trip). */
  hasLocalReadyAgent(serverId: string): boolean {
    return (this.nsp?.adapter.rooms.get(readyRoom(serverId))?.size ?? 0) > 0;
  }

  /** Whether any socket of this server's agent (ready or still in its hello) is on this node. */
  hasLocalAgent(serverId: string): boolean {
    return (this.nsp?.adapter.rooms.get(serverRoom(serverId))?.size ?? 0) > 0;
  }

  /** Servers whose ready agent is connected to this node. */
  localReadyServers(): string[] {
    if (!this.nsp) return [];
    const ids = new Set<string>();
    for (const s of this.nsp.sockets.values()) if (s.data.ready) ids.add(s.data.serverId);
    return [...ids];
  }

  /** Agent sockets held by this node. */
  localConnections(): number {
    return this.nsp?.sockets.size ?? 0;
  }

  /** Servers with any agent socket on this node. */
  localServers(): string[] {
    if (!this.nsp) return [];
    return [...new Set([...this.nsp.sockets.values()].map((s) => s.data.serverId).filter(Boolean))];
  }

  /** Drops every socket of this server's agent, on every node, except `keepSocketId`. */
  disconnect(serverId: string, keepSocketId?: string): void {
    const sockets = this.nsp?.in(serverRoom(serverId));
    (keepSocketId ? sockets?.except(keepSocketId) : sockets)?.disconnectSockets(true);
  }

  /** Drops the agent sockets of this node only. */
  disconnectLocal(): void {
    this.nsp?.local.disconnectSockets(true);
  }

  /**
   * Sends a start to the server's agent on this node only. A start carries the script, its secrets'
   * values and the request it may pass: through the socket.io adapter it would be written, in clear,
   * to PostgreSQL's notification queue or its attachments table (or to Redis), so it never leaves
   * this process; another node holding the agent is asked to build and send it itself.
   */
  start(serverId: string, cmd: StartExecution): Promise<StartOutcome> {
    const nsp = this.nsp;
    if (!nsp) return Promise.resolve({ kind: 'nobody' });
    if (!this.hasLocalReadyAgent(serverId)) return Promise.resolve({ kind: 'elsewhere' });
    if (cmd.payload && this.readyProtocols(serverId).some((v) => v < PAYLOAD_SINCE_PROTOCOL)) {
      // The socket there now, not the version recorded for the server: an older agent may have replaced it.
      return Promise.resolve({ kind: 'refused', reason: 'this webhook passes the request to the script, but the agent of this server is too old to give it: upgrade it; nothing ran' });
    }
    return new Promise((resolve) => {
      nsp.local
        .to(readyRoom(serverId))
        .timeout(this.config.agentAckTimeoutMs)
        .emit(AgentEvents.start, cmd, (err: Error | null, replies: unknown[]) => {
          resolve(startOutcome(err, replies ?? []));
        });
    });
  }

  /** The protocol versions of this server's ready sockets on this node. */
  private readyProtocols(serverId: string): number[] {
    const ids = this.nsp?.adapter.rooms.get(readyRoom(serverId)) ?? new Set<string>();
    return [...ids].map((id) => this.nsp?.sockets.get(id)?.data.protocolVersion ?? 0);
  }

  cancel(serverId: string, executionId: string): void {
    const nsp = this.nsp;
    if (!nsp) return;
    nsp
      .to(readyRoom(serverId))
      .timeout(this.config.agentAckTimeoutMs)
      .emit(AgentEvents.cancel, { executionId }, (err: Error | null, replies: unknown[]) => {
        this.logger.log({ executionId, serverId, replies, timedOut: !!err }, 'cancel sent to the agent');
      });
  }
}

function startOutcome(err: Error | null, replies: unknown[]): StartOutcome {
  let refused: string | null = null;
  for (const reply of replies) {
    const r = AGENT_EVENTS[AgentEvents.start].reply.safeParse(reply);
    if (!r.success) refused ??= 'malformed answer to execution.start';
    else if ('error' in r.data) refused ??= `${r.data.error.code}: ${r.data.error.message.slice(0, 500)}`;
    else if (r.data.accepted) return { kind: 'accepted' };
    else refused = r.data.reason;
  }
  if (refused !== null) return { kind: 'refused', reason: refused };
  return err ? { kind: 'no-answer' } : { kind: 'nobody' };
}
