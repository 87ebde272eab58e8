import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { Subject, type Subscription } from 'rxjs';
import type { Namespace } from 'socket.io';
import { ApiKeyEvents } from '../workspaces/api-key-events.js';
import { KeyConnections } from '../workspaces/key-connections.js';
import { ExecutionEvents, type StatusChanged } from './execution-events.js';

const OUTPUT_NEWS = 'devpilot:output-stored';
const STATUS_NEWS = 'devpilot:status-changed';
const KEY_REVOKED = 'devpilot:key-revoked';
const KEY_COUNT = 'devpilot:key-connections';
const HAND_OVER = 'devpilot:dispatch';
/** The most runs one hand-over names (a claim batch). */
const MAX_HANDED_OVER = 50;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Another node asks the node holding a server's agent to send work: the runs it created already
 * claimed (`executionIds`), or, when none are named, the server's queue. Answers whether this node
 * holds the agent (also while its hello is under way: the hello settles the runs then); the holder
 * may answer once its starts are sent, so its answer (a NOTIFY to every node) does not compete
 * with them.
 */
export type HandOverHandler = (serverId: string, executionIds: string[]) => boolean | Promise<boolean>;

/** One execution got output on another node: its stored rows are newer than what was read. */
export interface OutputElsewhere {
  executionId: string;
  workspaceId: string;
}

/**
 * What one node committed that readers on the other nodes must hear of at once, sent through the
 * socket.io adapter's serverSideEmit (so a NOTIFY or a Redis message, never a protocol of our
 * own). Output travels as a small notice, not as the bytes: the readers on other nodes read the
 * chunks from PostgreSQL, where they are already stored, so a large chunk never goes through the
 * adapter (whose PostgreSQL flavour would INSERT every binary packet into a table). Notices of
 * one tick are sent together, one per execution.
 */
