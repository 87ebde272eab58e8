import { type ExecutionStatus, isTerminal } from '@app/protocol';
import type { StoredChunk } from './execution-output.service.js';

/** An execution's status as a reader is told it. */
export interface CursorStatus {
  status: ExecutionStatus;
  exitCode: number | null;
}

/**
 * What a cursor yields, in order: output chunks (each seq once, ascending, never past a hole),
 * status changes (after the output stored before them), and `idle` when nothing happened for a
 * poll interval (a transport's moment for a keep-alive).
 *
 * `live` on a chunk: the cursor had caught up with the stored output before it came, so it is
 * news rather than backlog (a viewer behind on news is hopeless; one behind on backlog may wait).
 */
export type CursorItem =
  | { kind: 'output'; chunk: StoredChunk; live: boolean }
  | ({ kind: 'status' } & CursorStatus)
  | { kind: 'idle' };

/**
 * The database as a cursor reads it. `poll`: the read is an idle re-read, not a response to news,
 * so an answer a moment old will do (the source may share it among readers).
 */
export interface CursorSource {
  /** Up to `pageRows` stored chunks after `afterSeq`, in seq order. */
  page(executionId: string, afterSeq: number, poll: boolean): Promise<StoredChunk[]>;
  readonly pageRows: number;
  status(executionId: string, poll: boolean): Promise<CursorStatus>;
}

export interface CursorOptions {
  /** The status already looked up by the caller (saves a read). */
  initial?: CursorStatus;
  /** false: the status at the start is not yielded unless it is terminal (the reader knows it). */
  announceInitial?: boolean;
  pollMs?: number;
  gapRetryMs?: number;
  gapRetries?: number;
  maxHeldBytes?: number;
  maxHeldChunks?: number;
}

/** Re-reads the database this often while nothing happens: catches what another node stored. */
export const POLL_MS = 2_000;
/** A hole in the stored output (a batch still committing): re-read this often, this many times, then every POLL_MS. */
const GAP_RETRY_MS = 250;
const GAP_RETRIES = 20;
/** Live chunks held for one reader; past this they are dropped and read from the database instead. */
const MAX_HELD_BYTES = 4 * 1024 * 1024;
const MAX_HELD_CHUNKS = 1024;

const rank = (s: ExecutionStatus): number => (isTerminal(s) ? 3 : s === 'running' ? 2 : s === 'dispatched' ? 1 : 0);

/**
 * One reader's view of one execution's output: the stored backlog after `afterSeq`, then live
 * chunks, in seq order, each once, never past a hole; it ends after the terminal status, once the
 * output stored up to then was delivered. Both live transports (SSE and the dashboard socket) read
 * through it: `for await (const item of cursor) ...`.
 *
 * Live news is pushed in (`push`, `pushStatus`) from the moment the cursor exists, so nothing
 * falls between the backlog read and the live events; the database, read page by page through
 * `source`, is the truth for everything else: a chunk past a hole, held chunks that overflowed
 * (a slow reader), and output another node stored (re-read every `pollMs` while idle).
 *
 * A hole in stored output is normally a batch still committing: the cursor waits for it. Once the
 * execution is terminal and a hole stays for the whole gap retry period, the run ended without
 * that chunk (the control plane may end a run without its output); the cursor then delivers what
 * is stored past it, as `GET .../output` does, so the reader still gets everything stored.
 */
export class OutputCursor implements AsyncIterable<CursorItem> {
  private last: number;
  private readonly held = new Map<number, StoredChunk>();
  private heldBytes = 0;
  private overflowed = false;
  /** Another node stored output: the database is newer than what was read. */
  private stale = false;
  private newStatus: CursorStatus | null = null;
  private closed = false;
  private started = false;
  private ended = false;
  /** Waiting for news, with nothing held and no hole: takeLive may pass chunks by. */
  private parked = false;
  /** Caught up with the stored output at least once since the last overflow. */
  private caughtUp = false;
  /** Waiting for the chunk that fills a hole: only that chunk (or a status) wakes it. */
  private inHole = false;
  private taken = 0;
  private initial: CursorStatus | undefined;
  private wake: (() => void) | null = null;
  private readonly pollMs: number;
  private readonly gapRetryMs: number;
  private readonly gapRetries: number;
  private readonly maxHeldBytes: number;
  private readonly maxHeldChunks: number;

