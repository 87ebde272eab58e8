import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { StartExecution } from '@app/protocol';
import type { Subscription } from 'rxjs';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ClusterNews } from '../executions/cluster-news.js';
import { ExecutionEvents } from '../executions/execution-events.js';
import { ExecutionRepository } from '../executions/execution.repository.js';
import { StartCommands } from '../executions/start-commands.js';
import type { Execution } from '../executions/execution.entity.js';
import type { ClaimedExecution } from '../executions/run-commands.js';
import { AgentLink } from './agent-link.js';
import { AgentPresence } from './agent-presence.js';

const CLAIM_BATCH = 50;


/**
 * Hands queued executions to their server's agent, and keeps the clock of the lifecycle: delivery
 * deadlines, run timeouts, runs whose agent is gone. Nothing here is the record of what is queued:
 * the database is, and a claim (`queued` -> `dispatched`) is one conditional UPDATE, so several
 * processes may dispatch at once without starting anything twice. Triggers: a new execution
 * (ExecutionEvents.created), the end of a run a `queue` webhook's next run waited for
 * (ExecutionEvents.released), an agent that finished its hello, and a periodic sweep that also
 * expires executions past their delivery deadline (`undeliverable`).
 */
@Injectable()
export class Dispatcher implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(Dispatcher.name);
  private readonly subscriptions: Subscription[] = [];
  private sweepTimer?: NodeJS.Timeout;
  private sweeping = false;
  /** Per server: a dispatch pass is running, and whether another was asked for meanwhile. */
  private readonly passes = new Map<string, { again: boolean; done: Promise<void> }>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly events: ExecutionEvents,
    private readonly repo: ExecutionRepository,
    private readonly commands: StartCommands,
    private readonly link: AgentLink,
    private readonly presence: AgentPresence,
    private readonly news: ClusterNews,
  ) {
    news.onHandOver = (serverId, ids) => this.onHandOver(serverId, ids);
  }

  onApplicationBootstrap(): void {
    this.subscriptions.push(
      this.events.created.subscribe((e) => void this.onCreated(e)),
      // The node that ended a run of a `queue` webhook hands the next one over, wherever its agent is.
      this.events.released.subscribe((serverId) => void this.dispatchIfReady(serverId, { released: true })),
    );
    this.sweepTimer = setInterval(() => void this.sweep(), this.config.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  onApplicationShutdown(): void {
    for (const s of this.subscriptions) s.unsubscribe();
    clearInterval(this.sweepTimer);
  }

  private async onCreated(e: Execution & { start: StartExecution | null }): Promise<void> {
    // Created already claimed, because this node holds the agent: send it at once.
    if (e.start) return this.send({ id: e.id, workspaceId: e.workspaceId, serverId: e.serverId, start: e.start });
    // Created claimed for an agent on another node: its start was not built here, only its id goes.
    if (e.status === 'dispatched') return this.handOverClaimed(e.id, e.serverId);
    return this.dispatchIfReady(e.serverId, { executionId: e.id });
  }

  /**
   * A claimed run whose agent is not on this node: the node holding it is handed its id and builds
   * and sends the start. Requeued only when every node said it has no agent for the server; when
   * one did not answer it stays dispatched: the holder's sweep resends unanswered starts, the hello
   * settles it. `resend`: a start sent before may have been accepted, so it is never requeued.
   */
  private async handOverClaimed(id: string, serverId: string, resend = false): Promise<void> {
    try {
      const held = await this.news.handOver(serverId, [id]);
      if (held === 'nobody' && !resend) await this.repo.requeue(id);
    } catch (err) {
      this.logger.error({ err, executionId: id }, 'handing a run over to the node holding its agent failed; the sweep retries');
    }
  }

  /** Dispatches the server's queued runs from the node holding its agent (else its hello will). */
  private async dispatchIfReady(serverId: string, context: Record<string, unknown>): Promise<void> {
    try {
      await this.dispatchQueued(serverId);
    } catch (err) {
      this.logger.error({ err, serverId, ...context }, 'dispatch failed; the sweep retries');
    }
  }

  /**
   * Another node asks this one to send work to a server's agent (ClusterNews.handOver): answers
   * whether the agent is here, then sends the runs named (created claimed there) or the queue.
   */
  private onHandOver(serverId: string, executionIds: string[]): boolean | Promise<boolean> {
    if (!this.link.hasLocalAgent(serverId)) return false;
    // Still in its hello, which requeues and dispatches whatever it was not sent: the asking node must not requeue it too.
    if (!this.link.hasLocalReadyAgent(serverId)) return true;
    if (!executionIds.length) {
      this.dispatchQueued(serverId).catch((err: unknown) => this.logger.error({ err, serverId }, 'sending the queue another node handed over failed; the sweep retries'));
      return true;
    }
    // Answered once the starts are sent (not acknowledged): the answer is a NOTIFY to every node,
    // which would otherwise compete with the take for the database and this process.
    return this.repo
      .takeHandedOver(serverId, executionIds)
      .then(async (rows) => {
        for (const c of await this.commands.build(rows)) void this.send(c);
      })
      .catch((err: unknown) => this.logger.error({ err, serverId }, 'sending the work another node handed over failed; the sweep retries'))
      .then(() => true);
  }

  /**
   * Sends every queued execution of a server to its agent, oldest first. Passes for one server do
   * not overlap in this process (a request during a pass makes it run once more), which keeps the
   * starts in queue order on the agent's socket.
   */
  dispatchQueued(serverId: string): Promise<void> {
    // Starts are sent only by the node holding the agent (see AgentLink.start): ask it.
    if (!this.link.hasLocalReadyAgent(serverId)) return this.news.handOver(serverId, []).then(() => undefined);
    const running = this.passes.get(serverId);
    if (running) {
      running.again = true;
      return running.done;
    }
    const pass = { again: false, done: Promise.resolve() };
    pass.done = (async () => {
      try {
        do {
          pass.again = false;
          for (;;) {
            const claimed = await this.repo.claimQueued(serverId, CLAIM_BATCH);
            // Emitted in order on one socket; the acks are handled as they come.
            const sends = (await this.commands.build(claimed)).map((c) => this.send(c));
            // Requests passed to scripts may be large: a batch carrying some is answered before the
            // next is claimed, so a long queue is never all in memory at once.
            if (claimed.some((c) => c.has_payload)) await Promise.all(sends);
            if (claimed.length < CLAIM_BATCH) break;
          }
        } while (pass.again);
      } finally {
        this.passes.delete(serverId);
      }
    })();
    this.passes.set(serverId, pass);
    return pass.done;
  }

  /**
   * Sends one claimed execution's start and records the agent's answer. `resend`: a start sent
   * before may have been accepted, so "nobody got it" does not prove it never ran.
   */
  async send(c: ClaimedExecution, resend = false): Promise<void> {
    try {
      const outcome = await this.link.start(c.serverId, c.start);
      switch (outcome.kind) {
        case 'accepted': {
          const r = await this.repo.markStarted(c.id, c.serverId);
          // A cancel asked for between the claim and the ack may have reached the agent first.
          if (r?.cancelRequested) this.link.cancel(c.serverId, c.id);
          break;
        }
        case 'refused':
          this.logger.warn({ executionId: c.id, reason: outcome.reason }, 'the agent refused an execution');
          await this.repo.markRefused(c.id, outcome.reason);
          break;
        case 'elsewhere':
          // Only ids cross to the other nodes; the one holding the agent builds and sends the start.
          await this.handOverClaimed(c.id, c.serverId, resend);
          break;
        case 'nobody':
          // A first start nobody got certainly never ran: queue it again. A resend stays
          // dispatched; the agent's next hello says whether it runs it (and requeues or loses it).
          if (!resend) await this.repo.requeue(c.id);
          break;
        case 'no-answer':
          this.logger.warn({ executionId: c.id }, 'no answer to execution.start; the agent hello will reconcile it');
          break;
      }
    } catch (err) {
      this.logger.error({ err, executionId: c.id }, 'handling the start answer failed');
    }
  }

  /**
   * Expires overdue queued executions, retries dispatch for this node's agents (and resends starts
   * they never answered), gives up on their runs whose output never arrives whole, ends runs past
   * their timeout and runs whose agent has been away too long, refreshes presence. Every rule is
   * one conditional UPDATE, so any number of nodes may sweep at once.
   */
  async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const expired = await this.repo.expireQueued();
      if (expired) this.logger.log({ expired }, 'queued executions past their delivery deadline are undeliverable');
      const ready = [...this.link.localReadyServers()];
      const unansweredAfterMs = 2 * this.config.agentAckTimeoutMs;
      // One query finds the few servers with work; a query per connected server (two each, every
      // sweep) cost 4,000 statements a second with 10,000 agents connected.
      for (const w of await this.repo.serversWithWork(ready, unansweredAfterMs)) {
        if (w.queued) await this.dispatchQueued(w.serverId);
        if (w.unanswered) {
          for (const c of await this.commands.build(await this.repo.takeUnanswered(w.serverId, unansweredAfterMs, CLAIM_BATCH))) void this.send(c, true);
        }
      }
      for (const gone of await this.repo.giveUpIncomplete(ready, this.config.reportGraceSeconds)) {
        this.logger.warn({ executionId: gone.id, serverId: gone.serverId }, 'the agent reported this run finished but never sent all of its output; marked lost');
        // If the agent still runs it, it stops it.
        this.link.cancel(gone.serverId, gone.id);
      }
      for (const late of await this.repo.timeOutOverdue(this.config.runTimeoutGraceSeconds)) {
        this.logger.warn({ executionId: late.id, serverId: late.serverId }, 'no end reported within the timeout; marked timed_out');
        this.link.cancel(late.serverId, late.id);
      }
      const lost = await this.repo.loseAbandoned(this.config.agentLostSeconds);
      if (lost.length) this.logger.warn({ executions: lost.length }, `runs whose agent has been away for ${this.config.agentLostSeconds} s are lost`);
      await this.presence.heartbeat();
    } catch (err) {
      this.logger.error({ err }, 'sweep failed');
    } finally {
      this.sweeping = false;
    }
  }
}
