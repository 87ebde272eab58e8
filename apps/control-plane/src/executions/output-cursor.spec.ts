import { describe, expect, it } from '@jest/globals';
import type { StoredChunk } from './execution-output.service.js';
import { type CursorItem, type CursorOptions, type CursorSource, type CursorStatus, OutputCursor } from './output-cursor.js';

const ID = '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11';
const chunk = (seq: number, size = 4): StoredChunk => ({ seq, stream: seq % 3 ? 'stdout' : 'stderr', data: Buffer.alloc(size, seq % 256) });
const fast: CursorOptions = { pollMs: 40, gapRetryMs: 5, gapRetries: 4 };

/**
 * The database as the cursor sees it: stored chunks in any order, a status, and page reads that
 * are counted and can be held at a gate, so a test can make chunks land exactly while a page is read.
 */
class FakeStore {
  readonly stored = new Map<number, StoredChunk>();
  status: CursorStatus = { status: 'running', exitCode: null };
  reads = 0;
  /** The `poll` flag of each page read, in order. */
  readonly polls: boolean[] = [];
  private gated = false;
  private readonly gates: (() => void)[] = [];

  readonly source: CursorSource;

  constructor(seqs: number[] = [], pageRows = 4) {
    for (const s of seqs) this.store(s);
    this.source = {
      pageRows,
      page: async (_id, after, poll) => {
        if (this.gated) await new Promise<void>((r) => this.gates.push(r));
        this.reads++;
        this.polls.push(poll);
        return [...this.stored.values()]
          .filter((c) => c.seq > after)
          .sort((a, b) => a.seq - b.seq)
          .slice(0, pageRows);
      },
      status: async () => ({ ...this.status }),
    };
  }

  store(...seqs: number[]): void {
    for (const s of seqs) this.stored.set(s, chunk(s));
  }

  /** Page reads wait at the gate from now on. */
  hold(): void {
    this.gated = true;
  }

  /** Lets one held read go (waiting for it to be asked if need be). */
  async releaseOne(): Promise<void> {
    await until(() => this.gates.length > 0);
    this.gates.shift()!();
    await tick();
  }

  /** Lets every read go from now on. */
  open(): void {
    this.gated = false;
    for (const g of this.gates.splice(0)) g();
  }

  /** Resolves once `n` more reads have completed. */
  async moreReads(n = 1): Promise<void> {
    const target = this.reads + n;
    await until(() => this.reads >= target);
    await tick();
  }
}

const tick = () => new Promise((r) => setImmediate(r));

async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Reads the cursor in the background; `pull(false)` stops pulling (a slow reader) until `pull(true)`. */
function reader(cursor: OutputCursor) {
  const items: CursorItem[] = [];
  let pulling = true;
  let resume: (() => void) | null = null;
  let ended = false;
  const done = (async () => {
    for await (const item of cursor) {
      items.push(item);
      while (!pulling) await new Promise<void>((r) => (resume = r));
    }
    ended = true;
  })();
  return {
    items,
    seqs: () => items.flatMap((i) => (i.kind === 'output' ? [i.chunk.seq] : [])),
    bytes: () => Buffer.concat(items.flatMap((i) => (i.kind === 'output' ? [i.chunk.data] : []))),
    /** Output seqs and statuses, in order. */
    story: () => items.flatMap((i): (number | string)[] => (i.kind === 'output' ? [i.chunk.seq] : i.kind === 'status' ? [i.status] : [])),
    pull(on: boolean) {
      pulling = on;
      if (on) resume?.();
    },
    get ended() {
      return ended;
    },
    done,
  };
}

