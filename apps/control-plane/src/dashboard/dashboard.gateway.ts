import { DASHBOARD_NAMESPACE, DashboardEvents, MAX_MESSAGE_BYTES, type SubscribeReply } from '@app/protocol';
import { Logger } from '@nestjs/common';
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
import { DashboardFeed } from './dashboard-feed.service.js';
import { type ViewerNamespace, type ViewerSocket, workspaceRoom } from './viewer.js';

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
@WebSocketGateway({ namespace: DASHBOARD_NAMESPACE, transports: ['websocket', 'polling'], maxHttpBufferSize: MAX_MESSAGE_BYTES })
export class DashboardGateway implements OnGatewayInit, OnGatewayConnection, OnGatewayDisconnect {
  private readonly logger = new Logger(DashboardGateway.name);

  constructor(
    private readonly apiKeys: ApiKeysService,
    private readonly feed: DashboardFeed,
  ) {}

  afterInit(nsp: ViewerNamespace): void {
    nsp.use((socket, next) => {
      const apiKey = (socket.handshake.auth as { apiKey?: unknown } | undefined)?.apiKey;
      if (typeof apiKey !== 'string' || apiKey.length === 0) return next(new Error('unauthorized'));
      this.apiKeys.authenticate(apiKey).then(
        (auth) => {
          if (!auth) return next(new Error('unauthorized'));
          socket.data = { workspaceId: auth.workspaceId, keyId: auth.keyId, role: auth.role };
          next();
        },
        (err: unknown) => {
          this.logger.error({ err }, 'viewer handshake failed');
          next(new Error('the control plane could not check the key; retry later'));
        },
      );
    });
    this.feed.attach(nsp);
  }

  handleConnection(socket: ViewerSocket): void {
    const { workspaceId } = socket.data ?? {};
    if (!workspaceId) return void socket.disconnect(true);
    void socket.join(workspaceRoom(workspaceId));
    this.feed.connected(socket);
  }

  handleDisconnect(socket: ViewerSocket): void {
    this.feed.disconnected(socket);
  }

  @SubscribeMessage(DashboardEvents.subscribe)
  onSubscribe(@ConnectedSocket() socket: ViewerSocket, @MessageBody() payload: unknown, @Ack() ack: unknown): void {
    const reply = (r: SubscribeReply) => {
      if (typeof ack === 'function') ack(r);
    };
    this.feed.subscribe(socket, payload).then(reply, (err: unknown) => {
      this.logger.error({ err, socketId: socket.id }, 'subscribe failed');
      reply({ ok: false, error: { code: 'INTERNAL_ERROR', message: 'The feed could not subscribe; retry' } });
    });
  }

  @SubscribeMessage(DashboardEvents.unsubscribe)
  onUnsubscribe(@ConnectedSocket() socket: ViewerSocket, @MessageBody() payload: unknown, @Ack() ack: unknown): void {
    const r = this.feed.unsubscribe(socket, payload);
    if (typeof ack === 'function') ack(r);
  }
}
