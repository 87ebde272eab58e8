import {
  AGENT_EVENTS,
  AgentEvents,
  parseMessage,
  type AgentHello,
  type AgentReply,
  type ExecutionFinished,
  type ExecutionSpawned,
  type OutputBatch,
  type ProtocolErrorCode,
} from '@app/protocol';
import { AgentConnection } from './connection.js';
import { ExecutionJob, type OutputChannel } from './execution.js';
import { silentLogger, type Logger } from './logger.js';
import { FinishedOutbox, ReportOutbox } from './outbox.js';
import { RecentIds } from './recent-ids.js';
import { DEFAULT_SCRIPT_USER, ScriptUsers } from './script-users.js';
import { AGENT_VERSION } from './version.js';

export interface AgentOptions {
  url: string;
  token: string;
  concurrency: number;
  killGraceMs: number;
  shutdownGraceMs: number;
  /** PEM CA certificates trusted in addition to the system's. */
  ca?: string;
  logger?: Logger;
  /** Who runs scripts; by default detected (devpilot-run when this process can switch users, no runAs allowed). */
  users?: ScriptUsers;
  agentVersion?: string;
  /** On shutdown, how long to wait for the last output and reports to be acked. */
  flushTimeoutMs?: number;
  reconnectDelayMs?: number;
  reconnectDelayMaxMs?: number;
  /** Unacked output per execution above which its pipes are paused. */
  windowBytes?: number;
  /** How many finished execution ids are remembered to recognise a redelivered start. */
  recentIdsLimit?: number;
}

/** Why the agent stopped: 0 asked to (signal), 2 refused by the control plane (`refusal` says why). */
export interface AgentExit {
  code: 0 | 2;
  reason?: string;
  refusal?: ProtocolErrorCode;
}

const HELLO_LIMIT = 10_000;
const SHUTTING_DOWN = 'agent shutting down';

/** The agent: takes commands from the control plane, runs scripts, delivers their output losslessly. */
export class Agent {
  /** Resolves once the agent has stopped, by `stop()` or because the control plane refused it. */
  readonly exited: Promise<AgentExit>;
  private readonly log: Logger;
  private readonly conn: AgentConnection;
  /** Every accepted execution whose finished report is not yet built: queued, running, draining. */
  private readonly jobs = new Map<string, ExecutionJob>();
  private readonly queue: ExecutionJob[] = [];
  private readonly recent: RecentIds;
  private readonly finished = new FinishedOutbox();
  /** Spawned reports not yet acked: the control plane marks the run `running` on them. */
  private readonly spawned = new ReportOutbox<ExecutionSpawned>();
  private readonly channel: OutputChannel;
  private readonly users: ScriptUsers;
  private active = 0;
  private ready = false;
  private shuttingDown = false;
  private stopping?: Promise<void>;
  private resolveExit!: (exit: AgentExit) => void;

  constructor(private readonly opts: AgentOptions) {
    this.log = opts.logger ?? silentLogger;
    this.recent = new RecentIds(opts.recentIdsLimit ?? 10_000);
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
    this.users = opts.users ?? ScriptUsers.detect(DEFAULT_SCRIPT_USER, []);
    this.conn = new AgentConnection(
      {
        url: opts.url,
        token: opts.token,
        scriptUsers: { runsScriptsAs: this.users.runsScriptsAs, switchesUsers: this.users.switches, allowRunAs: this.users.allowed },
        ca: opts.ca,
        agentVersion: opts.agentVersion ?? AGENT_VERSION,
        logger: this.log.child('AgentConnection'),
        reconnectDelayMs: opts.reconnectDelayMs,
        reconnectDelayMaxMs: opts.reconnectDelayMaxMs,
      },
      {
        connected: () => this.onConnected(),
        disconnected: () => this.onDisconnected(),
        refused: (message, code) => void this.refused(message, code),
        start: (payload, ack) => this.onStart(payload, ack),
        cancel: (payload, ack) => this.onCancel(payload, ack),
      },
    );
    this.channel = {
      isReady: () => this.ready,
      sendOutput: (batch: OutputBatch, onAck) => void this.conn.call(AgentEvents.output, batch, onAck),
    };
  }

