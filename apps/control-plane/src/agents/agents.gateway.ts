import {
  AGENT_EVENTS,
  AGENT_IO_PATH,
  AGENT_NAMESPACE,
  AgentEvents,
  AgentHandshake,
  type AgentHello,
  type AgentReply,
  type AgentReportEvent,
  type AgentRequest,
  connectRefusal,
  type ErrorReply,
  MAX_MESSAGE_BYTES,
  parseMessage,
  protocolError,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@app/protocol';
import { type BeforeApplicationShutdown, Logger, type OnModuleDestroy } from '@nestjs/common';
import { type OnGatewayConnection, type OnGatewayDisconnect, type OnGatewayInit, WebSocketGateway } from '@nestjs/websockets';
import type { IncomingMessage } from 'node:http';
import { inspect } from 'node:util';
import type { Subscription } from 'rxjs';
import type { Socket } from 'socket.io';
import { attachCredential, bearerOf, credentialOf, HandshakeGates } from '../common/handshake-gates.js';
import { safeEqual, sha256 } from '../common/tokens.js';
import { Semaphore } from '../dashboard/semaphore.js';
import { ExecutionEvents } from '../executions/execution-events.js';
import { ServerEvents } from '../servers/server-events.js';
import { ServersService } from '../servers/servers.service.js';
import { AgentLink, type AgentNamespace, type AgentSocketData, readyRoom, serverRoom } from './agent-link.js';
import { AgentPresence } from './agent-presence.js';
import { AgentReports } from './agent-reports.service.js';
import { Dispatcher } from './dispatcher.js';
import { InflightBudget, type Reader } from './inflight-budget.js';

type AgentSocket = Socket<Record<string, never>, Record<string, never>, Record<string, never>, AgentSocketData>;

const SUPPORTED = SUPPORTED_PROTOCOL_VERSIONS.join(', ');
/** Token lookups at the upgrade at once, and how many may wait before new ones are refused at once. */
const HANDSHAKE_LOOKUPS = 4;
const MAX_WAITING_LOOKUPS = 1000;
/** What an agent without the upgrade credential (older than protocol 3, or not an agent) is told. */
export const AGENT_UPGRADE_REFUSAL =
  'unauthorized: send Authorization: Bearer <agent token> on the WebSocket upgrade (agents older than protocol 3 must be upgraded: rerun the install command of the server page)';

/**
 * The `/agent` namespace: token and protocol version checked at the handshake, one live connection
 * per server (a newer one replaces the older), every report validated and acknowledged.
 */
@WebSocketGateway({ namespace: AGENT_NAMESPACE, path: AGENT_IO_PATH, transports: ['websocket'], maxHttpBufferSize: MAX_MESSAGE_BYTES })
export class AgentsGateway implements OnGatewayInit, OnGatewayConnection, OnGatewayDisconnect, OnModuleDestroy, BeforeApplicationShutdown {
  private readonly logger = new Logger(AgentsGateway.name);
  private revoked?: Subscription;
  private cancels?: Subscription;
  /** Token lookups at the upgrade, a few at once: a flood of bad tokens waits here, not in the database pool. */
  private readonly lookups = new Semaphore(HANDSHAKE_LOOKUPS);
  private waitingLookups = 0;
  /** Agents' messages received and not yet answered, for the whole process. */
  private readonly inflight = new InflightBudget();

  constructor(
    private readonly servers: ServersService,
    private readonly serverEvents: ServerEvents,
    private readonly executionEvents: ExecutionEvents,
    private readonly link: AgentLink,
    private readonly presence: AgentPresence,
    private readonly reports: AgentReports,
    private readonly dispatcher: Dispatcher,
    gates: HandshakeGates,
  ) {
    gates.register(AGENT_IO_PATH, (req) => this.checkUpgrade(req));
  }

  /** The agent token on the upgrade request (before any packet is read): null when accepted. */
  private async checkUpgrade(req: IncomingMessage): Promise<string | null> {
    const token = bearerOf(req);
    if (!token) return AGENT_UPGRADE_REFUSAL;
    if (this.waitingLookups >= MAX_WAITING_LOOKUPS) return 'busy; retry later';
    this.waitingLookups++;
    try {
      const server = await this.lookups.run(() => this.servers.findByAgentToken(token));
      if (!server) return 'unauthorized';
      attachCredential(req, { kind: 'agent', serverId: server.id, workspaceId: server.workspaceId, tokenHash: sha256(token) });
      return null;
    } finally {
      this.waitingLookups--;
    }
  }

  afterInit(nsp: AgentNamespace): void {
    nsp.use((socket, next) => next(this.authenticate(socket as unknown as AgentSocket) ?? undefined));
    this.link.attach(nsp);
    this.revoked = this.serverEvents.tokenRevoked.subscribe(({ serverId }) => {
      this.logger.log({ serverId }, 'agent token revoked: dropping its connection');
      this.link.disconnect(serverId);
    });
    this.cancels = this.executionEvents.cancelRequested.subscribe(({ executionId, serverId }) => this.link.cancel(serverId, executionId));
  }

  onModuleDestroy(): void {
    this.revoked?.unsubscribe();
    this.cancels?.unsubscribe();
  }

  /** Shutting down: this node's agents go (they reconnect, here later or to another node), their servers offline meanwhile. */
  async beforeApplicationShutdown(): Promise<void> {
    const servers = this.link.localServers();
    this.link.disconnectLocal();
    await Promise.all(
      servers.map((serverId) => this.presence.disconnected(serverId).catch((err: unknown) => this.logger.warn({ err, serverId }, 'could not mark the server offline'))),
    );
  }

  /** Null when the agent may connect; else the error its `connect_error` carries. */
  private authenticate(socket: AgentSocket): Error | null {
    // The server may allow long-polling for other namespaces; agents must use WebSocket only.
    if (socket.conn.transport.name !== 'websocket') return connectRefusal('WEBSOCKET_REQUIRED', 'websocket transport required');
    const auth: unknown = socket.handshake.auth;
    const version = (auth as { protocolVersion?: unknown } | null)?.protocolVersion;
    if (typeof version !== 'number' || !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      return connectRefusal('UNSUPPORTED_PROTOCOL_VERSION', `unsupported protocol version ${String(version)}; supported: ${SUPPORTED}`, {
        supportedVersions: [...SUPPORTED_PROTOCOL_VERSIONS],
      });
    }
    const parsed = AgentHandshake.safeParse(auth);
    if (!parsed.success) return connectRefusal('UNAUTHORIZED', 'unauthorized');
    // The server is the one whose token came on the upgrade; a token in `auth` (protocol 1 and 2) must be the same.
    const credential = credentialOf(socket.request);
    if (credential?.kind !== 'agent') return connectRefusal('UNAUTHORIZED', 'unauthorized');
    const server = { id: credential.serverId, workspaceId: credential.workspaceId };
    if (parsed.data.token !== undefined && !safeEqual(sha256(parsed.data.token), credential.tokenHash)) return connectRefusal('UNAUTHORIZED', 'unauthorized');
    const { hostname, platform, agentVersion, protocolVersion, runsScriptsAs, switchesUsers, allowRunAs } = parsed.data;
    const agent = { hostname, platform, agentVersion, protocolVersion, runsScriptsAs: runsScriptsAs ?? null, switchesUsers: switchesUsers ?? null, allowRunAs: allowRunAs ?? null };
    socket.data = { serverId: server.id, workspaceId: server.workspaceId, agent, protocolVersion, ready: false };
    return null;
  }

  async handleConnection(socket: AgentSocket): Promise<void> {
    const { serverId, agent: info } = socket.data;
    if (!serverId) return void socket.disconnect(true);
    this.listen(socket);
    // A newer connection replaces the older, on whichever node it is. It joins first, so the older
    // one's close finds it live and never marks the server offline in between.
    await socket.join(serverRoom(serverId));
    this.link.disconnect(serverId, socket.id);
    this.logger.log({ serverId, socketId: socket.id, agentVersion: info.agentVersion }, 'agent connected');
    await this.presence.connected(serverId, info).catch((err: unknown) => this.logger.error({ err, serverId }, 'could not mark the server online'));
  }

  async handleDisconnect(socket: AgentSocket): Promise<void> {
    const { serverId } = socket.data ?? {};
    if (!serverId) return;
    await this.presence.disconnected(serverId).catch((err: unknown) => this.logger.error({ err, serverId }, 'could not mark the server offline'));
  }

  /**
   * The agent's reports are plain socket.io listeners, not @SubscribeMessage handlers: the protocol
   * schemas are their validation, and the HTTP API's global pipes (class-validator DTO rules) must
   * not judge a wire payload. Registered synchronously, before anything the agent sends is read.
   */
  private listen(socket: AgentSocket): void {
    // Every message counts, whatever its event and shape, until it is answered.
    const gate = this.inflight.gate(() => wsOf(socket));
    socket.once('disconnect', () => {
      gate.close();
      // A connection that is not being read would never see the close handshake's answer: drop it at once.
      if (gate.isPaused) wsOf(socket)?.terminate();
    });
    const { serverId } = socket.data;
    /**
     * One report event: its payload parsed with the event's schema, then the handler; a malformed
     * payload gets the INVALID_PAYLOAD refusal (counted against the agent), never the handler.
     */
    const on = <E extends AgentReportEvent>(event: E, handle: (payload: AgentRequest<E>) => Promise<AgentReply<E> | undefined>) => {
      const schema = AGENT_EVENTS[event].request;
      // Every report's reply schema includes the refusal (ErrorReply); spelled out for the compiler.
      type Reply = AgentReply<E> | ErrorReply;
      socket.on(event as string, (...args: unknown[]) => {
        const ack = typeof args[args.length - 1] === 'function' ? (args.pop() as (reply: Reply) => void) : null;
        // One payload argument; anything else is malformed and refused by the schema.
        const payload = args.length === 1 ? args[0] : args;
        const bytes = gate.enter(payload);
        void this.guarded<Reply>(socket, event, () => {
          const parsed = parseMessage(schema, payload);
          return parsed.ok ? handle(parsed.value as AgentRequest<E>) : this.reports.refuseMalformed(serverId, parsed.error);
        }).then((reply) => {
          gate.leave(bytes);
          if (reply !== undefined && ack) ack(reply);
        });
      });
    };
    socket.on('disconnect', (reason, description) =>
      this.logger.log({ serverId, socketId: socket.id, reason, description: describeCause(description) }, 'agent disconnected'),
    );
    // One handler per report event of the table: a report added to the table and not handled here does not compile.
    const handlers: { [E in AgentReportEvent]: (payload: AgentRequest<E>) => Promise<AgentReply<E> | undefined> } = {
      [AgentEvents.hello]: (hello) => this.onHello(socket, hello),
      [AgentEvents.output]: (batch) => this.reports.storeOutput(serverId, batch),
      [AgentEvents.finished]: (report) => this.reports.finished(serverId, report),
      [AgentEvents.spawned]: (report) => this.reports.spawned(serverId, report),
    };
    const register = <E extends AgentReportEvent>(event: E) => on(event, handlers[event]);
    for (const event of Object.keys(handlers) as AgentReportEvent[]) register(event);
    // An event no handler takes is dropped at once, but it is a refusal like a malformed one.
    socket.onAny((event: unknown) => {
      if (typeof event === 'string' && Object.hasOwn(handlers, event)) return;
      void this.reports.refuseMalformed(serverId, protocolError('INVALID_PAYLOAD', `unknown event ${String(event).slice(0, 64)}`));
    });
  }

  private async onHello(socket: AgentSocket, hello: AgentHello): Promise<AgentReply<'agent.hello'> | undefined> {
    const { serverId } = socket.data;
    const outcome = await this.reports.hello(serverId, hello);
    if ('error' in outcome.reply) return outcome.reply;
    if (!socket.connected) return undefined;
    socket.data.ready = true;
    await socket.join(readyRoom(serverId));
    setImmediate(() => {
      for (const id of outcome.cancel) this.link.cancel(serverId, id);
      this.dispatcher.dispatchQueued(serverId).catch((err: unknown) => this.logger.error({ err, serverId }, 'dispatch after hello failed'));
    });
    return outcome.reply;
  }

  /**
   * A report that could not be handled for a reason of ours (the database is away) is not
   * answered: the connection is dropped instead, and the agent resends everything unacked after
   * its next hello. Refusing it would make the agent give up on it.
   */
  private async guarded<R extends object>(socket: AgentSocket, event: string, fn: () => Promise<R | undefined>): Promise<R | undefined> {
    try {
      const reply = await fn();
      if (reply && 'error' in reply) {
        this.logger.warn({ serverId: socket.data.serverId, event, error: reply.error }, 'refused an agent message');
      }
      return reply;
    } catch (err) {
      this.logger.error({ err, serverId: socket.data.serverId, event }, 'could not handle an agent message; dropping the connection');
      socket.disconnect(true);
      return undefined;
    }
  }
}

function describeCause(description: unknown): string | undefined {
  if (description instanceof Error) return description.message;
  const d = (description as { description?: unknown; context?: unknown } | undefined)?.description;
  return d instanceof Error ? d.message : d === undefined ? undefined : typeof d === 'string' ? d : inspect(d);
}

/** The `ws` WebSocket under engine.io's websocket transport (pause/resume stop and restart reading). */
function wsOf(socket: AgentSocket): (Reader & { terminate(): void }) | undefined {
  const ws = (socket.conn.transport as unknown as { socket?: { pause?: unknown; resume?: unknown; terminate?: unknown } }).socket;
  return ws && typeof ws.pause === 'function' && typeof ws.resume === 'function' && typeof ws.terminate === 'function'
    ? (ws as Reader & { terminate(): void })
    : undefined;
}
