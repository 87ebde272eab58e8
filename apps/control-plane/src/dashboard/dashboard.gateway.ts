import {
  connectRefusal,
  DASHBOARD_IO_PATH,
  DASHBOARD_NAMESPACE,
  DashboardEvents,
  MAX_VIEWER_MESSAGE_BYTES,
  protocolError,
  type SubscribeReply,
  SUPPORTED_PROTOCOL_VERSIONS,
  VIEWER_TEXT_OUTPUT_SINCE,
  ViewerHandshake,
} from '@app/protocol';
import { Inject, Logger, type OnModuleDestroy } from '@nestjs/common';
import {
  Ack,
  ConnectedSocket,
  MessageBody,
  type OnGatewayConnection,
  type OnGatewayDisconnect,
  type OnGatewayInit,
  SubscribeMessage,
  WebSocketGateway,
} from '@nestjs/websockets';
import type { IncomingMessage } from 'node:http';
import { attachCredential, bearerOf, credentialOf, HandshakeGates } from '../common/handshake-gates.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ApiKeysService } from '../workspaces/api-keys.service.js';
import { FeedTickets } from '../workspaces/feed-tickets.service.js';
import { LiveConnections } from '../metrics/live-connections.js';
import { ApiKeyEvents } from '../workspaces/api-key-events.js';
import { KeyConnections } from '../workspaces/key-connections.js';
import type { Subscription } from 'rxjs';
import { ClusterNews } from '../executions/cluster-news.js';
import { DashboardFeed } from './dashboard-feed.service.js';
import { Semaphore } from './semaphore.js';
import { keyRoom, type ViewerNamespace, type ViewerSocket, workspaceRoom } from './viewer.js';

/**
 * The `/dashboard` namespace, on its own engine path (`/dashboard-io/`, a small message limit):
 * viewers see only their workspace. The credential comes with the upgrade request and is checked
 * before any packet is read: `Authorization: Bearer <api key>` (third-party viewers), or
 * `?ticket=` from POST /api/v1/feed-tickets (browsers, which cannot set headers on a WebSocket).
 * A browser page (it sends Origin) must come from the public URL, the request's own host or a
 * configured origin.
 */
const HANDSHAKE_LOOKUPS = 4;
/** Past this many handshakes waiting for a lookup, new ones are refused at once. */
const MAX_WAITING_LOOKUPS = 1000;

@WebSocketGateway({ namespace: DASHBOARD_NAMESPACE, path: DASHBOARD_IO_PATH, transports: ['websocket', 'polling'], maxHttpBufferSize: MAX_VIEWER_MESSAGE_BYTES })
export class DashboardGateway implements OnGatewayInit, OnGatewayConnection, OnGatewayDisconnect, OnModuleDestroy {
  private readonly logger = new Logger(DashboardGateway.name);
  /**
   * Key lookups at the handshake, at most a few at once: a flood of connections (bad keys or
   * good) waits here instead of taking the database pool from the triggers and the agents.
   */
  private readonly lookups = new Semaphore(HANDSHAKE_LOOKUPS);
  private waitingLookups = 0;

  constructor(
    private readonly apiKeys: ApiKeysService,
    private readonly feed: DashboardFeed,
    private readonly live: LiveConnections,
    private readonly keyEvents: ApiKeyEvents,
    private readonly connections: KeyConnections,
    private readonly news: ClusterNews,
    private readonly tickets: FeedTickets,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    gates: HandshakeGates,
  ) {
    gates.register(DASHBOARD_IO_PATH, (req) => this.checkUpgrade(req));
  }
  private revoked?: Subscription;

  /** The viewer's credential on the upgrade request, before any packet is read: null when accepted. */
  private async checkUpgrade(req: IncomingMessage): Promise<string | null> {
    if (!this.originAllowed(req)) return 'origin not allowed';
    const apiKey = bearerOf(req);
    const ticket = apiKey ? null : new URL(req.url ?? '/', 'http://localhost').searchParams.get('ticket');
    if (!apiKey && !ticket) return 'unauthorized: send Authorization: Bearer <api key>, or ?ticket= from POST /api/v1/feed-tickets';
    if (this.waitingLookups >= MAX_WAITING_LOOKUPS) return 'busy; retry later';
    this.waitingLookups++;
    try {
      const auth = await this.lookups.run(() => (apiKey ? this.apiKeys.authenticate(apiKey) : this.tickets.redeem(ticket!)));
      if (!auth) return 'unauthorized';
      attachCredential(req, { kind: 'viewer', keyId: auth.keyId, workspaceId: auth.workspaceId, role: auth.role });
      return null;
    } finally {
      this.waitingLookups--;
    }
  }

