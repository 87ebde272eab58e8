import { describe, expect, it } from '@jest/globals';
import type { ExecutionStatusEvent } from '@app/protocol';
import type { StoredChunk } from '../executions/execution-output.service.js';
import { type CursorSource, type CursorStatus, OutputCursor } from '../executions/output-cursor.js';
import { OutputSubscription } from './output-subscription.js';
import type { Viewer } from './viewer.js';

// The order of output is the cursor's (output-cursor.spec.ts); these are the viewer's side of it.
const ID = '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11';
const chunk = (seq: number): StoredChunk => ({ seq, stream: 'stdout', data: Buffer.from(`c${seq}`) });

/** A viewer that records what it is sent; `behind` and whether it catches up are set by the test. */
function recordingViewer() {
  const sent: (number | string)[] = [];
  const waits: number[] = [];
  const viewer = {
    id: 'socket-1',
    behind: false,
    catchesUp: true,
    sendOutput: (_id: string, c: StoredChunk) => sent.push(c.seq),
    sendStatus: (e: ExecutionStatusEvent) => sent.push(e.status),
    sendResubscribe: (_id: string, reason: string) => sent.push(`resubscribe: ${reason}`),
    waitUntilCaughtUp: async (ms: number) => {
      waits.push(ms);
      viewer.behind = !viewer.catchesUp;
      return viewer.catchesUp;
    },
  };
  return { viewer, sent, waits };
}

function source(stored: number[], status: CursorStatus = { status: 'running', exitCode: null }, fail = false): CursorSource {
  return {
    pageRows: 64,
    page: async (_id, after) => {
      if (fail) throw new Error('connection terminated');
      return stored.filter((s) => s > after).map(chunk);
    },
    status: async () => status,
  };
}

function subscription(viewer: object, src: CursorSource) {
  const closed: OutputSubscription[] = [];
  const errors: unknown[] = [];
  const cursor = new OutputCursor(ID, -1, src, { pollMs: 60_000, announceInitial: false });
  const sub = new OutputSubscription(ID, viewer as Viewer, cursor, (s) => closed.push(s), (_s, err) => errors.push(err));
  return { sub, closed, errors };
}

async function until(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('OutputSubscription (the /dashboard adapter over an output cursor)', () => {
  it('sends the backlog, then takes live chunks for the broadcast while the viewer keeps up', async () => {
    const { viewer, sent } = recordingViewer();
    const { sub } = subscription(viewer, source([0, 1]));
    sub.start();
    await until(() => sent.length === 2);
    await until(() => sub.takeLive(chunk(2)));
    viewer.behind = true;
    expect(sub.takeLive(chunk(3))).toBe(false); // a viewer behind is not sent broadcasts
    expect(sent).toEqual([0, 1]);
    sub.close();
  });

  it('a viewer behind on live chunks is told to resubscribe and dropped', async () => {
    const { viewer, sent, waits } = recordingViewer();
    const { sub, closed } = subscription(viewer, source([0]));
    sub.start();
    await until(() => sub.takeLive(chunk(1)));
    viewer.behind = true;
    sub.onChunk(chunk(2));
    sub.onChunk(chunk(3));
    await until(() => closed.length === 1);
    expect(sent).toEqual([0, 'resubscribe: the viewer fell too far behind']);
    expect(waits).toEqual([]);
  });

  it('a viewer behind on its backlog is waited for, and told to resubscribe only if it does not catch up', async () => {
    const first = recordingViewer();
    first.viewer.behind = true;
    const a = subscription(first.viewer, source([0, 1, 2], { status: 'succeeded', exitCode: 0 }));
    a.sub.start();
    await until(() => a.closed.length === 1);
    expect(first.sent).toEqual([0, 1, 2, 'succeeded']);
    expect(first.waits).toHaveLength(1);

    const second = recordingViewer();
    second.viewer.behind = true;
    second.viewer.catchesUp = false;
    const b = subscription(second.viewer, source([0, 1, 2], { status: 'succeeded', exitCode: 0 }));
    b.sub.start();
    await until(() => b.closed.length === 1);
    expect(second.sent).toEqual(['resubscribe: the viewer fell too far behind']);
  });

  it('a status event reaches the viewer after the output, and a terminal one ends the subscription', async () => {
    const { viewer, sent } = recordingViewer();
    const stored = [0];
    const { sub, closed } = subscription(viewer, source(stored));
    sub.start();
    await until(() => sent.length === 1);
    stored.push(1);
    sub.onStatus({ executionId: ID, status: 'failed', exitCode: 2 });
    await until(() => closed.length === 1);
    expect(sent).toEqual([0, 1, 'failed']);
  });

  it('a backlog that cannot be read: the error is reported and the viewer told to resubscribe', async () => {
    const { viewer, sent } = recordingViewer();
    const { sub, closed, errors } = subscription(viewer, source([], undefined, true));
    sub.start();
    await until(() => closed.length === 1);
    expect(errors).toHaveLength(1);
    expect(sent).toEqual(['resubscribe: the feed could not read the stored output']);
  });
});
