import { describe, expect, it } from '@jest/globals';
import { MAX_CHUNK_BYTES, MAX_CHUNKS_PER_BATCH } from '@app/protocol';
import { FinishedOutbox, OutputOutbox } from './outbox.js';

const ID = '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11';
const text = (b: Uint8Array) => Buffer.from(b).toString();

describe('OutputOutbox', () => {
  it('numbers chunks from 0 across both streams and merges consecutive writes of one stream', () => {
    const box = new OutputOutbox(ID, { maxOutputBytes: 1000 });
    box.append('stdout', Buffer.from('a'));
    box.append('stdout', Buffer.from('b'));
    box.append('stderr', Buffer.from('E'));
    box.append('stdout', Buffer.from('c'));
    const [sent, ...rest] = box.takeBatches();
    expect(rest).toHaveLength(0);
    expect(sent!.batch.chunks.map((c) => [c.seq, c.stream, text(c.data)])).toEqual([
      [0, 'stdout', 'ab'],
      [1, 'stderr', 'E'],
      [2, 'stdout', 'c'],
    ]);
    expect([sent!.firstSeq, sent!.lastSeq, box.nextSeq]).toEqual([0, 2, 3]);
  });

  it('splits large output into chunks no larger than the chunk size and never over the protocol limit', () => {
    const box = new OutputOutbox(ID, { maxOutputBytes: 10_000_000, chunkBytes: 10 * MAX_CHUNK_BYTES });
    box.append('stdout', Buffer.alloc(MAX_CHUNK_BYTES * 2 + 5, 7));
    const chunks = box.takeBatches().flatMap((b) => b.batch.chunks);
    expect(chunks.map((c) => c.data.byteLength)).toEqual([MAX_CHUNK_BYTES, MAX_CHUNK_BYTES, 5]);
  });

  it('caps batches by chunk count and bytes', () => {
    const box = new OutputOutbox(ID, { maxOutputBytes: 10_000_000, chunkBytes: 1, batchBytes: 1 });
    box.append('stdout', Buffer.alloc(3));
    expect(box.takeBatches().map((b) => b.batch.chunks.length)).toEqual([1, 1, 1]);

    const many = new OutputOutbox(ID, { maxOutputBytes: 10_000_000, chunkBytes: 1 });
    many.append('stdout', Buffer.alloc(MAX_CHUNKS_PER_BATCH + 1));
    expect(many.takeBatches().map((b) => b.batch.chunks.length)).toEqual([MAX_CHUNKS_PER_BATCH, 1]);
  });

  it('keeps chunks until acked, counts them against the window, and hands each out once per connection', () => {
    const box = new OutputOutbox(ID, { maxOutputBytes: 1000, windowBytes: 4, chunkBytes: 2 });
    box.append('stdout', Buffer.from('abcd'));
    expect(box.windowFull).toBe(true);
    const batches = box.takeBatches();
    expect(box.takeBatches()).toEqual([]);
    box.ack(batches[0]!, batches[0]!.lastSeq);
    expect([box.unackedBytes, box.windowFull, box.drained]).toEqual([0, false, true]);
  });

  it('resends a partially acked batch from the first unstored seq', () => {
    const box = new OutputOutbox(ID, { maxOutputBytes: 1000, chunkBytes: 1 });
    box.append('stdout', Buffer.from('xyz'));
    const [sent] = box.takeBatches();
    box.ack(sent!, 0);
    const again = box.takeBatches();
    expect(again.map((b) => [b.firstSeq, b.lastSeq])).toEqual([[1, 2]]);
  });

  it('after a reconnect drops what the control plane has and resends the rest, in flight or not', () => {
    const box = new OutputOutbox(ID, { maxOutputBytes: 1000, chunkBytes: 1 });
    box.append('stdout', Buffer.from('abc'));
    box.takeBatches(); // in flight when the connection dropped
    box.append('stderr', Buffer.from('d'));
    box.resendFrom(2);
    const chunks = box.takeBatches().flatMap((b) => b.batch.chunks);
    expect(chunks.map((c) => [c.seq, text(c.data)])).toEqual([
      [2, 'c'],
      [3, 'd'],
    ]);
    expect(box.unackedBytes).toBe(2);
  });

  it('keeps exactly maxOutputBytes and reports truncation', () => {
    const box = new OutputOutbox(ID, { maxOutputBytes: 5 });
    box.append('stdout', Buffer.from('abc'));
    box.append('stderr', Buffer.from('defg'));
    box.append('stdout', Buffer.from('more'));
    const chunks = box.takeBatches().flatMap((b) => b.batch.chunks);
    expect(chunks.map((c) => text(c.data)).join('')).toBe('abcde');
    expect([box.outputBytes, box.truncated, box.nextSeq]).toEqual([5, true, 2]);
  });
});

describe('FinishedOutbox', () => {
  it('hands out each report once per connection until settled', () => {
    const box = new FinishedOutbox();
    const report = { executionId: ID, exitCode: 0, signal: null, timedOut: false, cancelled: false, lastSeq: -1, outputBytes: 0, truncated: false, error: null };
    box.add(report);
    expect(box.takeUnsent()).toEqual([report]);
    expect(box.takeUnsent()).toEqual([]);
    box.unsendAll();
    expect(box.takeUnsent()).toEqual([report]);
    expect(box.all()).toEqual([report]);
    box.settle(ID);
    expect(box.size).toBe(0);
  });
});
