import { io, type Socket } from 'socket.io-client';
import { DASHBOARD_IO_PATH, DASHBOARD_NAMESPACE, PROTOCOL_VERSION } from '@app/protocol/constants.js';
import type { ConnectRefusal } from '@app/protocol/errors.js';
import type { ServerToViewerEvents, ViewerToServerEvents } from '@app/protocol/events.js';

export type FeedSocket = Socket<ServerToViewerEvents, ViewerToServerEvents>;
export type FeedState = 'connecting' | 'live' | 'offline' | 'refused';

/** A ticket for one connection attempt; rejects with `{status: 401}` when the API key is no longer valid. */
export type TicketSource = () => Promise<string>;

const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 30_000;

/**
 * The one /dashboard socket of a signed-in session: live statuses, new executions, output. Each
 * connection attempt opens with a fresh one-time ticket (POST /api/v1/feed-tickets) in the upgrade
 * URL rather than the API key: a ticket is single-use and short-lived, so socket.io's own
 * reconnection (which would resend a used one) is replaced by ours.
 */
export class DashboardFeed {
  readonly socket: FeedSocket;
  private state: FeedState = 'connecting';
  private readonly listeners = new Set<(s: FeedState) => void>();
  private attempts = 0;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private closed = false;

  constructor(private readonly ticket: TicketSource) {
    // Protocol 4: output bytes come as base64 text, one WebSocket frame per message (chunks over 16 KiB stay binary).
    this.socket = io(DASHBOARD_NAMESPACE, {
      path: DASHBOARD_IO_PATH,
      transports: ['websocket'],
      autoConnect: false,
      reconnection: false,
      auth: { protocolVersion: PROTOCOL_VERSION },
    });
    this.socket.on('connect', () => {
      this.attempts = 0;
      this.set('live');
    });
    this.socket.on('disconnect', (reason) => {
      this.set('offline');
      if (reason !== 'io client disconnect') this.retry();
    });
    // The refusal's code, never its words: a bad key is final, anything else is worth a retry.
    this.socket.on('connect_error', (err: Error & { data?: Partial<ConnectRefusal> }) => {
      if (err.data?.code === 'UNAUTHORIZED') return this.set('refused');
      this.set('offline');
      this.retry();
    });
    void this.open();
  }

  get current(): FeedState {
    return this.state;
  }

  onState(fn: (s: FeedState) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.socket.removeAllListeners();
    this.socket.disconnect();
    this.listeners.clear();
  }

  private async open(): Promise<void> {
    let ticket: string;
    try {
      ticket = await this.ticket();
    } catch (err) {
      if (this.closed) return;
      if ((err as { status?: unknown }).status === 401) return this.set('refused');
      this.set('offline');
      return this.retry();
    }
    if (this.closed) return;
    this.socket.io.opts.query = { ticket };
    this.socket.connect();
  }

  private retry(): void {
    if (this.closed) return;
    clearTimeout(this.retryTimer);
    const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.attempts++);
    this.retryTimer = setTimeout(() => void this.open(), base * (0.5 + Math.random()));
  }

  private set(s: FeedState): void {
    this.state = s;
    for (const fn of this.listeners) fn(s);
  }
}
