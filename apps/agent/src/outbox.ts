import {
  MAX_CHUNK_BYTES,
  MAX_CHUNKS_PER_BATCH,
  type ExecutionFinished,
  type OutputBatch,
  type OutputStream,
} from '@app/protocol';

export interface OutputOutboxOptions {
  /** Output kept past this is drained and dropped; the run is reported `truncated`. */
  maxOutputBytes: number;
  /** Unacked bytes above which the reader should pause the script's pipes. */
  windowBytes?: number;
  /** Consecutive writes of one stream are merged into chunks of up to this size. */
  chunkBytes?: number;
  /** Largest batch, in bytes of chunk data. */
  batchBytes?: number;
}

/** A batch handed out for sending; `lastSeq` is what a successful ack names. */
export interface SentBatch {
  batch: OutputBatch;
  firstSeq: number;
  lastSeq: number;
  bytes: number;
}

interface Chunk {
  seq: number;
  stream: OutputStream;
  // Pipe output lives in plain (non-shared) ArrayBuffers, which is what the protocol type asks for.
  data: Buffer<ArrayBuffer>;
  sent: boolean;
}

/**
 * The output of one execution, from the script's pipes until the control plane acks it: numbers it
 * (seq from 0, no gaps, both streams in one sequence), caps what is kept at `maxOutputBytes`, and
 * keeps every chunk until a batch ack says it is stored.
 */
export class OutputOutbox {
  /** Unacked chunks by seq; a Map iterates in insertion order, which is seq order. */
  private readonly chunks = new Map<number, Chunk>();
  private open: { stream: OutputStream; parts: Buffer[]; size: number } | null = null;
  private nextSeqValue = 0;
  private kept = 0;
  private unacked = 0;
  private unsent = 0;
  private truncatedValue = false;
  private readonly windowBytes: number;
  private readonly chunkBytes: number;
  private readonly batchBytes: number;

  constructor(
    readonly executionId: string,
    private readonly opts: OutputOutboxOptions,
  ) {
    this.windowBytes = opts.windowBytes ?? 4 * 1024 * 1024;
    this.chunkBytes = Math.min(opts.chunkBytes ?? MAX_CHUNK_BYTES, MAX_CHUNK_BYTES);
    this.batchBytes = Math.max(opts.batchBytes ?? 1024 * 1024, this.chunkBytes);
  }

  /** How many chunks have a seq so far (output still being merged into a chunk has none yet). */
  get nextSeq(): number {
    return this.nextSeqValue;
  }
  get outputBytes(): number {
    return this.kept;
  }
  get truncated(): boolean {
    return this.truncatedValue;
  }
  get unackedBytes(): number {
    return this.unacked;
  }
  /** Bytes waiting to be sent on the current connection. */
  get unsentBytes(): number {
    return this.unsent;
  }
  get windowFull(): boolean {
    return this.unacked >= this.windowBytes;
  }
  /** True when every chunk produced so far has been acked. */
  get drained(): boolean {
    return this.unacked === 0;
  }

  append(stream: OutputStream, data: Buffer): void {
    const room = this.opts.maxOutputBytes - this.kept;
    if (data.length > room) {
      this.truncatedValue = true;
      data = data.subarray(0, Math.max(room, 0));
    }
    if (data.length === 0) return;
    this.kept += data.length;
    this.unacked += data.length;
    this.unsent += data.length;
    while (data.length > 0) {
      if (this.open && this.open.stream !== stream) this.seal();
      this.open ??= { stream, parts: [], size: 0 };
      const piece = data.subarray(0, this.chunkBytes - this.open.size);
      this.open.parts.push(piece);
      this.open.size += piece.length;
      data = data.subarray(piece.length);
      if (this.open.size >= this.chunkBytes) this.seal();
    }
  }

