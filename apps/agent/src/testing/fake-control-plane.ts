import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket } from 'socket.io';
import {
  AGENT_NAMESPACE,
  connectRefusal,
  type ExecutionSpawned,
  MAX_MESSAGE_BYTES,
  type AgentHello,
  type ExecutionFinished,
  type OutputBatch,
  type OutputStream,
  type StartExecution,
} from '@app/protocol';

export interface StoredChunk {
  seq: number;
  stream: OutputStream;
  data: Buffer;
}

type OutputHandler = (batch: OutputBatch, ack: (reply: unknown) => void, socket: Socket) => void;

/** A stand-in control plane: a real socket.io server on `/agent` that stores output like the real one. */
export class FakeControlPlane {
  readonly handshakes: Record<string, unknown>[] = [];
  readonly hellos: AgentHello[] = [];
  /** Every batch received, in arrival order (for checking what was (re)sent). */
  readonly batches: { executionId: string; seqs: number[]; connection: number }[] = [];
  readonly finished: ExecutionFinished[] = [];
  /** Every `execution.spawned` received, and on which connection. */
  readonly spawned: { executionId: string; connection: number }[] = [];
  socket?: Socket;
  connections = 0;
  /** Engine-level (transport) connections open now, whether or not a namespace accepted them. */
  transports = 0;
  /** Decide what to do with an output batch; the default stores it and acks at once. */
  onOutput: OutputHandler = (batch, ack) => ack({ ackedSeq: this.store(batch) });
  onFinished: (msg: ExecutionFinished, ack: (reply: unknown) => void, socket: Socket) => void = (msg, ack) => {
    this.finished.push(msg);
    ack({ ok: true });
  };
  /** Decide what to do with an `execution.spawned`; the default acks it. */
  onSpawned: (msg: ExecutionSpawned, ack: (reply: unknown) => void, socket: Socket) => void = (_msg, ack) => ack({ ok: true });
  /** Decide what to do with a hello; the default asks for what is not stored. */
  onHello: (hello: AgentHello, ack: (reply: unknown) => void, socket: Socket) => void = (hello, ack) =>
    ack({ resend: hello.running.map((r) => ({ executionId: r.executionId, fromSeq: this.contiguous(r.executionId) })) });
  /** Why a handshake is refused (the `connect_error`), or null to accept it. */
  refuse: (auth: Record<string, unknown>) => Error | null = (auth) => (auth.token === 'good-token' ? null : connectRefusal('UNAUTHORIZED', 'unauthorized'));
  private readonly chunks = new Map<string, Map<number, StoredChunk>>();
  private readonly waiters = new Set<() => void>();
  private readonly http: HttpServer;
  private readonly io: Server;

  constructor() {
    this.http = createServer();
    this.io = new Server(this.http, { transports: ['websocket'], maxHttpBufferSize: MAX_MESSAGE_BYTES });
    this.io.engine.on('connection', (conn: { once(event: 'close', fn: () => void): void }) => {
      this.transports += 1;
      conn.once('close', () => {
        this.transports -= 1;
        this.notify();
      });
    });
    const ns = this.io.of(AGENT_NAMESPACE);
    ns.use((socket, next) => {
      // Protocol 3: the token comes as the upgrade's Authorization header, the rest in `auth`.
      const bearer = /^Bearer (.+)$/.exec(socket.handshake.headers.authorization ?? '')?.[1];
      const auth = { ...(socket.handshake.auth as Record<string, unknown>), ...(bearer === undefined ? {} : { token: bearer }) };
      this.handshakes.push(auth);
      next(this.refuse(auth) ?? undefined);
    });
    ns.on('connection', (socket) => {
      this.socket = socket;
      this.connections += 1;
      const connection = this.connections;
      socket.on('agent.hello', (hello: AgentHello, ack: (r: unknown) => void) => {
        this.hellos.push(hello);
        this.onHello(hello, ack, socket);
        this.notify();
      });
      socket.on('execution.spawned', (msg: ExecutionSpawned, ack: (r: unknown) => void) => {
        this.spawned.push({ executionId: msg.executionId, connection });
        this.onSpawned(msg, ack, socket);
        this.notify();
      });
      socket.on('execution.output', (batch: OutputBatch, ack: (r: unknown) => void) => {
        this.batches.push({ executionId: batch.executionId, seqs: batch.chunks.map((c) => c.seq), connection });
        this.onOutput(batch, ack, socket);
        this.notify();
      });
      socket.on('execution.finished', (msg: ExecutionFinished, ack: (r: unknown) => void) => {
        this.onFinished(msg, ack, socket);
        this.notify();
      });
    });
  }

  get url(): string {
    return `http://127.0.0.1:${(this.http.address() as AddressInfo).port}`;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.http.listen(0, '127.0.0.1', resolve));
    return this;
  }

  async close(): Promise<void> {
    await new Promise((resolve) => {
      void this.io.close(resolve);
    });
  }

  /** Stores a batch idempotently; returns its last seq. */
  store(batch: OutputBatch): number {
    let stored = this.chunks.get(batch.executionId);
    if (!stored) this.chunks.set(batch.executionId, (stored = new Map()));
    for (const c of batch.chunks) stored.set(c.seq, { seq: c.seq, stream: c.stream, data: Buffer.from(c.data) });
    return batch.chunks.at(-1)!.seq;
  }

  /** The stored chunks, checked to be exactly seq 0..n-1. */
  output(executionId: string): StoredChunk[] {
    const chunks = [...(this.chunks.get(executionId)?.values() ?? [])].sort((a, b) => a.seq - b.seq);
    chunks.forEach((c, i) => {
      if (c.seq !== i) throw new Error(`gap in output: seq ${c.seq} at position ${i}`);
    });
    return chunks;
  }

  bytes(executionId: string, stream?: OutputStream): Buffer {
    return Buffer.concat(this.output(executionId).filter((c) => !stream || c.stream === stream).map((c) => c.data));
  }

  /** The number of chunks stored without a gap from seq 0. */
  contiguous(executionId: string): number {
    const stored = this.chunks.get(executionId);
    let n = 0;
    while (stored?.has(n)) n += 1;
    return n;
  }

  async start(cmd: Partial<StartExecution> & { executionId: string; content: string }): Promise<unknown> {
    const full = { interpreter: 'bash', env: {}, timeoutMs: 30_000, maxOutputBytes: 64 * 1024 * 1024, ...cmd };
    return this.emit('execution.start', full);
  }

  async emit(event: string, payload: unknown): Promise<unknown> {
    await this.until(() => !!this.socket?.connected);
    return this.socket!.timeout(5_000).emitWithAck(event, payload);
  }

  async waitFinished(executionId: string): Promise<ExecutionFinished> {
    await this.until(() => this.finished.some((f) => f.executionId === executionId));
    return this.finished.find((f) => f.executionId === executionId)!;
  }

  /** Resolves when `check` holds, re-checked on every message from the agent (and every 20 ms). */
  async until(check: () => boolean, timeoutMs = 8_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${check.toString()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 20);
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.waiters.add(done);
      });
    }
  }

  private notify(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }
}