  start(): void {
    this.conn.open();
  }

  /** Graceful stop: no new work, queued work cancelled, running scripts get a grace period. */
  stop(): Promise<void> {
    this.shuttingDown = true;
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /** Scripts running right now (tests and logs). */
  get runningCount(): number {
    return [...this.jobs.values()].filter((j) => j.running).length;
  }

  private onStart(payload: unknown, ack: (reply: AgentReply<'execution.start'>) => void): void {
    const parsed = parseMessage(AGENT_EVENTS[AgentEvents.start].request, payload);
    if (!parsed.ok) {
      this.log.warn('refused a malformed execution.start', { reason: parsed.error.error.message });
      return ack(parsed.error);
    }
    const cmd = parsed.value;
    // A redelivered start (the control plane did not see our ack) must not run the script twice.
    if (this.jobs.has(cmd.executionId) || this.recent.has(cmd.executionId)) return ack({ accepted: true });
    if (this.shuttingDown) return ack({ accepted: false, reason: SHUTTING_DOWN, code: 'SHUTTING_DOWN' });
    // Refused before anything is queued: the control plane fails the run with this reason.
    const allowed = this.users.check(cmd.runAs);
    if (!allowed.ok) {
      this.log.warn('refused a start: its runAs is not allowed here', { executionId: cmd.executionId, runAs: cmd.runAs });
      return ack({ accepted: false, reason: allowed.reason, code: 'RUN_AS_NOT_ALLOWED' });
    }

    const job = new ExecutionJob(cmd, {
      channel: this.channel,
      killGraceMs: this.opts.killGraceMs,
      logger: this.log.child('ExecutionJob'),
      users: this.users,
      windowBytes: this.opts.windowBytes,
      onSpawned: (spawned) => this.onJobSpawned(spawned),
      onDone: (done, report) => this.onJobDone(done, report),
    });
    this.jobs.set(job.id, job);
    this.queue.push(job);
    // Acked before it runs: a job beyond --concurrency waits in the queue, and `execution.spawned`
    // tells the control plane when it really starts.
    ack({ accepted: true });
    this.log.info('execution accepted', { executionId: job.id, queued: this.queue.length });
    this.pump();
  }

  private onCancel(payload: unknown, ack: (reply: AgentReply<'execution.cancel'>) => void): void {
    const parsed = parseMessage(AGENT_EVENTS[AgentEvents.cancel].request, payload);
    if (!parsed.ok) return ack(parsed.error);
    const { executionId } = parsed.value;
    const job = this.jobs.get(executionId);
    if (!job) return ack({ ok: this.recent.has(executionId) });
    this.log.info('cancel requested', { executionId });
    if (job.queued) this.queue.splice(this.queue.indexOf(job), 1);
    job.cancel();
    ack({ ok: true });
  }

  /** Starts queued jobs, oldest first, while fewer than `concurrency` hold a slot. */
  private pump(): void {
    while (!this.shuttingDown && this.active < this.opts.concurrency && this.queue.length > 0) {
      this.active += 1;
      this.queue.shift()!.start();
    }
  }

  // A slot is held until the job's output is acked, not just until its process exits: this bounds
  // the output held in memory while the control plane is slow or away.
  private onJobSpawned(job: ExecutionJob): void {
    this.spawned.add({ executionId: job.id });
    this.flushSpawned();
  }

  private onJobDone(job: ExecutionJob, report: ExecutionFinished): void {
    this.jobs.delete(job.id);
    this.recent.add(job.id);
    if (job.started) this.active -= 1;
    this.finished.add(report);
    this.flushFinished();
    this.pump();
  }

  private onConnected(): void {
    this.ready = false;
    const hello: AgentHello = {
      running: [...this.jobs.values()].slice(0, HELLO_LIMIT).map((j) => ({ executionId: j.id, nextSeq: j.outbox.nextSeq })),
      finished: this.finished.all().slice(0, HELLO_LIMIT),
    };
    this.conn.call(AgentEvents.hello, hello, (reply) => this.onHelloReply(reply));
  }

  private onHelloReply(reply: AgentReply<'agent.hello'>): void {
    const fromSeq = new Map<string, number>();
    if ('resend' in reply) {
      for (const r of reply.resend) fromSeq.set(r.executionId, r.fromSeq);
    } else {
      // Resending everything unacked is always safe: the control plane stores chunks idempotently.
      this.log.warn('hello refused; resending all unacked output', { code: reply.error.code, message: reply.error.message });
    }
    this.ready = true;
    this.log.info('hello done', { running: this.jobs.size, finished: this.finished.size });
    for (const job of [...this.jobs.values()]) job.resendFrom(fromSeq.get(job.id));
    this.flushSpawned();
    this.flushFinished();
  }

  private onDisconnected(): void {
    this.ready = false;
    this.spawned.unsendAll();
    this.finished.unsendAll();
  }

  private flushSpawned(): void {
    if (!this.ready) return;
    for (const report of this.spawned.takeUnsent()) {
      this.conn.call(AgentEvents.spawned, report, (reply) => {
        if ('error' in reply) this.log.error('spawned report refused; dropping it', { executionId: report.executionId, error: reply.error });
        this.spawned.settle(report.executionId);
      });
    }
  }

  private flushFinished(): void {
    if (!this.ready) return;
    for (const report of this.finished.takeUnsent()) {
      this.conn.call(AgentEvents.finished, report, (reply) => {
        if ('error' in reply) this.log.error('finished report refused; dropping it', { executionId: report.executionId, error: reply.error });
        this.finished.settle(report.executionId);
        // Over: its spawned report says nothing more.
        this.spawned.settle(report.executionId);
      });
    }
  }

  private async shutdown(): Promise<void> {
    this.log.info('shutting down', { running: this.runningCount, queued: this.queue.length });
    for (const job of this.queue.splice(0)) job.finishUnstarted(SHUTTING_DOWN);
    await within(this.opts.shutdownGraceMs, this.processesEnded());
    for (const job of this.jobs.values()) job.cancel(SHUTTING_DOWN);
    // Runs as another user have their folder removed as that user after they end: wait for it (it
    // may hold the request a webhook passed), as the exit handler cannot remove what it does not own.
    const cleanups = [...this.jobs.values()].map((j) => j.cleaned);
    await within(this.opts.killGraceMs + 2_000, this.processesEnded());
    await within(2_000, Promise.all(cleanups));
    await this.drained(Date.now() + (this.opts.flushTimeoutMs ?? 5_000));
    this.conn.close();
    this.log.info('stopped');
    this.resolveExit({ code: 0 });
  }

  private async refused(message: string, code: ProtocolErrorCode): Promise<void> {
    if (this.stopping) return;
    this.shuttingDown = true;
    this.stopping = (async () => {
      this.conn.close();
      for (const job of this.queue.splice(0)) job.finishUnstarted(message);
      for (const job of this.jobs.values()) job.cancel(`control plane refused the agent: ${message}`);
      await within(this.opts.killGraceMs + 2_000, this.processesEnded());
      this.resolveExit({ code: 2, reason: message, refusal: code });
    })();
  }

  private processesEnded(): Promise<unknown> {
    return Promise.all([...this.jobs.values()].map((j) => j.ended));
  }

  /** Waits until every output chunk and finished report is acked, or the deadline. */
  private async drained(deadline: number): Promise<void> {
    while ((this.jobs.size > 0 || this.finished.size > 0 || this.spawned.size > 0) && Date.now() < deadline) await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `work`, but no longer than `ms`. */
async function within(ms: number, work: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