  /** Everything not yet sent on this connection, in batches; the chunks count as in flight. */
  takeBatches(): SentBatch[] {
    this.seal();
    const out: SentBatch[] = [];
    let current: SentBatch | null = null;
    for (const chunk of this.chunks.values()) {
      if (chunk.sent) continue;
      if (!current || current.batch.chunks.length >= MAX_CHUNKS_PER_BATCH || current.bytes + chunk.data.length > this.batchBytes) {
        current = { batch: { executionId: this.executionId, chunks: [] }, firstSeq: chunk.seq, lastSeq: chunk.seq, bytes: 0 };
        out.push(current);
      }
      current.batch.chunks.push({ seq: chunk.seq, stream: chunk.stream, data: chunk.data });
      current.lastSeq = chunk.seq;
      current.bytes += chunk.data.length;
      chunk.sent = true;
      this.unsent -= chunk.data.length;
    }
    return out;
  }

  /** A batch was stored up to `ackedSeq`; any later chunk of it goes out again. */
  ack(sent: SentBatch, ackedSeq: number): void {
    for (let seq = sent.firstSeq; seq <= sent.lastSeq; seq++) {
      const chunk = this.chunks.get(seq);
      if (!chunk) continue;
      if (seq <= ackedSeq) this.remove(chunk);
      else this.markUnsent(chunk);
    }
  }

  /** A batch was refused or lost: its chunks go out again. */
  unsend(sent: SentBatch): void {
    for (let seq = sent.firstSeq; seq <= sent.lastSeq; seq++) {
      const chunk = this.chunks.get(seq);
      if (chunk) this.markUnsent(chunk);
    }
  }

  /** Give up on a batch (refused too often): its chunks are dropped as if stored. */
  drop(sent: SentBatch): void {
    this.ack(sent, sent.lastSeq);
  }

  /** After a reconnect: the control plane holds everything below `fromSeq`; everything else is resent. */
  resendFrom(fromSeq = 0): void {
    for (const chunk of this.chunks.values()) {
      if (chunk.seq < fromSeq) this.remove(chunk);
      else this.markUnsent(chunk);
    }
  }

  private markUnsent(chunk: Chunk): void {
    if (!chunk.sent) return;
    chunk.sent = false;
    this.unsent += chunk.data.length;
  }

  private remove(chunk: Chunk): void {
    this.chunks.delete(chunk.seq);
    this.unacked -= chunk.data.length;
    if (!chunk.sent) this.unsent -= chunk.data.length;
  }

  private seal(): void {
    if (!this.open) return;
    const seq = this.nextSeqValue++;
    const data = (this.open.parts.length === 1 ? this.open.parts[0]! : Buffer.concat(this.open.parts, this.open.size)) as Buffer<ArrayBuffer>;
    this.chunks.set(seq, { seq, stream: this.open.stream, data, sent: false });
    this.open = null;
  }
}

/** Reports (`execution.spawned`, `execution.finished`), one per execution, kept until the control plane acks them. */
export class ReportOutbox<R extends { executionId: string }> {
  private readonly reports = new Map<string, { report: R; sent: boolean }>();

  add(report: R): void {
    this.reports.set(report.executionId, { report, sent: false });
  }
  /** Reports not yet sent on this connection; they count as in flight. */
  takeUnsent(): R[] {
    const out: R[] = [];
    for (const entry of this.reports.values()) {
      if (entry.sent) continue;
      entry.sent = true;
      out.push(entry.report);
    }
    return out;
  }
  all(): R[] {
    return [...this.reports.values()].map((e) => e.report);
  }
  settle(executionId: string): void {
    this.reports.delete(executionId);
  }
  /** After a disconnect nothing is in flight any more. */
  unsendAll(): void {
    for (const entry of this.reports.values()) entry.sent = false;
  }
  get size(): number {
    return this.reports.size;
  }
}

/** `execution.finished` reports kept until the control plane acks them. */
export class FinishedOutbox extends ReportOutbox<ExecutionFinished> {}
