import { type ExecutionStatusEvent, isTerminal } from '@app/protocol';
import type { StoredChunk } from '../executions/execution-output.service.js';
import type { Viewer } from './viewer.js';

/** Live chunks held while the backlog is read; past this they are dropped and re-read from the database. */
const MAX_HELD_BYTES = 4 * 1024 * 1024;
const MAX_HELD_ITEMS = 1024;
/** How long a viewer may stay behind while its backlog is sent before it is told to resubscribe. */
const CATCH_UP_STALL_MS = 30_000;
/** A live chunk after a gap that the database does not fill (yet): re-read this often, this many times. */
const GAP_RETRY_MS = 250;
const GAP_RETRIES = 20;

type Held = { kind: 'chunk'; chunk: StoredChunk } | { kind: 'status'; event: ExecutionStatusEvent };

export interface SubscriptionSource {
  /** Up to `rows` stored chunks after `afterSeq`, in seq order. */
  readPage(executionId: string, afterSeq: number): Promise<StoredChunk[]>;
  readonly pageRows: number;
}

/**
 * One viewer watching one execution: the stored backlog after `afterSeq`, then live chunks, each
 * seq sent once and in order.
 *
 * The live listener is registered (by the caller) before the backlog is read, and whatever
 * arrives meanwhile is held. After the last page the held chunks with a seq above the last one
 * sent are flushed, then chunks pass straight through. `lastSent` drops anything already sent,
 * whichever path it came by. A live chunk after a gap, or held chunks that overflowed, send the
 * subscription back to the database, which holds every chunk an event was emitted for.
 */
export class OutputSubscription {
  private mode: 'catching-up' | 'live' | 'closed' = 'catching-up';
  private lastSent: number;
  private held: Held[] = [];
  private heldBytes = 0;
  private overflowed = false;
  private reading = false;

  constructor(
    readonly executionId: string,
    readonly viewer: Viewer,
    afterSeq: number,
    private readonly source: SubscriptionSource,
    private readonly onClose: (sub: OutputSubscription) => void,
    private readonly onError: (sub: OutputSubscription, err: unknown) => void,
  ) {
    this.lastSent = afterSeq;
  }

  get closed(): boolean {
    return this.mode === 'closed';
  }

  get isLive(): boolean {
    return this.mode === 'live';
  }

  /**
   * Reads the backlog, then goes live. `endAfterBacklog`: the execution was already over when
   * the subscription started (so every chunk is stored), nothing more will come.
   */
  start(endAfterBacklog = false): void {
    this.catchUp()
      .then(() => {
        if (endAfterBacklog && this.mode === 'live') this.close();
      })
      .catch((err: unknown) => {
        this.onError(this, err);
        this.resubscribe('the feed could not read the stored output');
      });
  }

  /**
   * Takes `c` as sent when it is the next chunk of a live subscription whose viewer keeps up: the
   * caller then sends it with the others that took it, encoded once. False changes nothing (the
   * caller hands it to onChunk).
   */
  takeLive(c: StoredChunk): boolean {
    if (this.mode !== 'live' || c.seq !== this.lastSent + 1 || this.viewer.behind) return false;
    this.lastSent = c.seq;
    return true;
  }

  onChunk(c: StoredChunk): void {
    if (this.mode === 'closed' || c.seq <= this.lastSent) return;
    if (this.mode === 'catching-up') return this.hold({ kind: 'chunk', chunk: c }, c.data.length);
    if (c.seq !== this.lastSent + 1) {
      // Stored, but its predecessor reached us by no event: fill the gap from the database.
      this.hold({ kind: 'chunk', chunk: c }, c.data.length);
      return this.start();
    }
    if (this.viewer.behind) return this.resubscribe('the viewer fell too far behind');
    this.send(c);
  }

  onStatus(e: ExecutionStatusEvent): void {
    if (this.mode === 'closed') return;
    if (this.mode === 'catching-up') return this.hold({ kind: 'status', event: e }, 0);
    this.viewer.sendStatus(e);
    if (isTerminal(e.status)) this.close();
  }

  /** Drops the subscription and tells the viewer to ask again from the last seq it holds. */
  resubscribe(reason: string): void {
    if (this.mode === 'closed') return;
    this.viewer.sendResubscribe(this.executionId, reason);
    this.close();
  }

  close(): void {
    if (this.mode === 'closed') return;
    this.mode = 'closed';
    this.held = [];
    this.heldBytes = 0;
    this.onClose(this);
  }

  private send(c: StoredChunk): void {
    this.viewer.sendOutput(this.executionId, c);
    this.lastSent = c.seq;
  }

  private hold(item: Held, bytes: number): void {
    if (item.kind === 'chunk' && (this.heldBytes + bytes > MAX_HELD_BYTES || this.held.length >= MAX_HELD_ITEMS)) {
      // The database has them: read it again rather than hold more.
      this.overflowed = true;
      this.held = this.held.filter((h) => h.kind === 'status');
      this.heldBytes = 0;
      return;
    }
    this.held.push(item);
    this.heldBytes += bytes;
  }

  private async catchUp(): Promise<void> {
    this.mode = 'catching-up';
    if (this.reading) return; // the running loop sees the new held chunks before it goes live
    this.reading = true;
    try {
      let emptyRetries = 0;
      for (;;) {
        if (this.closed) return;
        const before = this.lastSent;
        const page = await this.source.readPage(this.executionId, this.lastSent);
        if (this.closed) return;
        // Stored output can have a hole for a moment: batches of one execution commit in either
        // order. Never send past it: the missing chunk is still committing, read again.
        let hole = false;
        for (const c of page) {
          if (c.seq <= this.lastSent) continue;
          if (c.seq !== this.lastSent + 1) {
            hole = true;
            break;
          }
          this.send(c);
        }
        if (this.viewer.behind && !(await this.viewer.waitUntilCaughtUp(CATCH_UP_STALL_MS))) {
          return this.resubscribe('the viewer fell too far behind');
        }
        if (page.length === this.source.pageRows && !hole) continue;
        if (this.overflowed) {
          this.overflowed = false;
          continue;
        }
        if (!hole && this.flushHeld()) {
          if (!this.closed) this.mode = 'live';
          return;
        }
        // A hole in the page, or a held chunk past a gap the database did not fill: it may still be committing elsewhere.
        emptyRetries = this.lastSent === before ? emptyRetries + 1 : 0;
        if (emptyRetries > GAP_RETRIES) return this.resubscribe('output is missing a chunk');
        if (emptyRetries > 0) await new Promise((r) => setTimeout(r, GAP_RETRY_MS));
      }
    } finally {
      this.reading = false;
    }
  }

  /** Sends the held items in order; false (keeping the rest) when a chunk lies past a gap. */
  private flushHeld(): boolean {
    while (this.held.length) {
      const item = this.held[0]!;
      if (item.kind === 'chunk') {
        if (item.chunk.seq > this.lastSent + 1) return false;
        if (item.chunk.seq === this.lastSent + 1) this.send(item.chunk);
        this.heldBytes -= item.chunk.data.length;
      } else {
        this.viewer.sendStatus(item.event);
        if (isTerminal(item.event.status)) {
          this.held.shift();
          this.close();
          return true;
        }
      }
      this.held.shift();
    }
    return true;
  }
}
