import {
  DashboardEvents,
  type ExecutionStatus,
  type ExecutionStatusEvent,
  parseMessage,
  protocolError,
  type ProtocolErrorCode,
  SubscribeExecution,
  type SubscribeReply,
  UnsubscribeExecution,
  type UnsubscribeReply,
  VIEWER_TEXT_OUTPUT_MAX_BYTES,
} from '@app/protocol';
import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Subscription } from 'rxjs';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ClusterNews, type OutputElsewhere } from '../executions/cluster-news.js';
import { ExecutionEvents, type OutputStored, type StatusChanged } from '../executions/execution-events.js';
import { ExecutionOutputStore, OUTPUT_PAGE_ROWS, type StoredChunk } from '../executions/execution-output.service.js';
import type { Execution } from '../executions/execution.entity.js';
import { OutputCursors } from '../executions/output-cursors.js';
import { rows } from '../executions/sql.js';
import { ServerEvents } from '../servers/server-events.js';
import { OutputSubscription } from './output-subscription.js';
import { Semaphore } from './semaphore.js';
import { MAX_SUBSCRIPTIONS, Viewer, type ViewerNamespace, type ViewerSocket, workspaceRoom } from './viewer.js';

const refuse = (code: ProtocolErrorCode, message: string): SubscribeReply => ({ ok: false, ...protocolError(code, message) });
const NOT_FOUND = refuse('NOT_FOUND', 'Execution not found');

/**
 * The `/dashboard` feed's state and fan-out. Per socket only (which viewer watches what, and
 * how far it got), so another node can hold other viewers. The in-process events are the
 * source: they say what this process committed.
 *
 * Nothing here ever waits on a viewer while handling an event: an event is turned into emits
 * (which only append to each socket's buffer) within the same tick. A viewer that does not read
 * fills its own buffer, is noticed, and is told to resubscribe.
 */
