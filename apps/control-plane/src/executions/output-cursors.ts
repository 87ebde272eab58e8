import { Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { ExecutionEvents } from './execution-events.js';
import { ExecutionOutputStore, OUTPUT_PAGE_ROWS, type StoredChunk } from './execution-output.service.js';
import { ExecutionsService } from './executions.service.js';
import { type CursorOptions, type CursorSource, OutputCursor } from './output-cursor.js';

type Limit = <T>(read: () => Promise<T>) => Promise<T>;

/**
 * Opens output cursors (see OutputCursor): `for await (const item of outputs.cursor(...))`.
 * `cursor()` feeds each one from this process's events; `detached()` leaves the feeding to the
 * caller (the dashboard feed, which fans chunks out to many viewers at once).
 */
@Injectable()
export class OutputCursors implements OnModuleInit, OnModuleDestroy {
  private readonly open = new Map<string, Set<{ workspaceId: string; cursor: OutputCursor }>>();
  private readonly subscriptions: Subscription[] = [];

  constructor(
    private readonly store: ExecutionOutputStore,
    private readonly executions: ExecutionsService,
    private readonly events: ExecutionEvents,
  ) {}

  onModuleInit(): void {
    this.subscriptions.push(
      this.events.output.subscribe((e) => {
        const chunk: StoredChunk = { seq: e.seq, stream: e.stream, data: e.data };
        for (const o of this.open.get(e.executionId) ?? []) if (o.workspaceId === e.workspaceId) o.cursor.push(chunk);
      }),
      this.events.status.subscribe((e) => {
        for (const o of this.open.get(e.executionId) ?? []) {
          if (o.workspaceId === e.workspaceId) o.cursor.pushStatus({ status: e.status, exitCode: e.exitCode });
        }
      }),
    );
  }

  onModuleDestroy(): void {
    for (const s of this.subscriptions) s.unsubscribe();
    for (const set of this.open.values()) for (const o of set) o.cursor.close();
  }

  /** A cursor over a workspace's execution after `afterSeq`, fed with this process's live events from now on. */
  cursor(workspaceId: string, executionId: string, afterSeq: number, options?: CursorOptions): OutputCursor {
    let set = this.open.get(executionId);
    if (!set) this.open.set(executionId, (set = new Set()));
    const entry = {
      workspaceId,
      cursor: new OutputCursor(executionId, afterSeq, this.source(workspaceId), options, () => {
        set.delete(entry);
        if (set.size === 0 && this.open.get(executionId) === set) this.open.delete(executionId);
      }),
    };
    set.add(entry);
    return entry.cursor;
  }

  /**
   * A cursor the caller feeds (push, pushStatus, takeLive). `limit` runs each of its database
   * reads (pages and status polls), so the caller can bound how many run at once.
   */
  detached(
    workspaceId: string,
    executionId: string,
    afterSeq: number,
    options?: CursorOptions & { limit?: Limit },
    onEnd?: (cursor: OutputCursor) => void,
  ): OutputCursor {
    return new OutputCursor(executionId, afterSeq, this.source(workspaceId, options?.limit), options, onEnd);
  }

  /** How many event-fed cursors are open (for tests). */
  get openCursors(): number {
    let n = 0;
    for (const set of this.open.values()) n += set.size;
    return n;
  }

  private source(workspaceId: string, limit: Limit = (read) => read()): CursorSource {
    return {
      pageRows: OUTPUT_PAGE_ROWS,
      page: (id, after) => limit(() => this.store.page(id, after, OUTPUT_PAGE_ROWS)),
      status: (id) =>
        limit(async () => {
          const view = await this.executions.get(workspaceId, id);
          return { status: view.status, exitCode: view.exitCode };
        }),
    };
  }
}
