import {
  DashboardEvents,
  type ExecutionStatusEvent,
  type ServerToViewerEvents,
  VIEWER_TEXT_OUTPUT_MAX_BYTES,
  type ViewerToServerEvents,
} from '@app/protocol';
import type { Namespace, Socket } from 'socket.io';
import type { StoredChunk } from '../executions/execution-output.service.js';
import type { ApiKeyRole } from '../workspaces/api-key.entity.js';

/** What the gateway keeps on each authenticated viewer socket. */
export interface ViewerSocketData {
  workspaceId: string;
  keyId: string;
  role: ApiKeyRole;
  /** Protocol 4 or later: output bytes go as base64 text (one frame per message), else as a binary attachment. */
  textOutput: boolean;
}

export type ViewerSocket = Socket<ViewerToServerEvents, ServerToViewerEvents, Record<string, never>, ViewerSocketData>;
export type ViewerNamespace = Namespace<ViewerToServerEvents, ServerToViewerEvents, Record<string, never>, ViewerSocketData>;

/** Every viewer socket of a workspace: statuses, new executions and server presence go here. */
export const workspaceRoom = (workspaceId: string) => `workspace:${workspaceId}`;
/** Every socket of one API key: closed together when the key is deleted. */
export const keyRoom = (keyId: string) => `key:${keyId}`;

/**
 * Output bytes a viewer may have waiting in its socket before it counts as behind. An agent batch
 * (up to 8 MiB) is fanned out within one tick, before the socket can flush, so this must hold
 * more than one batch or a fast viewer would look slow.
 */
export const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** Packets waiting in the socket (an output event is one for a text viewer, two for a binary one: the header and its bytes). */
export const MAX_QUEUED_PACKETS = 4096;
/** At most this many executions watched at once per socket. */
export const MAX_SUBSCRIPTIONS = 50;
/** Subscribe requests: a burst of this many, refilled at SUBSCRIBE_REFILL_PER_SECOND. */
const SUBSCRIBE_BURST = 20;
const SUBSCRIBE_REFILL_PER_SECOND = 5;

/**
 * One viewer socket and what it has queued. Writes never wait: emit only appends to the socket's
 * buffer. What is buffered is counted (bytes emitted since the engine last handed its buffer to
 * the transport), so a viewer that does not read is noticed and dropped from its subscriptions
 * instead of making the process hold its output without limit.
 */
export class Viewer {
  private queuedBytes = 0;
  private tokens = SUBSCRIBE_BURST;
  private refilledAt = Date.now();
  private readonly drainWaiters = new Set<() => void>();

  constructor(readonly socket: ViewerSocket) {
    // The engine emits 'drain' when it hands its write buffer to the transport; while the
    // transport is still busy (a viewer that does not read), packets pile up in the buffer.
    socket.conn.on('drain', () => {
      this.queuedBytes = 0;
      for (const wake of [...this.drainWaiters]) wake();
    });
  }

  get id(): string {
    return this.socket.id;
  }

  get workspaceId(): string {
    return this.socket.data.workspaceId;
  }

  /** More is waiting in this socket than a viewer that keeps up would ever have. */
  get behind(): boolean {
    const packets = (this.socket.conn as unknown as { writeBuffer?: unknown[] }).writeBuffer?.length ?? 0;
    return this.queuedBytes > MAX_QUEUED_BYTES || packets > MAX_QUEUED_PACKETS;
  }

  /** Output bytes as base64 text (protocol 4 viewers, chunks up to VIEWER_TEXT_OUTPUT_MAX_BYTES) or binary. */
  get textOutput(): boolean {
    return this.socket.data.textOutput;
  }

  sendOutput(executionId: string, c: StoredChunk): void {
    const data = this.textOutput && c.data.length <= VIEWER_TEXT_OUTPUT_MAX_BYTES ? c.data.toString('base64') : c.data;
    this.socket.emit(DashboardEvents.output, { executionId, seq: c.seq, stream: c.stream, data });
    this.queued(data.length);
  }

  /** Counts output bytes (as sent: base64 text is longer) sent to this socket by a broadcast. */
  queued(bytes: number): void {
    this.queuedBytes += bytes;
  }

  sendStatus(e: ExecutionStatusEvent): void {
    this.socket.emit(DashboardEvents.status, e);
  }

  sendResubscribe(executionId: string, reason: string): void {
    this.socket.emit(DashboardEvents.resubscribe, { executionId, reason });
  }

  /** Resolves true once the viewer is no longer behind, false after `timeoutMs` or a disconnect. */
  async waitUntilCaughtUp(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.behind) {
      const left = deadline - Date.now();
      if (left <= 0 || this.socket.disconnected) return false;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.drainWaiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(left, 1000));
        this.drainWaiters.add(wake);
      });
    }
    return this.socket.connected;
  }

  /** Takes one subscribe token; false when the viewer asks faster than the refill rate. */
  takeSubscribeToken(): boolean {
    const now = Date.now();
    this.tokens = Math.min(SUBSCRIBE_BURST, this.tokens + ((now - this.refilledAt) / 1000) * SUBSCRIBE_REFILL_PER_SECOND);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Wakes anything waiting on this viewer (it disconnected). */
  release(): void {
    for (const wake of [...this.drainWaiters]) wake();
  }
}