  constructor(
    readonly executionId: string,
    afterSeq: number,
    private readonly source: CursorSource,
    private readonly options: CursorOptions = {},
    private readonly onEnd?: (cursor: OutputCursor) => void,
  ) {
    this.last = afterSeq;
    this.initial = options.initial;
    this.pollMs = options.pollMs ?? POLL_MS;
    this.gapRetryMs = options.gapRetryMs ?? GAP_RETRY_MS;
    this.gapRetries = options.gapRetries ?? GAP_RETRIES;
    this.maxHeldBytes = options.maxHeldBytes ?? MAX_HELD_BYTES;
    this.maxHeldChunks = options.maxHeldChunks ?? MAX_HELD_CHUNKS;
  }

  /** The last seq delivered (or taken). */
  get lastSeq(): number {
    return this.last;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The status as the caller just read it, before iterating (saves the cursor a read). */
  know(s: CursorStatus): void {
    if (!this.started) this.initial = s;
  }

  /** A chunk this process just stored. Duplicates and chunks already delivered are dropped. */
  push(c: StoredChunk): void {
    if (this.closed || c.seq <= this.last || this.held.has(c.seq)) return;
    if (this.heldBytes + c.data.length > this.maxHeldBytes || this.held.size >= this.maxHeldChunks) {
      // The database has them: read it again rather than hold more.
      this.overflowed = true;
      this.held.clear();
      this.heldBytes = 0;
      this.signal();
      return;
    }
    this.held.set(c.seq, c);
    this.heldBytes += c.data.length;
    if (!this.inHole || c.seq === this.last + 1) this.signal();
  }

  /** Another node stored output of this execution: read the database now, not at the next poll. */
  nudge(): void {
    if (this.closed) return;
    this.stale = true;
    this.signal();
  }

  /** The execution's status changed (committed). */
  pushStatus(s: CursorStatus): void {
    if (this.closed) return;
    this.newStatus = s;
    this.signal();
  }

  /**
   * Takes `c` as delivered by the caller when it is the very next chunk and the cursor is idle
   * and caught up: the dashboard sends it to every viewer in step in one broadcast, encoded once.
   * False changes nothing (the caller pushes it instead).
   */
  takeLive(c: StoredChunk): boolean {
    if (!this.parked || c.seq !== this.last + 1) return false;
    this.last = c.seq;
    this.taken++;
    return true;
  }

  /** Ends the cursor: the iteration finishes and nothing more is held. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.held.clear();
    this.heldBytes = 0;
    this.signal();
    if (!this.started) this.end();
  }

  [Symbol.asyncIterator](): AsyncIterator<CursorItem> {
    if (this.started) throw new Error('an output cursor is read once');
    this.started = true;
    return this.run();
  }

  private async *run(): AsyncGenerator<CursorItem> {
    try {
      if (this.closed) return;
      let current = this.initial ?? (await this.source.status(this.executionId, false));
      let announced: ExecutionStatus | null = this.options.announceInitial === false && !isTerminal(current.status) ? current.status : null;
      let mustRead = true;
      /** The read due is only the idle poll's. */
      let polling = false;
      let holeWaits = 0;
      while (!this.closed) {
        if (this.newStatus) {
          // Statuses only move forward; an event can be older than what a poll just read.
          if (rank(this.newStatus.status) > rank(current.status)) current = this.newStatus;
          this.newStatus = null;
          mustRead = true;
          polling = false;
        }
        if (this.stale) {
          this.stale = false;
          mustRead = true;
          polling = false;
        }
        if (this.overflowed) {
          this.overflowed = false;
          this.caughtUp = false;
          mustRead = true;
          polling = false;
        }
        yield* this.flushHeld();
        let hole = this.held.size > 0;
        const before = this.last;
        if (mustRead || hole) {
          mustRead = false;
          hole = yield* this.readStored(isTerminal(current.status) && holeWaits > this.gapRetries, polling && !hole);
          polling = false;
          yield* this.flushHeld();
          hole ||= this.held.size > 0;
        }
        if (this.closed) return;
        if (this.overflowed || this.newStatus || this.stale) continue;
        if (hole) {
          // Held chunks carried it past the hole the page stopped at: read on at once.
          if (this.last !== before) {
            mustRead = true;
            continue;
          }
          holeWaits++;
          const slow = holeWaits > this.gapRetries;
          this.inHole = true;
          const woke = await this.park(slow ? this.pollMs : this.gapRetryMs, false);
          this.inHole = false;
          // A hole that lasts: is the run over (then it may never be filled)?
          if (!woke && slow && !isTerminal(current.status)) this.noteStatus(await this.source.status(this.executionId, true));
          mustRead = true;
          continue;
        }
        holeWaits = 0;
        if (current.status !== announced) {
          announced = current.status;
          yield { kind: 'status', status: current.status, exitCode: current.exitCode };
        }
        if (isTerminal(current.status)) return;

        this.caughtUp = true;
        const takenBefore = this.taken;
        // Spread out: many readers subscribed at one moment would otherwise poll together.
        const woke = await this.park(this.pollMs * (0.75 + Math.random() / 2), true);
        // Chunks went by through takeLive meanwhile: this node has the news, no need to poll.
        if (woke || this.closed || this.taken !== takenBefore) continue;
        yield { kind: 'idle' };
        if (this.closed) return;
        const polled = await this.source.status(this.executionId, true);
        mustRead = true;
        // A status that moved is news: the output stored before it is read afresh, not shared.
        polling = rank(polled.status) <= rank(current.status);
        if (!polling) current = polled;
      }
    } finally {
      this.closed = true;
      this.parked = false;
      this.held.clear();
      this.heldBytes = 0;
      this.end();
    }
  }

  /** A status read from the database; a live event that came meanwhile may be newer. */
  private noteStatus(s: CursorStatus): void {
    if (!this.newStatus || rank(s.status) > rank(this.newStatus.status)) this.newStatus = s;
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd?.(this);
  }

  /** Stored chunks after the last delivered, page by page; true when it stopped at a hole. */
  private async *readStored(skipHoles: boolean, poll: boolean): AsyncGenerator<CursorItem, boolean> {
    for (;;) {
      const page = await this.source.page(this.executionId, this.last, poll);
      for (const c of page) {
        if (this.closed) return false;
        if (c.seq <= this.last) continue;
        if (c.seq !== this.last + 1 && !skipHoles) return true;
        yield this.deliver(c, false);
      }
      if (page.length < this.source.pageRows || this.closed) return false;
    }
  }

  /** Held chunks that continue the delivered ones; drops those delivered meanwhile from the database. */
  private *flushHeld(): Generator<CursorItem> {
    for (const seq of [...this.held.keys()]) {
      if (seq <= this.last) this.drop(seq);
    }
    for (let c = this.held.get(this.last + 1); c && !this.closed; c = this.held.get(this.last + 1)) {
      yield this.deliver(c, this.caughtUp);
    }
  }

  private deliver(c: StoredChunk, live: boolean): CursorItem {
    this.drop(c.seq);
    this.last = c.seq;
    return { kind: 'output', chunk: c, live };
  }

  private drop(seq: number): void {
    const c = this.held.get(seq);
    if (!c) return;
    this.held.delete(seq);
    this.heldBytes -= c.data.length;
  }

  /** Waits for news or `ms`; true when woken by news (or a close). */
  private park(ms: number, parked: boolean): Promise<boolean> {
    if (this.closed) return Promise.resolve(true);
    this.parked = parked;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        this.parked = false;
        resolve(false);
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        this.parked = false;
        resolve(true);
      };
    });
  }

  private signal(): void {
    this.wake?.();
  }
}
