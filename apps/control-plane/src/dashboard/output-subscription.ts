import type { ExecutionStatusEvent } from '@app/protocol';
import type { StoredChunk } from '../executions/execution-output.service.js';
import type { OutputCursor } from '../executions/output-cursor.js';
import type { Viewer } from './viewer.js';

/** How long a viewer may stay behind while its backlog is sent before it is told to resubscribe. */
const CATCH_UP_STALL_MS = 30_000;

/**
 * One viewer watching one execution: the `/dashboard` adapter over an output cursor, which decides
 * what comes in which order (backlog after `afterSeq`, live chunks, statuses; each seq once, never
 * past a hole). This writes the cursor's items to the socket and watches the viewer's pace.
 *
 * The fast path stays outside the cursor's iteration: while the cursor is idle and caught up,
 * `takeLive` lets the feed send the next chunk to every viewer in step in one broadcast.
 */
export class OutputSubscription {
  private closedFlag = false;

  constructor(
    readonly executionId: string,
    readonly viewer: Viewer,
    private readonly cursor: OutputCursor,
    private readonly onClose: (sub: OutputSubscription) => void,
    private readonly onError: (sub: OutputSubscription, err: unknown) => void,
  ) {}

  get closed(): boolean {
    return this.closedFlag;
  }

  /** The last seq sent or taken. */
  get lastSeq(): number {
    return this.cursor.lastSeq;
  }

  /** Sends what the cursor yields until it ends (after the terminal status) or the subscription closes. */
  start(): void {
    void this.pump();
  }

  /**
   * Takes `c` as sent when it is the next chunk of a caught-up subscription whose viewer keeps up:
   * the caller then sends it with the others that took it, encoded once. False changes nothing
   * (the caller hands it to onChunk).
   */
  takeLive(c: StoredChunk): boolean {
    return !this.closedFlag && !this.viewer.behind && this.cursor.takeLive(c);
  }

  onChunk(c: StoredChunk): void {
    this.cursor.push(c);
  }

  /** Another node stored output of this execution. */
  nudge(): void {
    this.cursor.nudge();
  }

  onStatus(e: ExecutionStatusEvent): void {
    this.cursor.pushStatus({ status: e.status, exitCode: e.exitCode ?? null });
  }

  /** Drops the subscription and tells the viewer to ask again from the last seq it holds. */
  resubscribe(reason: string): void {
    if (this.closedFlag) return;
    this.viewer.sendResubscribe(this.executionId, reason);
    this.close();
  }

  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.cursor.close();
    this.onClose(this);
  }

  private async pump(): Promise<void> {
    try {
      for await (const item of this.cursor) {
        if (this.closedFlag) return;
        if (item.kind === 'output') {
          if (this.viewer.behind) {
            // Behind on news: it would only fall further back. Behind on backlog: it may catch up.
            if (item.live || !(await this.viewer.waitUntilCaughtUp(CATCH_UP_STALL_MS))) {
              return this.resubscribe('the viewer fell too far behind');
            }
            if (this.closedFlag) return;
          }
          this.viewer.sendOutput(this.executionId, item.chunk);
        } else if (item.kind === 'status') {
          this.viewer.sendStatus({ executionId: this.executionId, status: item.status, exitCode: item.exitCode });
        }
      }
      this.close();
    } catch (err) {
      this.onError(this, err);
      this.resubscribe('the feed could not read the stored output');
    }
  }
}