@Injectable()
export class ClusterNews implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(ClusterNews.name);
  readonly outputElsewhere = new Subject<OutputElsewhere>();
  readonly statusElsewhere = new Subject<StatusChanged>();
  private nsp: Namespace | null = null;
  private readonly subscriptions: Subscription[] = [];
  private pendingOutput = new Map<string, string>();
  private pendingStatus: StatusChanged[] = [];
  /** Set by the dispatcher: sends work for a server whose agent this node holds. */
  onHandOver: HandOverHandler | null = null;
  private flushScheduled = false;

  constructor(
    private readonly events: ExecutionEvents,
    private readonly keyEvents: ApiKeyEvents,
    private readonly keyConnections: KeyConnections,
  ) {}

  /** The namespace whose adapter carries the news (any one will do: server-side events are per namespace). */
  attach(nsp: Namespace): void {
    this.nsp = nsp;
    nsp.on(OUTPUT_NEWS, (items: unknown) => {
      if (!Array.isArray(items)) return;
      for (const item of items as unknown[]) {
        const [executionId, workspaceId] = Array.isArray(item) ? (item as unknown[]) : [];
        if (typeof executionId === 'string' && typeof workspaceId === 'string') this.deliver(this.outputElsewhere, { executionId, workspaceId });
      }
    });
    nsp.on(STATUS_NEWS, (e: StatusChanged) => {
      if (e && typeof e.executionId === 'string' && typeof e.workspaceId === 'string') this.deliver(this.statusElsewhere, e);
    });
    nsp.on(KEY_REVOKED, (keyId: unknown) => {
      // Its sockets on this node went with the room-wide disconnect; its SSE streams go here.
      if (typeof keyId === 'string') this.keyConnections.closeAll(keyId);
    });
    nsp.on(HAND_OVER, (serverId: unknown, ids: unknown, answer: unknown) => {
      if (typeof answer !== 'function') return;
      const valid = typeof serverId === 'string' && Array.isArray(ids) && ids.length <= MAX_HANDED_OVER && ids.every((id) => typeof id === 'string' && UUID.test(id));
      const failed = (err: unknown) => {
        this.logger.error({ err, serverId }, 'handling a hand-over from another node failed');
        return false;
      };
      let held: boolean | Promise<boolean>;
      try {
        held = valid && this.onHandOver ? this.onHandOver(serverId, ids as string[]) : false;
      } catch (err) {
        held = failed(err);
      }
      void Promise.resolve(held)
        .then((h) => !!h, failed)
        .then((h) => (answer as (held: boolean) => void)(h));
    });
    nsp.on(KEY_COUNT, (keyId: unknown, answer: unknown) => {
      if (typeof keyId === 'string' && typeof answer === 'function') (answer as (n: number) => void)(this.keyConnections.localCount(keyId));
    });
    this.keyConnections.elsewhere = (keyId) => this.countElsewhere(nsp, keyId);
  }

  onModuleInit(): void {
    this.subscriptions.push(
      this.events.output.subscribe((e) => {
        this.pendingOutput.set(e.executionId, e.workspaceId);
        this.scheduleFlush();
      }),
      this.events.status.subscribe((e) => {
        // Sent after this tick, not at once: a hand-over decided in this tick (a run created
        // claimed for an agent on another node) goes first, and waits for no other NOTIFY.
        this.pendingStatus.push({ executionId: e.executionId, workspaceId: e.workspaceId, serverId: e.serverId, status: e.status, exitCode: e.exitCode });
        this.scheduleFlush();
      }),
      this.keyEvents.revoked.subscribe(({ keyId }) => this.send(KEY_REVOKED, keyId)),
    );
  }

  onModuleDestroy(): void {
    for (const s of this.subscriptions) s.unsubscribe();
  }

  /**
   * Asks the node holding the server's agent to send it work (see HandOverHandler): only ids cross
   * the adapter, never a start command. `held`: a node has the agent; `nobody`: every node said it
   * has not (at once when this node is alone); `unknown`: some node did not answer in time, so the
   * agent may be there.
   */
  async handOver(serverId: string, executionIds: string[]): Promise<'held' | 'nobody' | 'unknown'> {
    const nsp = this.nsp;
    if (!nsp || (await nsp.adapter.serverCount()) <= 1) return 'nobody';
    return new Promise((resolve) => {
      try {
        // Waits for every node, at most the adapter's requestsTimeout.
        nsp.serverSideEmit(HAND_OVER, serverId, executionIds.slice(0, MAX_HANDED_OVER), (err: Error | null, answers: unknown[]) => {
          resolve((answers ?? []).some((a) => a === true) ? 'held' : err ? 'unknown' : 'nobody');
        });
      } catch (err) {
        this.logger.error({ err, serverId }, 'could not ask the other nodes to send a server its work');
        resolve('unknown');
      }
    });
  }

  /** The other nodes' counts of the key's connections; those that do not answer in time count as none. */
  private async countElsewhere(nsp: Namespace, keyId: string): Promise<number> {
    if ((await nsp.adapter.serverCount()) <= 1) return 0;
    return new Promise((resolve) => {
      try {
        // Waits for every node, at most the adapter's requestsTimeout; a partial answer is used as it is.
        nsp.serverSideEmit(KEY_COUNT, keyId, (_err: Error | null, counts: unknown[]) => {
          resolve((counts ?? []).reduce<number>((sum, n) => sum + (typeof n === 'number' && Number.isFinite(n) ? n : 0), 0));
        });
      } catch (err) {
        this.logger.error({ err }, 'could not ask the other nodes for a key’s connections');
        resolve(0);
      }
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** The output notices of this tick, then its statuses in order (so a reader does not end before the output stored first). */
  private flush(): void {
    this.flushScheduled = false;
    if (this.pendingOutput.size) {
      const items = [...this.pendingOutput];
      this.pendingOutput = new Map();
      this.send(OUTPUT_NEWS, items);
    }
    const statuses = this.pendingStatus;
    this.pendingStatus = [];
    for (const s of statuses) this.send(STATUS_NEWS, s);
  }

  /** Sent only when other nodes are known: a single node pays no NOTIFY per batch of output. */
  private send(event: string, payload: unknown): void {
    const nsp = this.nsp;
    if (!nsp) return;
    nsp.adapter.serverCount().then(
      (nodes) => {
        if (nodes > 1) nsp.serverSideEmit(event, payload);
      },
      (err: unknown) => this.logger.error({ err, event }, 'could not tell the other nodes'),
    ).catch((err: unknown) => this.logger.error({ err, event }, 'could not tell the other nodes'));
  }

  private deliver<T>(subject: Subject<T>, value: T): void {
    try {
      subject.next(value);
    } catch (err) {
      this.logger.error({ err }, 'handling news from another node failed');
    }
  }
}
