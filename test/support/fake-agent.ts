import {
  AGENT_NAMESPACE,
  AgentEvents,
  type AgentToServerEvents,
  type ExecutionFinished,
  MAX_CHUNKS_PER_BATCH,
  type OutputAck,
  type OutputStream,
  PROTOCOL_VERSION,
  type ServerToAgentEvents,
  type StartExecution,
} from '@app/protocol';
import { io, type Socket } from 'socket.io-client';
import { waitFor } from './processes.js';


/**
 * An agent at the protocol level, driven by the test: it accepts every `execution.start`, reports
 * it spawned at once (protocol 2), and sends exactly the output and `finished` reports the test
 * asks for.
 */
export class FakeAgent {
  readonly started: StartExecution[] = [];
  private nextSeq = new Map<string, number>();

  private constructor(readonly socket: Socket<ServerToAgentEvents, AgentToServerEvents>) {
    socket.on(AgentEvents.start, (cmd, ack) => {
      this.started.push(cmd);
      ack({ accepted: true });
      socket.emit(AgentEvents.spawned, { executionId: cmd.executionId }, (reply) => {
        if ('error' in reply) this.spawnRefusals.push(`${reply.error.code} ${reply.error.message}`);
      });
    });
    socket.on(AgentEvents.cancel, (_cmd, ack) => ack({ ok: true }));
    socket.on('disconnect', (reason, details) => {
      this.disconnectReason = `${reason} ${details instanceof Error ? details.message : JSON.stringify(details ?? '')}`;
    });
  }

  /** Refused spawned reports (none expected). */
  readonly spawnRefusals: string[] = [];

  /** Why the connection ended, if it did (shown when a report fails). */
  disconnectReason: string | null = null;

  /** `protocolVersion`: what it announces (an older agent's, to see what an old agent is sent). */
  static async connect(url: string, token: string, protocolVersion = PROTOCOL_VERSION): Promise<FakeAgent> {
    const socket: Socket<ServerToAgentEvents, AgentToServerEvents> = io(`${url}${AGENT_NAMESPACE}`, {
      transports: ['websocket'],
      reconnection: false,
      extraHeaders: { authorization: `Bearer ${token}` },
      auth: { protocolVersion, agentVersion: 'fake-1', hostname: 'fake-host', platform: 'linux' },
    });
    const agent = new FakeAgent(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    const reply = await socket.timeout(10_000).emitWithAck(AgentEvents.hello, { running: [], finished: [] });
    if ('error' in reply) throw new Error(`hello refused: ${reply.error.message}`);
    return agent;
  }

  /** Waits until the control plane sent `execution.start` for this id. */
  async waitStarted(executionId: string): Promise<StartExecution> {
    return waitFor(`execution.start of ${executionId}`, () => this.started.find((s) => s.executionId === executionId));
  }

  /** Sends chunks (consecutive seqs from where this execution is) in full batches and waits for the acks. */
  async output(executionId: string, chunks: { stream?: OutputStream; data: Buffer | string }[]): Promise<number> {
    let acked = -1;
    for (let i = 0; i < chunks.length; i += MAX_CHUNKS_PER_BATCH) acked = await this.batch(executionId, chunks.slice(i, i + MAX_CHUNKS_PER_BATCH));
    return acked;
  }

  /** One `execution.output` message as given. */
  async batch(executionId: string, chunks: { stream?: OutputStream; data: Buffer | string }[]): Promise<number> {
    let seq = this.nextSeq.get(executionId) ?? 0;
    const batch = chunks.map((c) => ({
      seq: seq++,
      stream: c.stream ?? 'stdout',
      data: (typeof c.data === 'string' ? Buffer.from(c.data) : c.data) as Uint8Array<ArrayBuffer>,
    }));
    const ack: OutputAck = await this.socket
      .timeout(20_000)
      .emitWithAck(AgentEvents.output, { executionId, chunks: batch })
      .catch((err: Error) => {
        throw new Error(`${err.message} (${this.disconnectReason ?? 'connected'})`);
      });
    if ('error' in ack) throw new Error(`output refused: ${ack.error.code} ${ack.error.message}`);
    this.nextSeq.set(executionId, seq);
    return ack.ackedSeq;
  }

  async finish(executionId: string, exitCode = 0, outputBytes = 0): Promise<void> {
    const msg: ExecutionFinished = {
      executionId,
      exitCode,
      signal: null,
      timedOut: false,
      cancelled: false,
      lastSeq: (this.nextSeq.get(executionId) ?? 0) - 1,
      outputBytes,
      truncated: false,
      error: null,
    };
    const reply = await this.socket.timeout(20_000).emitWithAck(AgentEvents.finished, msg);
    if ('error' in reply) throw new Error(`finished refused: ${reply.error.message}`);
  }

  close(): void {
    this.socket.disconnect();
  }
}
