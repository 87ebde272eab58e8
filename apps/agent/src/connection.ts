import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { hostname } from 'node:os';
import { rootCertificates } from 'node:tls';
import { io, type Socket } from 'socket.io-client';
import {
  AGENT_EVENTS,
  AGENT_NAMESPACE,
  AgentEvents,
  ConnectRefusal,
  PROTOCOL_VERSION,
  type AgentReply,
  type AgentReportEvent,
  type AgentRequest,
  type AgentToServerEvents,
  type ProtocolErrorCode,
  type ServerToAgentEvents,
} from '@app/protocol';
import type { Logger } from './logger.js';

export interface ConnectionOptions {
  url: string;
  token: string;
  /** PEM CA certificates trusted in addition to the system's (a control plane behind a private CA). */
  ca?: string;
  agentVersion: string;
  logger: Logger;
  /** Who runs scripts here, told to the control plane in the handshake (shown on the server's page). */
  scriptUsers?: { runsScriptsAs: string; switchesUsers: boolean; allowRunAs: string[] };
  /** First reconnect delay and its cap; each wait is randomized by +-50%. */
  reconnectDelayMs?: number;
  reconnectDelayMaxMs?: number;
}

export interface ConnectionHandlers {
  connected(): void;
  disconnected(reason: string): void;
  /** The control plane refused this agent for good (bad token, unsupported protocol). */
  refused(message: string, code: ProtocolErrorCode): void;
  start(payload: unknown, ack: (reply: AgentReply<'execution.start'>) => void): void;
  cancel(payload: unknown, ack: (reply: AgentReply<'execution.cancel'>) => void): void;
}

type AckFn = (reply: unknown) => void;

/** Refusal codes of a `connect_error` after which retrying cannot help. */
const FINAL_REFUSALS: readonly ProtocolErrorCode[] = ['UNAUTHORIZED', 'UNSUPPORTED_PROTOCOL_VERSION'];

/** The refusal code of a `connect_error` when retrying cannot help, else null. */
export function finalRefusal(err: Error & { data?: unknown }): ProtocolErrorCode | null {
  const data = ConnectRefusal.safeParse(err.data);
  return data.success && FINAL_REFUSALS.includes(data.data.code) ? data.data.code : null;
}

/**
 * The agent's one outbound socket.io connection to `/agent`: WebSocket only, reconnects forever
 * with backoff and jitter, drops acks that arrive for an earlier connection, and checks every ack
 * against the protocol's schema.
 */
