import { connectRefusal, DASHBOARD_NAMESPACE, DashboardEvents, MAX_MESSAGE_BYTES, protocolError, type SubscribeReply } from '@app/protocol';
import { Logger, type OnModuleDestroy } from '@nestjs/common';
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
import { ApiKeysService } from '../workspaces/api-keys.service.js';
import { LiveConnections } from '../metrics/live-connections.js';
import { ApiKeyEvents } from '../workspaces/api-key-events.js';
import { KeyConnections } from '../workspaces/key-connections.js';
import type { Subscription } from 'rxjs';
import { ClusterNews } from '../executions/cluster-news.js';
import { DashboardFeed } from './dashboard-feed.service.js';
import { Semaphore } from './semaphore.js';
import { keyRoom, type ViewerNamespace, type ViewerSocket, workspaceRoom } from './viewer.js';

/**
 * The `/dashboard` namespace: viewers (browsers) authenticate with an API key at the handshake
 * and see only their workspace.
 *
 * The socket.io server is shared by every gateway and takes its engine options from whichever
 * gateway is created first, so these repeat the agents' message limit. Long-polling (for browsers
 * behind proxies that do not pass WebSocket) is asked for here, but while the `/agent` gateway is
 * created first its WebSocket-only setting applies to every namespace; the dashboard connects
 * over WebSocket. Allowing both at the engine is safe: `/agent` refuses polling in its middleware.
 */
const HANDSHAKE_LOOKUPS = 4;
/** Past this many handshakes waiting for a lookup, new ones are refused at once. */
const MAX_WAITING_LOOKUPS = 1000;

@WebSocketGateway({ namespace: DASHBOARD_NAMESPACE, transports: ['websocket', 'polling'], maxHttpBufferSize: MAX_MESSAGE_BYTES })
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
  ) {}
  private revoked?: Subscription;

  afterInit(nsp: ViewerNamespace): void {
    nsp.use((socket, next) => {
      const apiKey = (socket.handshake.auth as { apiKey?: unknown } | undefined)?.apiKey;
      if (typeof apiKey !== 'string' || apiKey.length === 0 || apiKey.length > 512) return next(connectRefusal('UNAUTHORIZED', 'unauthorized'));
      if (this.waitingLookups >= MAX_WAITING_LOOKUPS) return next(connectRefusal('UNAVAILABLE', 'busy; retry later'));
      this.waitingLookups++;
      this.lookups
        .run(() => this.apiKeys.authenticate(apiKey))
        .finally(() => this.waitingLookups--)
        .then(async (auth) => ({ auth, placed: auth ? await this.holdPlace(auth.keyId, socket) : false }))
        .then(
          ({ auth, placed }) => {
            if (!auth) return next(connectRefusal('UNAUTHORIZED', 'unauthorized'));
            if (!placed) return next(connectRefusal('TOO_MANY_CONNECTIONS', 'too many connections for this API key'));
            socket.data = { workspaceId: auth.workspaceId, keyId: auth.keyId, role: auth.role };
            next();
          },
          (err: unknown) => {
            this.logger.error({ err }, 'viewer handshake failed');
            next(connectRefusal('UNAVAILABLE', 'the control plane could not check the key; retry later'));
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
