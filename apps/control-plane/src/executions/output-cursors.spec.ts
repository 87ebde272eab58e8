import { describe, expect, it } from '@jest/globals';
import { ApiKeyEvents } from '../workspaces/api-key-events.js';
import type { KeyConnections } from '../workspaces/key-connections.js';
import { ClusterNews } from './cluster-news.js';
import { ExecutionEvents } from './execution-events.js';
import type { ExecutionOutputStore, StoredChunk } from './execution-output.service.js';
import type { ExecutionView } from './execution-view.js';
import type { ExecutionsService } from './executions.service.js';
import type { CursorItem, OutputCursor } from './output-cursor.js';
import { OutputCursors } from './output-cursors.js';

const ID = '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11';
const WS = '0b7a3c1e-2f4d-4e8a-9c61-5d2e7f8a9b10';
const chunk = (seq: number): StoredChunk => ({ seq, stream: 'stdout', data: Buffer.from(`c${seq}`) });

/** A database whose reads wait at a gate when the test says so, counting the reads that reached it. */
function fakes() {
  const stored = [0, 1, 2].map(chunk);
  const gates: (() => void)[] = [];
  let gated = false;
  const calls = { page: 0, get: 0 };
  const wait = async () => {
    if (gated) await new Promise<void>((r) => gates.push(r));
  };
  const store = {
    page: async (_id: string, after: number) => {
      calls.page++;
      await wait();
      return stored.filter((c) => c.seq > after);
    },
  } as unknown as ExecutionOutputStore;
  const executions = {
    get: async () => {
      calls.get++;
      await wait();
      return { status: 'running', exitCode: null } as unknown as ExecutionView;
    },
  } as unknown as ExecutionsService;
  const events = new ExecutionEvents();
  const cursors = new OutputCursors(store, executions, events, new ClusterNews(events, new ApiKeyEvents(), {} as KeyConnections));
  return {
    cursors,
    calls,
    hold: () => (gated = true),
    release: () => {
      gated = false;
      for (const g of gates.splice(0)) g();
    },
  };
}

function read(cursor: OutputCursor) {
  const items: CursorItem[] = [];
  const done = (async () => {
    for await (const item of cursor) items.push(item);
  })();
  return { items, done };
}

async function until(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('OutputCursors', () => {
  it('readers asking for the same page while a read waits for its turn share it; a read already started is not joined', async () => {
    const f = fakes();
    const turns: (() => void)[] = [];
    let waiting = 0;
    // A limit with one slot the test hands out.
    const limit = async <T>(r: () => Promise<T>): Promise<T> => {
      waiting++;
      await new Promise<void>((go) => turns.push(go));
      return r();
    };
    const opts = { initial: { status: 'running' as const, exitCode: null }, limit, pollMs: 60_000 };
    const a = f.cursors.detached(WS, ID, -1, opts);
    const b = f.cursors.detached(WS, ID, -1, opts);
    const ra = read(a);
    const rb = read(b);
    await until(() => waiting === 1);
    f.hold();
    turns.shift()!(); // the shared read starts (and waits in the database)
    await until(() => f.calls.page === 1);
    const c = f.cursors.detached(WS, ID, -1, opts);
    const rc = read(c);
    await until(() => waiting === 2); // c asked after the shared read started: a read of its own
    turns.shift()!();
    f.release();
    await until(() => [ra, rb, rc].every((r) => r.items.filter((i) => i.kind === 'output').length === 3));
    expect(f.calls.page).toBe(2);
    for (const cur of [a, b, c]) cur.close();
    await Promise.all([ra.done, rb.done, rc.done]);
  });

  it("idle polls of one execution share a moment's answer", async () => {
    const f = fakes();
    const opts = { initial: { status: 'running' as const, exitCode: null }, pollMs: 20 };
    const readers = [0, 1, 2].map(() => f.cursors.cursor(WS, ID, 2, opts));
    const rs = readers.map(read);
    await until(() => rs.every((r) => r.items.some((i) => i.kind === 'status')));
    f.hold(); // the first poll's status read waits: the others' polls come while it does
    await until(() => rs.every((r) => r.items.some((i) => i.kind === 'idle')));
    await new Promise((r) => setTimeout(r, 10));
    expect(f.calls.get).toBe(1);
    f.release();
    for (const cur of readers) cur.close();
    await Promise.all(rs.map((r) => r.done));
    expect(f.cursors.openCursors).toBe(0);
  });

  it('feeds event-fed cursors the output and statuses of their own workspace only', async () => {
    const f = fakes();
    const events = (f.cursors as unknown as { events: ExecutionEvents }).events;
    f.cursors.onModuleInit();
    const cursor = f.cursors.cursor(WS, ID, 2, { initial: { status: 'running', exitCode: null }, pollMs: 60_000 });
    const r = read(cursor);
    await until(() => r.items.some((i) => i.kind === 'status'));
    events.output.next({ executionId: ID, workspaceId: 'another', seq: 3, stream: 'stdout', data: Buffer.from('theirs') });
    events.output.next({ executionId: ID, workspaceId: WS, seq: 3, stream: 'stdout', data: Buffer.from('ours') });
    events.status.next({ executionId: ID, workspaceId: WS, serverId: 's', status: 'succeeded', exitCode: 0 });
    await r.done;
    f.cursors.onModuleDestroy();
    expect(r.items.flatMap((i) => (i.kind === 'output' ? [i.chunk.data.toString()] : i.kind === 'status' ? [i.status] : []))).toEqual([
      'running',
      'ours',
      'succeeded',
    ]);
  });
});
