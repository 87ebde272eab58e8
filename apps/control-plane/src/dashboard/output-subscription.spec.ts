import { describe, expect, it } from '@jest/globals';
import type { ExecutionStatusEvent } from '@app/protocol';
import type { StoredChunk } from '../executions/execution-output.service.js';
import { OutputSubscription, type SubscriptionSource } from './output-subscription.js';
import type { Viewer } from './viewer.js';

const ID = '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11';
const chunk = (seq: number): StoredChunk => ({ seq, stream: 'stdout', data: Buffer.from(`c${seq}`) });

/** A viewer that records what it is sent; `behind` is set by the test. */
function recordingViewer() {
  const sent: (number | string)[] = [];
  const viewer = {
    id: 'socket-1',
    behind: false,
    sendOutput: (_id: string, c: StoredChunk) => sent.push(c.seq),
    sendStatus: (e: ExecutionStatusEvent) => sent.push(e.status),
    sendResubscribe: (_id: string, reason: string) => sent.push(`resubscribe: ${reason}`),
    waitUntilCaughtUp: async () => true,
  };
  return { viewer, sent };
}

/**
 * A database of stored chunks whose page reads wait until the test lets them go, so chunks can
 * be made to land exactly while the backlog is read.
 */
function pausedSource(stored: StoredChunk[], pageRows = 4) {
  const gates: (() => void)[] = [];
  const source: SubscriptionSource = {
    pageRows,
    readPage: async (_id, after) => {
      await new Promise<void>((r) => gates.push(r));
      return stored.filter((c) => c.seq > after).slice(0, pageRows);
    },
  };
  const releaseOne = async () => {
    while (!gates.length) await new Promise((r) => setImmediate(r));
    gates.shift()!();
    await new Promise((r) => setImmediate(r));
  };
  return { source, releaseOne, pending: () => gates.length };
}

function subscription(viewer: object, source: SubscriptionSource, afterSeq = -1) {
  const closed: OutputSubscription[] = [];
  const sub = new OutputSubscription(ID, viewer as Viewer, afterSeq, source, (s) => closed.push(s), () => undefined);
  return { sub, closed };
}