@Injectable()
export class DashboardFeed implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(DashboardFeed.name);
  private nsp: ViewerNamespace | null = null;
  private readonly viewers = new Map<string, Viewer>();
  /** Subscriptions per execution (for the fan-out) and per viewer (for limits and cleanup). */
  private readonly byExecution = new Map<string, Set<OutputSubscription>>();
  private readonly byViewer = new Map<string, Map<string, OutputSubscription>>();
  private readonly subscriptions: Subscription[] = [];
  /** Executions whose output another node stored being read for this node's viewers; `again`: more news meanwhile. */
  private readonly remoteReads = new Map<string, { again: boolean }>();
  /** Viewers' database reads (backlog pages, idle polls) in flight at once: they never take the pool from the agents' writes. */
  private readonly backlogReads: Semaphore;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @InjectDataSource() private readonly db: DataSource,
    private readonly cursors: OutputCursors,
    private readonly executionEvents: ExecutionEvents,
    private readonly serverEvents: ServerEvents,
    private readonly news: ClusterNews,
    private readonly store: ExecutionOutputStore,
  ) {
    this.backlogReads = new Semaphore(Math.max(1, Math.floor(config.dbPoolSize / 4)));
  }

  attach(nsp: ViewerNamespace): void {
    this.nsp = nsp;
  }

  onModuleInit(): void {
    const guard =
      <T>(what: string, fn: (e: T) => void) =>
      (e: T) => {
        // A subject's listener that throws would end the subscription for everyone after it.
        try {
          fn(e);
        } catch (err) {
          this.logger.error({ err }, `dashboard feed: ${what} failed`);
        }
      };
    this.subscriptions.push(
      this.executionEvents.output.subscribe(guard('output', (e: OutputStored) => this.onOutput(e))),
      this.executionEvents.status.subscribe(guard('status', (e: StatusChanged) => this.onStatus(e))),
      this.news.statusElsewhere.subscribe(guard('status from another node', (e: StatusChanged) => this.onStatus(e))),
      this.news.outputElsewhere.subscribe(guard('output from another node', (e: OutputElsewhere) => this.onOutputElsewhere(e))),
      this.executionEvents.created.subscribe(guard('created', (e: Execution) => this.onCreated(e))),
      this.serverEvents.statusChanged.subscribe(
        guard('server status', (e: { serverId: string; workspaceId: string; status: 'online' | 'offline' }) =>
          this.nsp?.to(workspaceRoom(e.workspaceId)).emit(DashboardEvents.serverStatus, { serverId: e.serverId, status: e.status }),
        ),
      ),
    );
  }

  onModuleDestroy(): void {
    for (const s of this.subscriptions) s.unsubscribe();
  }

  connected(socket: ViewerSocket): void {
    this.viewer(socket);
  }

  disconnected(socket: ViewerSocket): void {
    const viewer = this.viewers.get(socket.id);
    if (!viewer) return;
    this.viewers.delete(socket.id);
    for (const sub of [...(this.byViewer.get(socket.id)?.values() ?? [])]) sub.close();
    this.byViewer.delete(socket.id);
    viewer.release();
  }

  /**
   * Validates, checks the execution is the viewer's (another workspace's looks missing), then
   * acks and streams. The live listener is in place before the execution is even looked up.
   */
  async subscribe(socket: ViewerSocket, payload: unknown): Promise<SubscribeReply> {
    const parsed = parseMessage(SubscribeExecution, payload);
    if (!parsed.ok) return { ok: false, ...parsed.error };
    const viewer = this.viewer(socket);
    if (!viewer.takeSubscribeToken()) return refuse('RATE_LIMITED', 'Too many subscribe requests; slow down');
    const { executionId } = parsed.value;
    const afterSeq = parsed.value.afterSeq ?? -1;
    const mine = this.byViewer.get(viewer.id) ?? new Map<string, OutputSubscription>();
    // Subscribing again (a resubscribe, a reconnect) replaces the older subscription.
    mine.get(executionId)?.close();
    if (mine.size >= MAX_SUBSCRIPTIONS) {
      return refuse('TOO_MANY_SUBSCRIPTIONS', `At most ${MAX_SUBSCRIPTIONS} executions can be watched at once per connection`);
    }

    const cursor = this.cursors.detached(viewer.workspaceId, executionId, afterSeq, {
      // The viewer fetched the status with the page; it hears of changes, and of the end.
      announceInitial: false,
      limit: (read) => this.backlogReads.run(read),
    });
    const sub = new OutputSubscription(
      executionId,
      viewer,
      cursor,
      (s) => this.forget(s),
      (s, err) => this.logger.error({ err, executionId: s.executionId, socketId: s.viewer.id }, 'backlog read failed'),
    );
    mine.set(executionId, sub);
    this.byViewer.set(viewer.id, mine);
    let forExecution = this.byExecution.get(executionId);
    if (!forExecution) this.byExecution.set(executionId, (forExecution = new Set()));
    forExecution.add(sub);

    let found: { status: ExecutionStatus; exit_code: number | null } | undefined;
    try {
      [found] = await rows<{ status: ExecutionStatus; exit_code: number | null }>(
        this.db,
        `SELECT status, exit_code FROM execution WHERE id = $1 AND workspace_id = $2`,
        [executionId, viewer.workspaceId],
      );
    } catch (err) {
      sub.close();
      this.logger.error({ err, executionId }, 'subscribe: execution lookup failed');
      return refuse('UNAVAILABLE', 'The feed could not look the execution up; retry');
    }
    if (!found) {
      sub.close();
      return NOT_FOUND;
    }
    // Unsubscribed, replaced by a newer subscribe or disconnected while it was looked up.
    if (sub.closed || socket.disconnected) return { ok: true };
    cursor.know({ status: found.status, exitCode: found.exit_code });
    // Started after the ack is on its way, so the viewer sees the ack before the first chunk.
    setImmediate(() => sub.start());
    return { ok: true };
  }

  unsubscribe(socket: ViewerSocket, payload: unknown): UnsubscribeReply {
    const parsed = UnsubscribeExecution.safeParse(payload);
    if (!parsed.success) return { ok: false };
    const { executionId } = parsed.data;
    const sub = this.byViewer.get(socket.id)?.get(executionId);
    sub?.close();
    return { ok: true };
  }

  /** How many subscriptions are open (for tests and health). */
  get openSubscriptions(): number {
    let n = 0;
    for (const s of this.byExecution.values()) n += s.size;
    return n;
  }

  private viewer(socket: ViewerSocket): Viewer {
    let v = this.viewers.get(socket.id);
    if (!v) this.viewers.set(socket.id, (v = new Viewer(socket)));
    return v;
  }

  private forget(sub: OutputSubscription): void {
    const forExecution = this.byExecution.get(sub.executionId);
    forExecution?.delete(sub);
    if (forExecution?.size === 0) this.byExecution.delete(sub.executionId);
    const mine = this.byViewer.get(sub.viewer.id);
    if (mine?.get(sub.executionId) === sub) mine.delete(sub.executionId);
  }

  /**
   * Live viewers that are in step get the chunk in one broadcast, encoded once for all of them
   * (with a thousand viewers, encoding per socket cost most of the fan-out); the others (catching
   * up, after a gap, behind) through their subscription. Text viewers (protocol 4) get one
   * broadcast of base64 text: a single text packet, whose WebSocket frame socket.io builds once
   * for all of them; binary viewers one broadcast of a header and its attachment (every viewer
   * for a chunk larger than VIEWER_TEXT_OUTPUT_MAX_BYTES).
   */
  private onOutput(e: OutputStored): void {
    const subs = this.byExecution.get(e.executionId);
    if (!subs) return;
    const chunk: StoredChunk = { seq: e.seq, stream: e.stream, data: e.data };
    const nsp = this.nsp;
    const text: Viewer[] = [];
    const binary: Viewer[] = [];
    const asText = chunk.data.length <= VIEWER_TEXT_OUTPUT_MAX_BYTES;
    for (const sub of [...subs]) {
      if (sub.viewer.workspaceId !== e.workspaceId) continue;
      if (nsp && sub.takeLive(chunk)) (asText && sub.viewer.textOutput ? text : binary).push(sub.viewer);
      else sub.onChunk(chunk);
    }
    if (!nsp) return;
    const send = (viewers: Viewer[], data: Buffer | string) => {
      nsp.local.to(viewers.map((v) => v.id)).emit(DashboardEvents.output, { executionId: e.executionId, seq: chunk.seq, stream: chunk.stream, data });
      for (const v of viewers) v.queued(data.length);
    };
    if (text.length) send(text, chunk.data.toString('base64'));
    if (binary.length) send(binary, chunk.data);
  }

  /**
   * Another node stored output: this node reads the new chunks once for all its viewers of the
   * execution and fans them out as if it had stored them (one broadcast to the viewers in step),
   * rather than each viewer's cursor reading them on its own. Reads for one execution do not
   * overlap; news during a read makes it read once more.
   */
  private onOutputElsewhere(e: OutputElsewhere): void {
    const watching = () => [...(this.byExecution.get(e.executionId) ?? [])].filter((s) => s.viewer.workspaceId === e.workspaceId && !s.closed);
    if (watching().length === 0) return;
    const running = this.remoteReads.get(e.executionId);
    if (running) {
      running.again = true;
      return;
    }
    const state = { again: false };
    this.remoteReads.set(e.executionId, state);
    void (async () => {
      try {
        do {
          state.again = false;
          const subs = watching();
          if (subs.length === 0) break;
          // The furthest viewer's position: those in step are there; the others read on their own.
          const after = Math.max(...subs.map((s) => s.lastSeq));
          const page = await this.backlogReads.run(() => this.store.page(e.executionId, after, OUTPUT_PAGE_ROWS));
          for (const c of page) this.onOutput({ executionId: e.executionId, workspaceId: e.workspaceId, seq: c.seq, stream: c.stream, data: c.data });
          if (page.length === OUTPUT_PAGE_ROWS) state.again = true;
        } while (state.again);
      } catch (err) {
        this.logger.error({ err, executionId: e.executionId }, 'reading output stored by another node failed; its viewers read it themselves');
        for (const sub of watching()) sub.nudge();
      } finally {
        this.remoteReads.delete(e.executionId);
      }
    })();
  }

  /**
   * To the workspace's viewers on this node (the history page), except sockets that watch this
   * execution: those get it through their subscription, after any output still being caught up on.
   * Every node does this for its own viewers (the status reaches the others as ClusterNews), since
   * only this node knows which of its sockets watch the execution.
   */
  private onStatus(e: StatusChanged): void {
    const event: ExecutionStatusEvent = { executionId: e.executionId, status: e.status, exitCode: e.exitCode };
    const subs = [...(this.byExecution.get(e.executionId) ?? [])].filter((s) => s.viewer.workspaceId === e.workspaceId);
    const room = this.nsp?.local.to(workspaceRoom(e.workspaceId));
    if (room) (subs.length ? room.except(subs.map((s) => s.viewer.id)) : room).emit(DashboardEvents.status, event);
    for (const sub of subs) sub.onStatus(event);
  }

  private onCreated(e: Execution): void {
    this.nsp?.to(workspaceRoom(e.workspaceId)).emit(DashboardEvents.created, {
      executionId: e.id,
      scriptId: e.scriptId,
      serverId: e.serverId,
      webhookId: e.webhookId,
      trigger: e.trigger,
      status: e.status,
    });
  }
}
