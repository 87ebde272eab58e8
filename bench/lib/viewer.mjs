// A dashboard viewer: socket.io on /dashboard, as the browser uses it.
import { io } from 'socket.io-client';
import { withTimeout } from './util.mjs';

/** Connects one viewer (its own connection) and resolves once the handshake is accepted. */
export function connectViewer(url, apiKey, timeoutMs = 15_000) {
  const socket = io(`${url}/dashboard`, { auth: { apiKey }, transports: ['websocket'], forceNew: true, reconnection: false, timeout: timeoutMs });
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
