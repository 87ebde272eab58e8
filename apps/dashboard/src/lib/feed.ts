import { io, type Socket } from 'socket.io-client';
import { DASHBOARD_NAMESPACE } from '@app/protocol/constants.js';
import type { ConnectRefusal } from '@app/protocol/errors.js';
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
    // The refusal's code, never its words: a bad key is final, anything else is worth a retry.
    this.socket.on('connect_error', (err: Error & { data?: Partial<ConnectRefusal> }) => this.set(err.data?.code === 'UNAUTHORIZED' ? 'refused' : 'offline'));
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