  /** Clients without Origin (not browsers) pass; a browser page only from the public URL, its own host or a configured origin. */
  private originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    if (this.config.allowedOrigins.includes(origin)) return true;
    try {
      return new URL(origin).host === req.headers.host;
    } catch {
      return false;
    }
  }

  afterInit(nsp: ViewerNamespace): void {
    nsp.use((socket, next) => {
      const auth = credentialOf(socket.request);
      if (auth?.kind !== 'viewer') return next(connectRefusal('UNAUTHORIZED', 'unauthorized'));
      const hello = ViewerHandshake.safeParse(socket.handshake.auth ?? {});
      const version = hello.success ? hello.data.protocolVersion : undefined;
      if (!hello.success || (version !== undefined && !SUPPORTED_PROTOCOL_VERSIONS.includes(version))) {
        const said = (socket.handshake.auth as { protocolVersion?: unknown } | undefined)?.protocolVersion;
        return next(
          connectRefusal('UNSUPPORTED_PROTOCOL_VERSION', `unsupported protocol version ${JSON.stringify(said) ?? 'undefined'}; supported: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')}`, {
            supportedVersions: [...SUPPORTED_PROTOCOL_VERSIONS],
          }),
        );
      }
      this.holdPlace(auth.keyId, socket).then(
        (placed) => {
          if (!placed) return next(connectRefusal('TOO_MANY_CONNECTIONS', 'too many connections for this API key'));
          socket.data = { workspaceId: auth.workspaceId, keyId: auth.keyId, role: auth.role, textOutput: version !== undefined && version >= VIEWER_TEXT_OUTPUT_SINCE };
          next();
        },
        (err: unknown) => {
          this.logger.error({ err }, 'viewer handshake failed');
          next(connectRefusal('UNAVAILABLE', 'the control plane could not count the connections of this key; retry later'));
        },
      );
    });
    this.feed.attach(nsp);
    this.news.attach(nsp as unknown as Parameters<ClusterNews['attach']>[0]);
    // A deleted key's sockets go at once, on whichever node holds them (a room per key).
    this.revoked = this.keyEvents.revoked.subscribe(({ keyId }) => nsp.in(keyRoom(keyId)).disconnectSockets(true));
  }

  onModuleDestroy(): void {
    this.revoked?.unsubscribe();
  }

  /**
   * Takes one of the key's places for this socket until it (or its underlying connection, if the
   * client left before the handshake completed) closes. False when the key has none left.
   */
  private async holdPlace(keyId: string, socket: ViewerSocket): Promise<boolean> {
    const release = await this.connections.hold(keyId, () => socket.disconnect(true));
    if (!release) return false;
    socket.once('disconnect', release);
    socket.conn.once('close', release);
    return true;
  }

  handleConnection(socket: ViewerSocket): void {
    const { workspaceId } = socket.data ?? {};
    if (!workspaceId) return void socket.disconnect(true);
    void socket.join([workspaceRoom(workspaceId), keyRoom(socket.data.keyId)]);
    this.live.viewers++;
    socket.once('disconnect', () => this.live.viewers--);
    this.feed.connected(socket);
  }

  handleDisconnect(socket: ViewerSocket): void {
    this.feed.disconnected(socket);
  }

  @SubscribeMessage(DashboardEvents.subscribe)
  onSubscribe(@ConnectedSocket() socket: ViewerSocket, @MessageBody() payload: unknown, @Ack() ack: unknown): void {
    const reply = (r: SubscribeReply) => {
      if (typeof ack === 'function') (ack as (reply: typeof r) => void)(r);
    };
    this.feed.subscribe(socket, payload).then(reply, (err: unknown) => {
      this.logger.error({ err, socketId: socket.id }, 'subscribe failed');
      reply({ ok: false, ...protocolError('INTERNAL_ERROR', 'The feed could not subscribe; retry') });
    });
  }

  @SubscribeMessage(DashboardEvents.unsubscribe)
  onUnsubscribe(@ConnectedSocket() socket: ViewerSocket, @MessageBody() payload: unknown, @Ack() ack: unknown): void {
    const r = this.feed.unsubscribe(socket, payload);
    if (typeof ack === 'function') (ack as (reply: typeof r) => void)(r);
  }
}