describe('OutputSubscription', () => {
  it('chunks that land while the backlog is read (some also in it) are sent once, in order', async () => {
    const stored = [0, 1, 2, 3, 4, 5].map(chunk);
    const { viewer, sent } = recordingViewer();
    const db = pausedSource(stored);
    const { sub } = subscription(viewer, db.source);
    sub.start();
    // While page 1 is read: 6 is stored (and its event comes), and 7.
    stored.push(chunk(6));
    sub.onChunk(chunk(6));
    await db.releaseOne(); // page 1: 0..3
    stored.push(chunk(7));
    sub.onChunk(chunk(7));
    await db.releaseOne(); // page 2: 4..7 (6 and 7 are in the database too)
    await db.releaseOne(); // page 3: empty, then the held 6 and 7 are dropped as already sent
    expect(sub.isLive).toBe(true);
    sub.onChunk(chunk(7));
    sub.onChunk(chunk(8));
    expect(sent).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('a chunk held during the last read but not in it is flushed after it', async () => {
    const stored = [0, 1].map(chunk);
    const { viewer, sent } = recordingViewer();
    const db = pausedSource(stored);
    const { sub } = subscription(viewer, db.source);
    sub.start();
    sub.onChunk(chunk(2)); // committed after the read's snapshot: only the event has it
    sub.onStatus({ executionId: ID, status: 'running' });
    sub.onChunk(chunk(3));
    await db.releaseOne();
    expect(sent).toEqual([0, 1, 2, 'running', 3]);
    expect(sub.isLive).toBe(true);
  });

  it('starts after afterSeq, and a terminal status held during the backlog comes after the output and ends it', async () => {
    const stored = [0, 1, 2, 3, 4].map(chunk);
    const { viewer, sent } = recordingViewer();
    const db = pausedSource(stored);
    const { sub, closed } = subscription(viewer, db.source, 2);
    sub.start();
    sub.onStatus({ executionId: ID, status: 'succeeded', exitCode: 0 });
    await db.releaseOne();
    expect(sent).toEqual([3, 4, 'succeeded']);
    expect(closed).toEqual([sub]);
    sub.onChunk(chunk(5));
    expect(sent).toHaveLength(3);
  });

  it('a live chunk after a gap goes back to the database for the missing ones', async () => {
    const stored = [0].map(chunk);
    const { viewer, sent } = recordingViewer();
    const db = pausedSource(stored);
    const { sub } = subscription(viewer, db.source);
    sub.start();
    await db.releaseOne();
    expect(sub.isLive).toBe(true);
    stored.push(chunk(1), chunk(2));
    sub.onChunk(chunk(2)); // 1 was stored but its event never came here
    expect(sent).toEqual([0]);
    await db.releaseOne();
    expect(sent).toEqual([0, 1, 2]);
    expect(sub.isLive).toBe(true);
  });

  it('a live viewer that is behind is told to resubscribe and dropped', async () => {
    const { viewer, sent } = recordingViewer();
    const db = pausedSource([]);
    const { sub, closed } = subscription(viewer, db.source);
    sub.start();
    await db.releaseOne();
    sub.onChunk(chunk(0));
    viewer.behind = true;
    sub.onChunk(chunk(1));
    sub.onChunk(chunk(2));
    expect(sent).toEqual([0, 'resubscribe: the viewer fell too far behind']);
    expect(closed).toEqual([sub]);
  });

  it('held chunks past the limit are dropped and read from the database instead', async () => {
    const big = (seq: number): StoredChunk => ({ seq, stream: 'stdout', data: Buffer.alloc(1024 * 1024) });
    const stored: StoredChunk[] = [];
    const { viewer, sent } = recordingViewer();
    const db = pausedSource(stored, 64);
    const { sub } = subscription(viewer, db.source);
    sub.start();
    for (let i = 0; i < 10; i++) {
      stored.push(big(i));
      sub.onChunk(big(i));
    }
    await db.releaseOne(); // read before they were stored: nothing
    await db.releaseOne(); // the overflow sends it back to the database
    expect(sent).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(db.pending()).toBe(0);
  });
  it('a page with a hole (a chunk still committing in another transaction) is sent only up to the hole', async () => {
    // Two batches of one execution commit in either order: 3 is stored and its event came while
    // 2 is not committed yet. Found by the soak (a viewer saw seq 26 before 25, and never 25).
    const stored = [0, 1, 3].map(chunk);
    const { viewer, sent } = recordingViewer();
    const db = pausedSource(stored);
    const { sub } = subscription(viewer, db.source);
    sub.start();
    await db.releaseOne(); // page: 0, 1, 3
    expect(sent).toEqual([0, 1]);
    stored.splice(2, 0, chunk(2)); // 2 commits
    sub.onChunk(chunk(2));
    await db.releaseOne(); // read again: 2, 3
    expect(sent).toEqual([0, 1, 2, 3]);
    // Live: 5 before 4, and the database does not have 4 yet either.
    expect(sub.isLive).toBe(true);
    stored.push(chunk(5));
    sub.onChunk(chunk(5));
    await db.releaseOne(); // page: 5 only
    expect(sent).toEqual([0, 1, 2, 3]);
    stored.splice(4, 0, chunk(4));
    sub.onChunk(chunk(4));
    await db.releaseOne();
    expect(sent).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('takeLive takes only the next chunk of a live subscription whose viewer keeps up', async () => {
    const { viewer, sent } = recordingViewer();
    const db = pausedSource([chunk(0)]);
    const { sub } = subscription(viewer, db.source);
    sub.start();
    expect(sub.takeLive(chunk(1))).toBe(false); // still catching up: held by onChunk instead
    await db.releaseOne();
    expect(sub.isLive).toBe(true);
    expect(sub.takeLive(chunk(1))).toBe(true);
    expect(sub.takeLive(chunk(1))).toBe(false); // taken already
    expect(sub.takeLive(chunk(3))).toBe(false); // past a gap
    viewer.behind = true;
    expect(sub.takeLive(chunk(2))).toBe(false);
    viewer.behind = false;
    expect(sub.takeLive(chunk(2))).toBe(true);
    // The taken ones were sent by the caller: onChunk drops them as already sent.
    sub.onChunk(chunk(2));
    expect(sent).toEqual([0]);
  });
});
