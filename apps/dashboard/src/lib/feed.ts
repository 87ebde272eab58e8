import { io, type Socket } from 'socket.io-client';
import { DASHBOARD_NAMESPACE } from '@app/protocol/constants.js';
import type { ServerToViewerEvents, ViewerToServerEvents } from '@app/protocol/events.js';

export type FeedSocket = Socket<ServerToViewerEvents, ViewerToServerEvents>;
export type FeedState = 'connecting' | 'live' | 'offline' | 'refused';

/** The one /dashboard socket of a signed-in session: live statuses, new executions, output. */
export class DashboardFeed {
  readonly socket: FeedSocket;
  private state: FeedState = 'connecting';
  private readonly listeners = new Set<(s: FeedState) => void>();

  constructor(apiKey: string) {
    this.socket = io(DASHBOARD_NAMESPACE, { auth: { apiKey }, transports: ['websocket'] });
    this.socket.on('connect', () => this.set('live'));
    this.socket.on('disconnect', () => this.set('offline'));
    this.socket.on('connect_error', (err) => this.set(/unauthori[sz]ed/i.test(err.message) ? 'refused' : 'offline'));
  }

  get current(): FeedState {
    return this.state;
  }

  onState(fn: (s: FeedState) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  close(): void {
    this.socket.removeAllListeners();
    this.socket.disconnect();
    this.listeners.clear();
  }

  private set(s: FeedState): void {
    this.state = s;
    for (const fn of this.listeners) fn(s);
  }
}
