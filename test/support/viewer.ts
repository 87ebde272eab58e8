import {
  DASHBOARD_NAMESPACE,
  DASHBOARD_IO_PATH,
  DashboardEvents,
  type ExecutionOutputEvent,
  type ExecutionStatusEvent,
  isTerminal,
  PROTOCOL_VERSION,
  type ServerToViewerEvents,
  type SubscribeReply,
  type ViewerToServerEvents,
} from '@app/protocol';
import { io, type Socket } from 'socket.io-client';
import { waitFor } from './processes.js';

export type ViewerClientSocket = Socket<ServerToViewerEvents, ViewerToServerEvents>;

/** A dashboard viewer at the protocol level: a socket.io client on /dashboard that records everything. */
export class ViewerClient {
  /** Every event received, in order, by name. */
  readonly events: { event: string; payload: unknown }[] = [];
  readonly output = new Map<string, ExecutionOutputEvent[]>();
  readonly statuses = new Map<string, ExecutionStatusEvent[]>();

  private constructor(readonly socket: ViewerClientSocket) {
    socket.onAny((event: string, payload: unknown) => {
      this.events.push({ event, payload });
      if (event === DashboardEvents.output) {
        const e = payload as ExecutionOutputEvent;
        const list = this.output.get(e.executionId) ?? [];
        // Base64 text for a viewer of protocol 4 and later, binary for the others.
        list.push({ ...e, data: typeof e.data === 'string' ? Buffer.from(e.data, 'base64') : Buffer.from(e.data) });
        this.output.set(e.executionId, list);
      } else if (event === DashboardEvents.status) {
        const e = payload as ExecutionStatusEvent;
        this.statuses.set(e.executionId, [...(this.statuses.get(e.executionId) ?? []), e]);
      }
    });
  }

  /** Connects (a new connection each time) with an API key in the upgrade's Authorization header; rejects with the connect_error. */
  static connect(url: string, apiKey: unknown, transports: ('websocket' | 'polling')[] = ['websocket']): Promise<ViewerClient> {
    return ViewerClient.connectWith(url, { headers: typeof apiKey === 'string' ? { authorization: `Bearer ${apiKey}` } : {}, transports });
  }

  /**
   * Connects as a browser does: a one-time ticket in the upgrade URL (and any headers, e.g. Origin).
   * `auth` is the handshake's: the dashboard's by default (this protocol version); `{}` is a
   * viewer that names no version.
   */
  static async connectWith(
    url: string,
    opts: { ticket?: string; headers?: Record<string, string>; transports?: ('websocket' | 'polling')[]; auth?: Record<string, unknown> },
  ): Promise<ViewerClient> {
    const socket: ViewerClientSocket = io(`${url}${DASHBOARD_NAMESPACE}`, {
      path: DASHBOARD_IO_PATH,
      auth: opts.auth ?? { protocolVersion: PROTOCOL_VERSION },
      extraHeaders: opts.headers ?? {},
      query: opts.ticket === undefined ? {} : { ticket: opts.ticket },
      transports: opts.transports ?? ['websocket'],
      forceNew: true,
      reconnection: false,
    });
    const viewer = new ViewerClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', (err) => {
        socket.close();
        reject(err);
      });
    });
    return viewer;
  }

  subscribe(executionId: unknown, afterSeq?: number): Promise<SubscribeReply> {
    return this.socket.timeout(20_000).emitWithAck(DashboardEvents.subscribe, { executionId, afterSeq } as never);
  }

  /** Seqs received for an execution, in arrival order. */
  seqs(executionId: string): number[] {
    return (this.output.get(executionId) ?? []).map((e) => e.seq);
  }

  bytes(executionId: string): Buffer {
    return Buffer.concat((this.output.get(executionId) ?? []).map((e) => Buffer.from(e.data)));
  }

  /** The highest seq held with no gap before it (what a resubscribe continues after). */
  lastContiguous(executionId: string): number {
    const have = new Set(this.seqs(executionId));
    let last = -1;
    while (have.has(last + 1)) last++;
    return last;
  }

  terminalStatus(executionId: string): ExecutionStatusEvent | undefined {
    return this.statuses.get(executionId)?.find((s) => isTerminal(s.status));
  }

  waitTerminal(executionId: string, timeoutMs = 30_000): Promise<ExecutionStatusEvent> {
    return waitFor(`terminal status of ${executionId}`, () => this.terminalStatus(executionId), timeoutMs);
  }

  close(): void {
    this.socket.close();
  }
}