export class AgentConnection {
  private readonly socket: Socket<ServerToAgentEvents, AgentToServerEvents>;
  private readonly log: Logger;
  /** Bumped on every connect and disconnect; an ack from another epoch is ignored. */
  private epoch = 0;
  private attempts = 0;
  private reconnectTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly opts: ConnectionOptions,
    private readonly handlers: ConnectionHandlers,
  ) {
    this.log = opts.logger;
    const base = new URL(opts.url);
    const prefix = base.pathname.replace(/\/+$/, '');
    this.socket = io(`${base.origin}${AGENT_NAMESPACE}`, {
      path: `${prefix}/socket.io/`,
      transports: ['websocket'],
      autoConnect: false,
      forceNew: true,
      reconnection: true,
      reconnectionAttempts: Infinity,
      reconnectionDelay: opts.reconnectDelayMs ?? 1_000,
      reconnectionDelayMax: opts.reconnectDelayMaxMs ?? 30_000,
      randomizationFactor: 0.5,
      // Passed to the WebSocket's TLS connection: `ca` replaces Node's list, so the system roots stay in it.
      ...(opts.ca ? { ca: [...rootCertificates, opts.ca] } : {}),
      // The token goes on the upgrade request, where the control plane checks it before reading any packet.
      extraHeaders: { authorization: `Bearer ${opts.token}` },
      auth: {
        protocolVersion: PROTOCOL_VERSION,
        agentVersion: opts.agentVersion,
        hostname: hostname().slice(0, 255),
        platform: `${process.platform}-${process.arch}`,
        ...(opts.scriptUsers ?? {}),
      },
    });
    this.listen();
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  open(): void {
    this.closed = false;
    this.log.info('connecting', { url: this.opts.url });
    this.socket.connect();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.socket.disconnect();
  }

  /**
   * Sends a report and hands its reply, checked against the event's reply schema, to `onReply`.
   * False when disconnected (socket.io would buffer the emit and send it before the next hello).
   * A reply that does not match is treated as no answer: `onReply` is not called and the
   * connection is recycled, so the next hello settles whatever waited on it (as after a lost ack).
   */
  call<E extends AgentReportEvent>(event: E, payload: AgentRequest<E>, onReply: (reply: AgentReply<E>) => void): boolean {
    if (!this.socket.connected) return false;
    const epoch = this.epoch;
    const schema = AGENT_EVENTS[event].reply;
    const ack = (reply: unknown): void => {
      if (epoch !== this.epoch) return this.log.debug('ignored an ack from an earlier connection', { event });
      const parsed = schema.safeParse(reply);
      if (!parsed.success) return this.invalidReply(event, parsed.error.issues[0]?.message);
      // The backoff starts over once the control plane answers as it should, not merely on connect:
      // one that accepts the connection and then answers nonsense gets ever longer pauses.
      this.attempts = 0;
      onReply(parsed.data as AgentReply<E>);
    };
    // The payload is typed by the table; the ack is checked above rather than trusted.
    (this.socket as unknown as { emit(event: string, payload: unknown, ack: AckFn): unknown }).emit(event, payload, ack);
    return true;
  }

  private invalidReply(event: string, issue: string | undefined): void {
    this.log.error('the control plane sent a reply that does not match the protocol; reconnecting', { event, issue });
    this.socket.disconnect();
    this.scheduleReconnect();
  }

  private listen(): void {
    const s = this.socket;
    s.on('connect', () => {
      this.epoch += 1;
      this.log.info('connected', { url: this.opts.url });
      this.safely('connect', () => this.handlers.connected());
    });
    s.on('disconnect', (reason) => {
      this.epoch += 1;
      s.sendBuffer = [];
      if (this.closed) return;
      this.log.warn('disconnected', { reason });
      this.safely('disconnect', () => this.handlers.disconnected(reason));
      // socket.io reconnects by itself except when the server closed the socket on purpose.
      if (reason === 'io server disconnect') this.scheduleReconnect();
    });
    s.on('connect_error', (err) => {
      if (this.closed) return;
      const refusal = finalRefusal(err);
      if (refusal) {
        this.log.error('control plane refused this agent', { reason: err.message, code: refusal });
        this.safely('refused', () => this.handlers.refused(err.message, refusal));
        return;
      }
      const failure = connectFailure(err);
      this.log.warn('cannot connect', { error: err.message, ...failure });
      // Refused on the upgrade request (400): socket.io only says "websocket error", so ask once
      // more by hand and read why; a refused token is final, as a refused handshake is.
      if (failure.reason && /Unexpected server response: 400/.test(failure.reason)) {
        void this.upgradeRefusal().then((why) => {
          if (this.closed || !why || !/unauthorized/i.test(why)) return;
          this.log.error('control plane refused this agent', { reason: why, code: 'UNAUTHORIZED' });
          s.disconnect();
          this.safely('refused', () => this.handlers.refused('unauthorized', 'UNAUTHORIZED'));
        });
      }
      // Not `active`: refused by a server middleware (not a network error), so no automatic retry.
      if (!s.active) this.scheduleReconnect();
    });
    s.on(AgentEvents.start, (payload: unknown, ack?: unknown) =>
      this.safely('start', () => this.handlers.start(payload, replyFn(ack))),
    );
    s.on(AgentEvents.cancel, (payload: unknown, ack?: unknown) =>
      this.safely('cancel', () => this.handlers.cancel(payload, replyFn(ack))),
    );
  }

  /** The body of the control plane's answer to an upgrade request like socket.io's (its refusal reason), or null. */
  private upgradeRefusal(): Promise<string | null> {
    const base = new URL(this.opts.url);
    const url = new URL(`${base.pathname.replace(/\/+$/, '')}/socket.io/?EIO=4&transport=websocket`, base.origin);
    const client = url.protocol === 'https:' ? https : http;
    return new Promise((resolve) => {
      const req = client.request(
        url,
        {
          headers: {
            authorization: `Bearer ${this.opts.token}`,
            connection: 'Upgrade',
            upgrade: 'websocket',
            'sec-websocket-version': '13',
            'sec-websocket-key': randomBytes(16).toString('base64'),
          },
          timeout: 10_000,
          ...(this.opts.ca ? { ca: [...rootCertificates, this.opts.ca] } : {}),
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d.slice(0, 4096 - body.length)));
          res.on('end', () => resolve(res.statusCode === 400 ? body : null));
          res.on('error', () => resolve(null));
        },
      );
      // Accepted after all (a 101): nothing to report; the socket is not used.
      req.on('upgrade', (_res, socket) => {
        socket.destroy();
        resolve(null);
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(null));
      req.end();
    });
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const first = this.opts.reconnectDelayMs ?? 1_000;
    const cap = this.opts.reconnectDelayMaxMs ?? 30_000;
    const wait = Math.min(cap, first * 2 ** this.attempts++) * (0.5 + Math.random());
    this.log.info('reconnecting', { inMs: Math.round(wait) });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.closed && !this.socket.connected) this.socket.connect();
    }, wait);
  }

  /** A handler bug or a malformed message must never take the agent down. */
  private safely(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error('handler failed', { event: what, err });
    }
  }
}

/**
 * What lies under socket.io's bare "websocket error": the TLS or network error of the attempt
 * (`unable to verify the first certificate`, `SELF_SIGNED_CERT_IN_CHAIN`, `ECONNREFUSED`), which is
 * what an operator needs to fix it.
 */
export function connectFailure(err: Error): { reason?: string; code?: string; hint?: string } {
  const description: unknown = (err as Error & { description?: unknown }).description;
  const cause = errorOf(description) ?? errorOf((description as { error?: unknown } | undefined)?.error);
  if (!cause) return {};
  const code = typeof cause.code === 'string' ? cause.code : undefined;
  const tls = code !== undefined && (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code) || code.startsWith('ERR_TLS'));
  // The control plane checks the token on the upgrade request and answers a refusal there (400).
  const refused = /Unexpected server response: 40[013]/.test(cause.message);
  const hint = tls
    ? 'the control plane certificate is not trusted: give its CA with --ca-file <pem> (or DEVPILOT_CA_FILE)'
    : refused
      ? 'the control plane refused the connection: check the agent token (--token, --token-file), or install the agent it serves at /agent/devpilot-agent.cjs'
      : undefined;
  return { reason: cause.message, ...(code ? { code } : {}), ...(hint ? { hint } : {}) };
}

function errorOf(value: unknown): (Error & { code?: unknown }) | undefined {
  return value instanceof Error ? value : undefined;
}

function replyFn(ack: unknown): AckFn {
  return typeof ack === 'function' ? (reply) => (ack as AckFn)(reply) : () => undefined;
}
