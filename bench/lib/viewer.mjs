// A dashboard viewer: socket.io on /dashboard, as the browser uses it.
import { io } from 'socket.io-client';
import { withTimeout } from './util.mjs';

/** Output bytes: base64 text (protocol 4 viewers) or binary (viewers that name no version). */
export const bytesOf = (data) => (typeof data === 'string' ? Buffer.from(data, 'base64') : Buffer.from(data));

/** Connects one viewer (its own connection) and resolves once the handshake is accepted. */
export function connectViewer(url, apiKey, timeoutMs = 15_000) {
  // Protocol 4, as the dashboard: output bytes as base64 text (one frame per message).
  const socket = io(`${url}/dashboard`, { path: '/dashboard-io/', auth: { protocolVersion: 4 }, extraHeaders: { authorization: `Bearer ${apiKey}` }, transports: ['websocket'], forceNew: true, reconnection: false, timeout: timeoutMs });
  return withTimeout(
    new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(socket));
      socket.once('connect_error', (e) => reject(new Error(`/dashboard refused the viewer: ${e.message}`)));
    }),
    timeoutMs,
    'viewer connect',
  ).catch((e) => {
    socket.close();
    throw e;
  });
}

/** execution.subscribe with ack; rejects on a refusal or no ack in time. */
export function subscribe(socket, executionId, afterSeq = -1, timeoutMs = 15_000) {
  return withTimeout(socket.timeout(timeoutMs).emitWithAck('execution.subscribe', { executionId, afterSeq }), timeoutMs + 1000, 'subscribe ack').then((r) => {
    if (!r?.ok) throw new Error(`subscribe refused: ${JSON.stringify(r)}`);
    return r;
  });
}

/**
 * Follows executions on one viewer socket like a well-behaved client: chunks in seq order, drops
 * any seq it already has, and on `execution.resubscribe` subscribes again after its last seq.
 * `onChunk` gets the chunk's bytes as a Buffer.
 */
export class Watcher {
  constructor(socket, { onChunk, onStatus, onError } = {}) {
    this.socket = socket;
    this.last = new Map();
    this.resubscribes = 0;
    this.gaps = 0;
    this.duplicates = 0;
    this.onChunk = onChunk;
    this.onError = onError ?? (() => undefined);
    socket.on('execution.output', (e) => {
      const last = this.last.get(e.executionId);
      if (last === undefined) return;
      if (e.seq <= last) return void this.duplicates++;
      if (e.seq !== last + 1) this.gaps++;
      this.last.set(e.executionId, e.seq);
      onChunk?.({ ...e, data: bytesOf(e.data) });
    });
    socket.on('execution.status', (e) => onStatus?.(e));
    socket.on('execution.resubscribe', (e) => {
      const last = this.last.get(e.executionId);
      if (last === undefined) return;
      this.resubscribes++;
      subscribe(socket, e.executionId, last).catch((err) => this.onError(err));
    });
  }

  /** Starts following an execution from its first chunk (once; later calls are ignored). */
  watch(executionId) {
    if (this.last.has(executionId)) return null;
    this.last.set(executionId, -1);
    return subscribe(this.socket, executionId, -1).catch((err) => this.onError(err));
  }

  forget(executionId) {
    this.last.delete(executionId);
  }
}
