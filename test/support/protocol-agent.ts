import { AGENT_NAMESPACE, AgentEvents, type AgentHello, PROTOCOL_VERSION, type StartExecution } from '@app/protocol';
import { io, type Socket } from 'socket.io-client';
import { waitFor } from './processes.js';

export type StartAnswer = { accepted: true } | { accepted: false; reason: string } | 'no-answer';

export interface ProtocolAgentOptions {
  protocolVersion?: unknown;
  /** Sent right after connecting; false: no hello (the socket never becomes ready for work). */
  hello?: AgentHello | false;
  /** How to answer execution.start (default: accept). */
  onStart?: (cmd: StartExecution) => StartAnswer;
  /**
   * Protocol 2: report `execution.spawned` right after accepting a start, as a real agent with a
   * free slot does (default: when the protocol version is 2 or more). False: the test sends it.
   */
  spawned?: boolean;
  auth?: Record<string, unknown>;
}

/**
 * A protocol-level agent made of a bare socket.io client: it sends exactly what the test tells it
 * to, malformed messages included, so the gateway's checks can be tested on their own.
 */
export class ProtocolAgent {
  readonly starts: StartExecution[] = [];
  readonly cancels: string[] = [];
  /** Replies to the spawned reports sent on its own. */
  readonly spawnedReplies: unknown[] = [];
  helloReply: unknown;
  disconnectReason: string | null = null;

  private constructor(
    readonly socket: Socket,
    opts: ProtocolAgentOptions,
  ) {
    socket.on(AgentEvents.start, (cmd: StartExecution, ack?: (r: unknown) => void) => {
      this.starts.push(cmd);
      const answer = opts.onStart?.(cmd) ?? { accepted: true };
      if (answer !== 'no-answer') ack?.(answer);
      const version = opts.protocolVersion ?? PROTOCOL_VERSION;
      if (answer !== 'no-answer' && answer.accepted && (opts.spawned ?? (typeof version === 'number' && version >= 2))) {
        void this.spawned(cmd.executionId).then((r) => this.spawnedReplies.push(r), (err: Error) => this.spawnedReplies.push(err.message));
      }
    });
    socket.on(AgentEvents.cancel, (cmd: { executionId: string }, ack?: (r: unknown) => void) => {
      this.cancels.push(cmd.executionId);
      ack?.({ ok: true });
    });
    socket.on('disconnect', (reason) => {
      this.disconnectReason = reason;
    });
  }

  /** The token (if any) goes where protocol 3 sends it, the upgrade's Authorization header, and stays in `auth` as v1 and v2 sent it. */
  static socket(url: string, auth: Record<string, unknown>, transports: string[] = ['websocket']): Socket {
    const extraHeaders: Record<string, string> = typeof auth.token === 'string' ? { authorization: `Bearer ${auth.token}` } : {};
    return io(`${url}${AGENT_NAMESPACE}`, { transports, reconnection: false, forceNew: true, auth, extraHeaders });
  }

  /** Connects (and says hello unless told not to); rejects with the connect_error. */
  static async connect(url: string, token: string, opts: ProtocolAgentOptions = {}): Promise<ProtocolAgent> {
    const socket = ProtocolAgent.socket(url, {
      token,
      protocolVersion: opts.protocolVersion ?? PROTOCOL_VERSION,
      agentVersion: 'fake-1.0',
      hostname: 'fake-host',
      platform: 'linux-x64',
      ...opts.auth,
    });
    const agent = new ProtocolAgent(socket, opts);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', (err) => {
        socket.close();
        reject(err);
      });
    });
    if (opts.hello !== false) agent.helloReply = await agent.request(AgentEvents.hello, opts.hello ?? { running: [], finished: [] });
    return agent;
  }

  /** Why the connection was refused. */
  static async refusal(url: string, auth: Record<string, unknown>, transports?: string[]): Promise<string> {
    return (await ProtocolAgent.refused(url, auth, transports)).message;
  }

  /** The refused connection's `connect_error`: words for a person, and `data` with its code. */
  static async refused(url: string, auth: Record<string, unknown>, transports?: string[]): Promise<{ message: string; data: unknown }> {
    const socket = ProtocolAgent.socket(url, auth, transports);
    try {
      return await new Promise((resolve, reject) => {
        socket.once('connect', () => reject(new Error('connected, expected a refusal')));
        socket.once('connect_error', (err: Error & { data?: unknown }) => resolve({ message: err.message, data: err.data }));
      });
    } finally {
      socket.close();
    }
  }

  /** Emits with an ack and resolves with the reply (rejects after 10 s without one). */
  request(event: string, ...args: unknown[]): Promise<any> {
    return this.socket.timeout(10_000).emitWithAck(event, ...args);
  }

  output(executionId: string, chunks: { seq: number; stream: 'stdout' | 'stderr'; data: Buffer | string }[]): Promise<any> {
    return this.request(AgentEvents.output, {
      executionId,
      chunks: chunks.map((c) => ({ ...c, data: typeof c.data === 'string' ? Buffer.from(c.data) : c.data })),
    });
  }

  finished(executionId: string, lastSeq: number, over: Record<string, unknown> = {}): Promise<any> {
    return this.request(AgentEvents.finished, {
      executionId,
      exitCode: 0,
      signal: null,
      timedOut: false,
      cancelled: false,
      lastSeq,
      outputBytes: 0,
      truncated: false,
      error: null,
      ...over,
    });
  }

  /** Protocol 2: the execution's process was spawned. */
  spawned(executionId: string): Promise<any> {
    return this.request(AgentEvents.spawned, { executionId });
  }

  async waitForStart(executionId?: string, timeoutMs = 10_000): Promise<StartExecution> {
    return waitFor(
      `execution.start${executionId ? ` of ${executionId}` : ''}`,
      () => (executionId ? this.starts.find((s) => s.executionId === executionId) : this.starts[0]),
      timeoutMs,
    );
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  close(): void {
    this.socket.close();
  }
}