const expected = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('OutputCursor', () => {
  it('sends the backlog after afterSeq, then live chunks, each once and in order, with the status after the backlog', async () => {
    const db = new FakeStore(expected(0, 9));
    const cursor = new OutputCursor(ID, 2, db.source, fast);
    const r = reader(cursor);
    await until(() => r.items.some((i) => i.kind === 'status'));
    db.store(10);
    cursor.push(chunk(10));
    await until(() => r.seqs().length === 8);
    cursor.close();
    await r.done;
    expect(r.story()).toEqual([3, 4, 5, 6, 7, 8, 9, 'running', 10]);
    expect(r.items.at(-1)).toMatchObject({ kind: 'output', live: true });
  });

  it('chunks that land while the backlog is read, some in it too, are sent once and in order', async () => {
    const db = new FakeStore(expected(0, 5));
    db.hold();
    const cursor = new OutputCursor(ID, -1, db.source, fast);
    const r = reader(cursor);
    db.store(6);
    cursor.push(chunk(6)); // before the first page is read
    await db.releaseOne(); // page 1: 0..3
    db.store(7);
    cursor.push(chunk(7));
    cursor.push(chunk(6)); // a duplicate event
    await db.releaseOne(); // page 2: 4..7, 6 and 7 also held
    db.store(8);
    cursor.push(chunk(8));
    db.open();
    await until(() => r.seqs().length === 9);
    cursor.close();
    await r.done;
    expect(r.seqs()).toEqual(expected(0, 8));
  });

  it('never passes a hole in the stored output: waits until the missing chunk is stored', async () => {
    // Two batches of one execution commit in either order: 3 is stored while 2 is still committing.
    const db = new FakeStore([0, 1, 3]);
    const cursor = new OutputCursor(ID, -1, db.source, { ...fast, gapRetries: 1_000 });
    const r = reader(cursor);
    await until(() => r.seqs().length === 2);
    await db.moreReads(3); // read again and again: still the hole
    expect(r.seqs()).toEqual([0, 1]);
    db.store(2);
    cursor.push(chunk(2));
    await until(() => r.seqs().length === 4);
    cursor.close();
    await r.done;
    expect(r.seqs()).toEqual([0, 1, 2, 3]);
  });

  it('live chunks out of order (26 before 25), duplicated, wait for the missing one; every chunk once', async () => {
    const db = new FakeStore(expected(0, 24));
    const cursor = new OutputCursor(ID, -1, db.source, { ...fast, gapRetries: 1_000 });
    const r = reader(cursor);
    await until(() => r.items.some((i) => i.kind === 'status'));
    db.store(26);
    cursor.push(chunk(26));
    await db.moreReads(2); // it went to the database for 25: not there yet
    cursor.push(chunk(26));
    expect(r.seqs().at(-1)).toBe(24);
    db.store(25);
    cursor.push(chunk(25));
    cursor.push(chunk(25));
    db.store(27, 28);
    cursor.push(chunk(28));
    cursor.push(chunk(27));
    await until(() => r.seqs().length === 29);
    cursor.close();
    await r.done;
    expect(r.seqs()).toEqual(expected(0, 28));
    expect(r.bytes().equals(Buffer.concat(expected(0, 28).map((s) => chunk(s).data)))).toBe(true);
  });

  it('a live chunk past a gap whose predecessor came by no event here (another node) is filled from the database', async () => {
    const db = new FakeStore([0]);
    const cursor = new OutputCursor(ID, -1, db.source, fast);
    const r = reader(cursor);
    await until(() => r.items.some((i) => i.kind === 'status'));
    db.store(1, 2);
    cursor.push(chunk(2));
    await until(() => r.seqs().length === 3);
    cursor.close();
    await r.done;
    expect(r.seqs()).toEqual([0, 1, 2]);
  });

  it('a slow reader: held chunks stay bounded, the overflow is read from the database, nothing lost or repeated', async () => {
    const db = new FakeStore([], 8);
    const cursor = new OutputCursor(ID, -1, db.source, { ...fast, maxHeldChunks: 10, maxHeldBytes: 1024 * 1024 });
    const r = reader(cursor);
    await until(() => r.items.some((i) => i.kind === 'status'));
    db.store(0);
    cursor.push(chunk(0));
    await until(() => r.seqs().length === 1);
    r.pull(false); // the reader stops taking items after seq 0
    for (let s = 1; s <= 100; s++) {
      db.store(s);
      cursor.push(chunk(s));
      expect((cursor as unknown as { held: Map<number, StoredChunk> }).held.size).toBeLessThanOrEqual(10);
    }
    r.pull(true);
    await until(() => r.seqs().length === 101);
    cursor.close();
    await r.done;
    expect(r.seqs()).toEqual(expected(0, 100));
  });

  it('a terminal status comes after the output stored before it, and ends the cursor', async () => {
    const db = new FakeStore([0, 1]);
    const cursor = new OutputCursor(ID, -1, db.source, fast);
    const r = reader(cursor);
    await until(() => r.items.some((i) => i.kind === 'status'));
    // 2 and 3 are stored, their events are still on the way when the status comes.
    db.store(2, 3);
    db.status = { status: 'failed', exitCode: 3 };
    cursor.pushStatus({ status: 'failed', exitCode: 3 });
    cursor.push(chunk(2));
    await r.done;
    expect(r.story()).toEqual([0, 1, 'running', 2, 3, 'failed']);
    expect(r.items.at(-1)).toEqual({ kind: 'status', status: 'failed', exitCode: 3 });
  });

  it('a finished execution: its backlog (output stored after it ended too), one terminal status, then the end', async () => {
    const db = new FakeStore([0, 1, 2, 3, 4]);
    db.status = { status: 'lost', exitCode: null };
    const r = reader(new OutputCursor(ID, 1, db.source, fast));
    await r.done;
    expect(r.story()).toEqual([2, 3, 4, 'lost']);
  });

  it('a finished execution whose stored output has a hole that never fills: what is stored, after the gap retries', async () => {
    const db = new FakeStore([0, 1, 3, 4]);
    db.status = { status: 'lost', exitCode: null };
    const r = reader(new OutputCursor(ID, -1, db.source, fast));
    await r.done;
    expect(r.story()).toEqual([0, 1, 3, 4, 'lost']);
    expect(db.reads).toBeGreaterThan(fast.gapRetries!);
  });

  it('a status stored while idle is found by the poll, with output another node stored (no event here)', async () => {
    const db = new FakeStore([0]);
    const cursor = new OutputCursor(ID, -1, db.source, fast);
    const r = reader(cursor);
    await until(() => r.items.some((i) => i.kind === 'status'));
    db.store(1, 2);
    db.status = { status: 'succeeded', exitCode: 0 };
    await r.done;
    expect(r.story()).toEqual([0, 'running', 1, 2, 'succeeded']);
    expect(r.items.some((i) => i.kind === 'idle')).toBe(true);
  });

  it('idle re-reads are marked as polls (shareable); the read after a status that moved is not', async () => {
    const db = new FakeStore([0]);
    const cursor = new OutputCursor(ID, -1, db.source, fast);
    const r = reader(cursor);
    await until(() => r.items.filter((i) => i.kind === 'idle').length >= 2);
    await db.moreReads(1);
    db.store(1);
    db.status = { status: 'succeeded', exitCode: 0 };
    await r.done;
    expect(r.story()).toEqual([0, 'running', 1, 'succeeded']);
    // The first read is the backlog's; the ones after idles are polls, until the status moved.
    expect(db.polls[0]).toBe(false);
    expect(db.polls.slice(1, -1).every((p) => p)).toBe(true);
    expect(db.polls.at(-1)).toBe(false);
  });

  it('announceInitial: false says nothing of the status it started with, but still ends with the terminal one', async () => {
    const db = new FakeStore([0]);
    const cursor = new OutputCursor(ID, -1, db.source, { ...fast, announceInitial: false });
    const r = reader(cursor);
    await until(() => r.seqs().length === 1);
    db.store(1);
    cursor.push(chunk(1));
    db.status = { status: 'succeeded', exitCode: 0 };
    cursor.pushStatus({ status: 'succeeded', exitCode: 0 });
    await r.done;
    expect(r.story()).toEqual([0, 1, 'succeeded']);
  });

  it('takeLive takes only the very next chunk of an idle, caught-up cursor; a taken chunk is not sent again', async () => {
    const db = new FakeStore([0]);
    db.hold();
    const cursor = new OutputCursor(ID, -1, db.source, { ...fast, pollMs: 60_000 });
    const r = reader(cursor);
    expect(cursor.takeLive(chunk(1))).toBe(false); // still reading the backlog
    await db.releaseOne();
    await until(() => r.items.some((i) => i.kind === 'status'));
    expect(cursor.takeLive(chunk(1))).toBe(true);
    expect(cursor.takeLive(chunk(1))).toBe(false); // taken already
    expect(cursor.takeLive(chunk(3))).toBe(false); // past a gap
    expect(cursor.takeLive(chunk(2))).toBe(true);
    cursor.push(chunk(2)); // the same chunk's event reaches the cursor too: dropped
    db.store(1, 2, 3);
    cursor.push(chunk(3));
    db.open();
    await until(() => r.seqs().length === 2);
    cursor.close();
    await r.done;
    expect(r.seqs()).toEqual([0, 3]);
    expect(cursor.lastSeq).toBe(3);
  });

  it('closing ends the iteration and drops what is held', async () => {
    const db = new FakeStore([]);
    const cursor = new OutputCursor(ID, -1, db.source, { ...fast, pollMs: 60_000 });
    const r = reader(cursor);
    await until(() => r.items.length === 1);
    cursor.close();
    await r.done;
    cursor.push(chunk(0));
    expect(r.ended).toBe(true);
    expect(r.seqs()).toEqual([]);
  });
});

describe('OutputCursor.nudge (output another node stored)', () => {
  it('reads the database at once instead of at the next poll, and past a hole it waits in', async () => {
    const store = new FakeStore([0]);
    // A poll far away: only the nudge can make it read again within the test.
    const cursor = new OutputCursor(ID, -1, store.source, { pollMs: 600_000, gapRetryMs: 600_000, gapRetries: 1 });
    const r = reader(cursor);
    await until(() => r.seqs().length === 1);
    const idle = store.reads;
    store.store(1, 2);
    cursor.nudge();
    await until(() => r.seqs().length === 3);
    expect(store.reads).toBeGreaterThan(idle);
    // A chunk held past a hole (seq 4 pushed, 3 not stored yet): the nudge that says 3 is stored fills it.
    cursor.push(chunk(4));
    await store.moreReads();
    store.store(3);
    cursor.nudge();
    await until(() => r.seqs().length === 5);
    expect(r.seqs()).toEqual([0, 1, 2, 3, 4]);
    cursor.close();
    await r.done;
  });
});
