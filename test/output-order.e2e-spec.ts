// Both live transports (the /dashboard socket and the SSE endpoint) read output through one
// engine: stored backlog, then live chunks, never past a hole, each seq once. The same cases run
// against each, with a real control plane and PostgreSQL, a protocol-level agent that decides
// exactly which seq is stored when (26 before 25), and real readers: a socket.io client and an
// HTTP client parsing text/event-stream.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, outputOf, readEvents, run, type SseEvent, waitForStatus } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { ProtocolAgent } from './support/protocol-agent.js';
import { ViewerClient } from './support/viewer.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
const closers: (() => void)[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url });
  api = new Api(cp.url, cp.adminKey);
});

afterEach(() => {
  for (const close of closers.splice(0)) close();
});

afterAll(async () => {
  await cp?.stop();
  await db?.drop();
});

/** A reader of one execution's output over one transport. */
interface Reader {
  /** Resolves once the reader is subscribed to live output (the transport's positive signal). */
  open(executionId: string): Promise<void>;
  seqs(): number[];
  bytes(): Buffer;
  /** Resolves once the stream has ended with the terminal status; returns that status. */
  ended(): Promise<string>;
  close(): void;
}

/** The /dashboard feed: `execution.subscribe`, whose ack comes once the live listener is in place. */
function dashboardReader(): Reader {
  let v: ViewerClient;
  let id = '';
  return {
    async open(executionId) {
      id = executionId;
      v = await ViewerClient.connect(cp.url, cp.adminKey);
      expect(await v.subscribe(executionId)).toEqual({ ok: true });
    },
    seqs: () => v.seqs(id),
    bytes: () => v.bytes(id),
    ended: async () => (await v.waitTerminal(id)).status,
    close: () => v?.close(),
  };
}

/** GET .../events: the endpoint listens for live output before it answers with its headers. */
function sseReader(): Reader {
  let events: SseEvent[] = [];
  let reading: Promise<{ events: SseEvent[]; ended: boolean }>;
  return {
    async open(executionId) {
      let subscribed!: () => void;
      const answered = new Promise<void>((resolve) => (subscribed = resolve));
      reading = readEvents(api, executionId, {
        timeoutMs: 60_000,
        onOpen: () => subscribed(),
        onEvent: (_e, all) => {
          events = all;
        },
      });
      await Promise.race([answered, reading.then(() => Promise.reject(new Error('the stream ended before it was answered')))]);
    },
    seqs: () => outputOf(events).seqs,
    bytes: () => outputOf(events).bytes,
    ended: async () => {
      const r = await reading;
      expect(r.ended).toBe(true);
      const last = r.events[r.events.length - 1]!;
      expect(last.event).toBe('status');
      return JSON.parse(last.data).status;
    },
    close: () => undefined,
  };
}

/** What the agent produced: chunk n's bytes are random, of a size that varies (some large). */
class Output {
  readonly chunks = new Map<number, { seq: number; stream: 'stdout' | 'stderr'; data: Buffer }>();
  constructor(
    readonly agent: ProtocolAgent,
    readonly executionId: string,
  ) {}

  chunk(seq: number) {
    let c = this.chunks.get(seq);
    if (!c) {
      c = { seq, stream: seq % 5 === 2 ? 'stderr' : 'stdout', data: randomBytes(seq % 9 === 4 ? 96 * 1024 : 16 + (seq % 50)) };
      this.chunks.set(seq, c);
    }
    return c;
  }

  /** One batch of these seqs (increasing), acked: stored once the promise resolves. */
  async send(...seqs: number[]): Promise<void> {
    const reply = await this.agent.output(this.executionId, seqs.map((s) => this.chunk(s)));
    expect(reply).toMatchObject({ ackedSeq: seqs[seqs.length - 1] });
  }

  /** Batches of `size` over [from, to]. */
  async sendRange(from: number, to: number, size = 8): Promise<void> {
    for (let s = from; s <= to; s += size) await this.send(...range(s, Math.min(to, s + size - 1)));
  }

  /** Every chunk's bytes in seq order: what a reader must end up with. */
  all(): Buffer {
    return Buffer.concat([...this.chunks.values()].sort((a, b) => a.seq - b.seq).map((c) => c.data));
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * The shared cases. `before` stores output before the reader opens (its backlog); `after` runs
 * once the reader is subscribed; both end with the last seq. The reader must then hold every
 * seq from 0 to it, once, in order, byte for byte.
 */
const cases: { name: string; before: (o: Output) => Promise<void>; after: (o: Output, r: Reader) => Promise<number> }[] = [
  {
    name: 'seq 26 stored before seq 25 while the reader is live: 25 then 26',
    before: (o) => o.sendRange(0, 24),
    async after(o, r) {
      await waitFor('the backlog up to 24', () => r.seqs().includes(24));
      await o.send(26);
      await o.send(25);
      await o.send(24, 25, 26); // resent: stored once, sent once
      await o.send(27);
      return 27;
    },
  },
  {
    name: 'a hole in the stored backlog (11 stored, 10 not yet): nothing past it until 10 is stored',
    async before(o) {
      await o.sendRange(0, 9);
      await o.send(11, 12);
    },
    async after(o, r) {
      await waitFor('the backlog up to 9', () => r.seqs().includes(9));
      await o.send(10);
      await o.send(13);
      return 13;
    },
  },
  {
    name: 'live batches out of order and overlapping: every seq once, in order',
    before: async () => undefined,
    async after(o) {
      await o.send(3, 4);
      await o.send(1, 2);
      await o.send(0, 1, 2, 3, 4, 5);
      await o.send(8);
      await o.send(6, 7);
      await o.send(7, 8, 9);
      return 9;
    },
  },
];

describe.each([
  { transport: 'dashboard socket.io feed', reader: dashboardReader },
  { transport: 'SSE endpoint', reader: sseReader },
])('output order over the $transport', ({ reader }) => {
  it.each(cases)('$name', async ({ name, before, after }) => {
    const server = await createServer(api, `order-${name.slice(0, 20)}-${Math.random().toString(36).slice(2, 8)}`);
    const agent = await ProtocolAgent.connect(cp.url, server.agentToken);
    closers.push(() => agent.close());
    const script = await createScript(api, 'echo x');
    const { executionId } = await run(api, script.id, server.id);
    await agent.waitForStart(executionId);
    const o = new Output(agent, executionId);
    await before(o);
    if (o.chunks.size === 0) await waitForStatus(api, executionId, ['dispatched', 'running']);

    const r = reader();
    closers.push(() => r.close());
    await r.open(executionId);
    const lastSeq = await after(o, r);
    expect(await agent.finished(executionId, lastSeq, { exitCode: 0 })).toEqual({ ok: true });

    expect(await r.ended()).toBe('succeeded');
    expect(r.seqs()).toEqual(range(0, lastSeq));
    expect(r.bytes().equals(o.all())).toBe(true);
  });
});
