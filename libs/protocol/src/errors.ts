import { z } from 'zod';

/**
 * Every code a refusal on `/agent` or `/dashboard` may carry, with what it means. Clients act on
 * the code, never on the message (words for a person, free to change).
 */
export const PROTOCOL_ERRORS = {
  INVALID_PAYLOAD: 'The message does not match its schema; the message names the first field at fault.',
  UNKNOWN_EXECUTION: 'No execution with this id was dispatched to this server.',
  NOT_DISPATCHED: 'The execution is queued again (its start was never acknowledged); it will be sent again.',
  CUT_OFF: 'This agent sent more than the control plane accepts; it is disconnected and may reconnect later.',
  SHUTTING_DOWN: 'The agent is stopping and takes no new work.',
  RUN_AS_NOT_ALLOWED: 'The script asks to run as a user this agent may not run scripts as (not in its `--allow-run-as`, or the agent cannot switch users); nothing ran.',
  NOT_FOUND: 'No execution with this id in the viewer’s workspace.',
  RATE_LIMITED: 'Too many requests on this connection; slow down.',
  TOO_MANY_SUBSCRIPTIONS: 'This connection already watches as many executions as it may.',
  UNAVAILABLE: 'The control plane could not do it now (database away); retry later.',
  INTERNAL_ERROR: 'An unexpected error on the control plane; retry later.',
  UNAUTHORIZED: 'Handshake: the token or API key is missing, malformed or not valid.',
  UNSUPPORTED_PROTOCOL_VERSION: 'Handshake: the agent (or viewer) speaks a protocol version the control plane does not; `supportedVersions` lists those it does.',
  WEBSOCKET_REQUIRED: 'Handshake: the namespace is served over WebSocket only.',
  TOO_MANY_CONNECTIONS: 'Handshake: this API key holds as many viewer connections as it may.',
} as const satisfies Record<string, string>;

export const PROTOCOL_ERROR_CODES = Object.keys(PROTOCOL_ERRORS) as [keyof typeof PROTOCOL_ERRORS, ...(keyof typeof PROTOCOL_ERRORS)[]];

/** A stable, upper-case refusal code. */
export const ProtocolErrorCode = z.enum(PROTOCOL_ERROR_CODES).meta({ id: 'ProtocolErrorCode' });
export type ProtocolErrorCode = z.infer<typeof ProtocolErrorCode>;

/** Longest refusal message; longer ones are cut. */
export const MAX_ERROR_MESSAGE = 2000;

/** Negative ack for a refused message: a stable code and words for a person. */
export const ErrorReply = z
  .object({ error: z.object({ code: ProtocolErrorCode, message: z.string().max(MAX_ERROR_MESSAGE) }) })
  .meta({ id: 'ErrorReply', description: 'The message was refused; nothing it asked for was done.' });
export type ErrorReply = z.infer<typeof ErrorReply>;

export function protocolError(code: ProtocolErrorCode, message: string): ErrorReply {
  return { error: { code, message: message.slice(0, MAX_ERROR_MESSAGE) } };
}

/**
 * What a refused handshake carries: socket.io's `connect_error` is an Error whose `message` is for
 * a person and whose `data` is this.
 */
export const ConnectRefusal = z
  .object({ code: ProtocolErrorCode, supportedVersions: z.array(z.number().int()).optional() })
  .meta({ id: 'ConnectRefusal' });
export type ConnectRefusal = z.infer<typeof ConnectRefusal>;

/** The `connect_error` a namespace middleware passes to `next()`. */
export function connectRefusal(code: ProtocolErrorCode, message: string, extra: Omit<ConnectRefusal, 'code'> = {}): Error & { data: ConnectRefusal } {
  return Object.assign(new Error(message), { data: { code, ...extra } });
}
