import { Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { ClusterNews } from './cluster-news.js';
import { ExecutionEvents, type StatusChanged } from './execution-events.js';
import { ExecutionOutputStore, OUTPUT_PAGE_ROWS, type StoredChunk } from './execution-output.service.js';
import { ExecutionsService } from './executions.service.js';
import { type CursorOptions, type CursorSource, OutputCursor, POLL_MS } from './output-cursor.js';

type Limit = <T>(read: () => Promise<T>) => Promise<T>;

/** How long an idle poll's answer is shared with other readers' polls (a quarter of the poll interval). */
const POLL_SHARE_MS = POLL_MS / 4;

/**
 * Opens output cursors (see OutputCursor): `for await (const item of outputs.cursor(...))`.
 * `cursor()` feeds each one from this process's events; `detached()` leaves the feeding to the
 * caller (the dashboard feed, which fans chunks out to many viewers at once).
 */
@Injectable()
export class OutputCursors implements OnModuleInit, OnModuleDestroy {
  private readonly open = new Map<string, Set<{ workspaceId: string; cursor: OutputCursor }>>();
  private readonly subscriptions: Subscription[] = [];
  /** Idle polls' reads of the last moment, by what they read (see recently()). */
  private readonly recentPolls = new Map<string, Promise<unknown>>();
  /** Limited reads waiting for their turn, by what they read (see shared()). */
  private readonly waitingReads = new Map<string, { started: boolean; promise: Promise<unknown> }>();

  constructor(
    private readonly store: ExecutionOutputStore,
    private readonly executions: ExecutionsService,
    private readonly events: ExecutionEvents,
    private readonly news: ClusterNews,
  ) {}

  onModuleInit(): void {
    this.subscriptions.push(
      this.events.output.subscribe((e) => {
        const chunk: StoredChunk = { seq: e.seq, stream: e.stream, data: e.data };
        for (const o of this.open.get(e.executionId) ?? []) if (o.workspaceId === e.workspaceId) o.cursor.push(chunk);
      }),
      this.events.status.subscribe((e) => this.onStatus(e)),
      // Another node stored output or changed a status: its readers here hear of it at once.
      this.news.outputElsewhere.subscribe((e) => {
        for (const o of this.open.get(e.executionId) ?? []) if (o.workspaceId === e.workspaceId) o.cursor.nudge();
      }),
      this.news.statusElsewhere.subscribe((e) => this.onStatus(e)),
    );
  }

  private onStatus(e: StatusChanged): void {
    for (const o of this.open.get(e.executionId) ?? []) {
      if (o.workspaceId === e.workspaceId) o.cursor.pushStatus({ status: e.status, exitCode: e.exitCode });
    }
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

  private source(workspaceId: string, limit?: Limit): CursorSource {
    const run = <T>(key: string, poll: boolean, read: () => Promise<T>): Promise<T> => {
      const limited = () => (limit ? this.shared(key, limit, read) : read());
      return poll ? this.recently(key, limited) : limited();
    };
    return {
      pageRows: OUTPUT_PAGE_ROWS,
      page: (id, after, poll) => run(`page:${id}:${after}`, poll, () => this.store.page(id, after, OUTPUT_PAGE_ROWS)),
      status: (id, poll) =>
        run(`status:${workspaceId}:${id}`, poll, async () => {
          const view = await this.executions.get(workspaceId, id);
          return { status: view.status, exitCode: view.exitCode };
        }),
    };
  }

  /**
   * An idle poll's read, shared with the same poll read made in the last POLL_SHARE_MS: polls
   * exist to catch what another node stored within a few seconds, and many readers of one
   * execution (a thousand viewers) would otherwise each read the same rows every interval.
   */
  private recently<T>(key: string, read: () => Promise<T>): Promise<T> {
    const recent = this.recentPolls.get(key);
    if (recent) return recent as Promise<T>;
    const promise = read();
    this.recentPolls.set(key, promise);
    const forget = () => setTimeout(() => this.recentPolls.delete(key), POLL_SHARE_MS).unref();
    promise.then(forget, () => this.recentPolls.delete(key));
    return promise;
  }

  /**
   * Runs `read` under `limit`, shared with the same read asked for while this one still waits
   * for its turn: a thousand viewers of one execution polling it cost about one read. Only reads
   * that have not started are joined, so a caller never gets a snapshot older than its request.
   */
  private shared<T>(key: string, limit: Limit, read: () => Promise<T>): Promise<T> {
    const waiting = this.waitingReads.get(key);
    if (waiting) return waiting.promise as Promise<T>;
    const entry: { started: boolean; promise: Promise<unknown> } = { started: false, promise: Promise.resolve() };
    const promise = limit(() => {
      entry.started = true;
      if (this.waitingReads.get(key) === entry) this.waitingReads.delete(key);
      return read();
    });
    entry.promise = promise;
    if (!entry.started) {
      this.waitingReads.set(key, entry);
      const forget = () => {
        if (this.waitingReads.get(key) === entry) this.waitingReads.delete(key);
      };
      promise.then(forget, forget);
    }
    return promise;
  }
}
