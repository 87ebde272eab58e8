import type { AgentReply, ExecutionFinished, OutputBatch, OutputStream, StartExecution } from '@app/protocol';
import type { Logger } from './logger.js';
import { OutputOutbox, type SentBatch } from './outbox.js';
import { ScriptRun, type RunResult } from './runner.js';
import type { ScriptUsers } from './script-users.js';
import { SecretMask } from './secret-mask.js';

/** Where output batches go; the ack callback only fires for an ack on the connection it was sent on. */
export interface OutputChannel {
  /** Connected, and the hello exchange is done. */
  isReady(): boolean;
  sendOutput(batch: OutputBatch, onAck: (reply: AgentReply<'execution.output'>) => void): void;
}

export interface ExecutionJobOptions {
  channel: OutputChannel;
  killGraceMs: number;
  logger: Logger;
  /** Who the script runs as. */
  users: ScriptUsers;
  /** Unacked output per execution above which the script's pipes are paused. */
  windowBytes?: number;
  /**
   * Output goes out at once while nothing of this execution is in flight; while a batch waits for
   * its ack, more is gathered (into fewer, bigger chunks) and sent with the ack, when `flushBytes`
   * are waiting, or after `flushDelayMs` at the latest.
   */
  flushDelayMs?: number;
  flushBytes?: number;
  /** The script's process was spawned. */
  onSpawned: (job: ExecutionJob) => void;
  /** The script ended (or never ran) and every chunk of its output is acked. */
  onDone: (job: ExecutionJob, report: ExecutionFinished) => void;
}

const MAX_REFUSALS = 5;
const MAX_ERROR_LENGTH = 2000;

/** One accepted execution on this agent: queued, then running, then draining its output. */
export class ExecutionJob {
  readonly id: string;
  readonly outbox: OutputOutbox;
  /** Resolves when the script's process has ended (or it was finished without running). */
  readonly ended: Promise<void>;
  private state: 'queued' | 'running' | 'ended' = 'queued';
  private run?: ScriptRun;
  private result?: RunResult;
  private flushTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private refusals = 0;
  private done = false;
  /** Cancelled while its user was being looked up: it never spawns. */
  private cancelledEarly: string | null | undefined;
  private tookSlot = false;
  private markEnded!: () => void;
  /** Per stream: the run's secret values masked before output leaves the agent. */
  private readonly masks: Record<OutputStream, SecretMask>;

  constructor(
    private readonly cmd: StartExecution,
    private readonly opts: ExecutionJobOptions,
  ) {
    this.id = cmd.executionId;
    this.outbox = new OutputOutbox(cmd.executionId, { maxOutputBytes: cmd.maxOutputBytes, windowBytes: opts.windowBytes });
    this.ended = new Promise((resolve) => (this.markEnded = resolve));
    const secrets = (cmd.maskEnv ?? []).map((name) => cmd.env[name]).filter((v): v is string => v !== undefined);
    this.masks = { stdout: new SecretMask(secrets), stderr: new SecretMask(secrets) };
  }

  /** Resolves once the run's files (script, request) are gone; at once for a job that never ran. */
  get cleaned(): Promise<void> {
    return this.run?.cleaned ?? Promise.resolve();
  }

  get queued(): boolean {
    return this.state === 'queued';
  }
  get running(): boolean {
    return this.state === 'running';
  }
  /** It left the queue (and holds one of the agent's slots until done). */
  get started(): boolean {
    return this.tookSlot;
  }

  start(): void {
    if (this.state !== 'queued') return;
    this.state = 'running';
    this.tookSlot = true;
    void this.opts.users.choose(this.cmd.runAs).then((choice) => {
      if (this.cancelledEarly !== undefined) {
        return this.onEnd({ exitCode: null, signal: null, timedOut: false, cancelled: true, error: this.cancelledEarly });
      }
      if (!choice.ok) {
        // Written as output too, so whoever watches the run sees why it did not start.
        this.onOutput('stderr', Buffer.from(`${choice.reason}\n`));
        return this.onEnd({ exitCode: null, signal: null, timedOut: false, cancelled: false, error: choice.reason });
      }
      const { setpriv } = this.opts.users;
      this.opts.logger.info('execution started', { executionId: this.id, interpreter: this.cmd.interpreter, user: choice.user?.name ?? this.opts.users.self });
      this.run = new ScriptRun(this.cmd, {
        killGraceMs: this.opts.killGraceMs,
        logger: this.opts.logger,
        onSpawn: () => this.opts.onSpawned(this),
        onOutput: (stream, data) => this.onOutput(stream, this.masks[stream].write(data)),
        ...(choice.user && setpriv ? { runAs: { user: choice.user, setpriv } } : {}),
      });
      void this.run.result.then((result) => {
        for (const stream of ['stdout', 'stderr'] as const) this.onOutput(stream, this.masks[stream].end());
        this.onEnd(result);
      });
    });
  }

  /** Ends a job that never ran (cancelled while queued, agent shutting down). */
  finishUnstarted(error: string | null): void {
    if (this.state !== 'queued') return;
    this.onEnd({ exitCode: null, signal: null, timedOut: false, cancelled: true, error });
  }

  /** Stops the script (SIGTERM, then SIGKILL). False when its process already ended. */
  cancel(error: string | null = null): boolean {
    if (this.state === 'queued') {
      this.finishUnstarted(error);
      return true;
    }
    if (this.state === 'running' && !this.run) {
      this.cancelledEarly ??= error;
      return true;
    }
    return this.state === 'running' && !!this.run?.cancel(error);
  }

  /** After a (re)connect: the control plane holds everything below `fromSeq`. */
  resendFrom(fromSeq: number | undefined): void {
    this.outbox.resendFrom(fromSeq);
    this.refusals = 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.flush();
    this.afterProgress();
  }

  flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.opts.channel.isReady() || this.retryTimer) return;
    for (const sent of this.outbox.takeBatches()) {
      this.opts.channel.sendOutput(sent.batch, (reply) => this.onAck(sent, reply));
    }
  }

  private onOutput(stream: OutputStream, data: Buffer): void {
    if (data.length === 0) return;
    this.outbox.append(stream, data);
    if (this.outbox.windowFull) this.run?.pause();
    const inFlight = this.outbox.unackedBytes - this.outbox.unsentBytes;
    if (inFlight === 0 || this.outbox.unsentBytes >= (this.opts.flushBytes ?? 256 * 1024)) this.flush();
    else if (!this.flushTimer && this.outbox.unsentBytes > 0) {
      this.flushTimer = setTimeout(() => this.flush(), this.opts.flushDelayMs ?? 20);
    }
  }

  private onEnd(result: RunResult): void {
    this.state = 'ended';
    this.result = result;
    this.opts.logger.info('execution ended', { executionId: this.id, ...result, outputBytes: this.outbox.outputBytes });
    this.markEnded();
    this.flush();
    this.afterProgress();
  }

  private onAck(sent: SentBatch, reply: AgentReply<'execution.output'>): void {
    const ackedSeq = 'ackedSeq' in reply ? reply.ackedSeq : undefined;
    if (ackedSeq !== undefined) this.outbox.ack(sent, ackedSeq);
    if (ackedSeq !== undefined && ackedSeq >= sent.lastSeq) {
      this.refusals = 0;
      // What was gathered while this batch was in flight goes now.
      if (this.outbox.unsentBytes > 0 && !this.retryTimer) this.flush();
    } else {
      this.onRefused(sent, reply);
    }
    this.afterProgress();
  }

  /** An error ack (or a partial one): retry with backoff, give up after a few refusals in a row. */
  private onRefused(sent: SentBatch, reply: AgentReply<'execution.output'>): void {
    this.refusals += 1;
    const fields = { executionId: this.id, firstSeq: sent.firstSeq, lastSeq: sent.lastSeq, reply, refusals: this.refusals };
    if (this.refusals >= MAX_REFUSALS) {
      this.opts.logger.error('output refused too often; dropping it', fields);
      this.outbox.drop(sent);
      this.refusals = 0;
      return;
    }
    this.opts.logger.warn('output refused; will retry', fields);
    this.outbox.unsend(sent);
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.flush();
    }, Math.min(30_000, 250 * 2 ** this.refusals));
  }

  private afterProgress(): void {
    if (this.run && !this.outbox.windowFull) this.run.resume();
    if (this.done || this.state !== 'ended' || !this.result || !this.outbox.drained) return;
    this.done = true;
    clearTimeout(this.flushTimer);
    clearTimeout(this.retryTimer);
    const { exitCode, signal, timedOut, cancelled, error } = this.result;
    this.opts.onDone(this, {
      executionId: this.id,
      exitCode,
      signal,
      timedOut,
      cancelled,
      lastSeq: this.outbox.nextSeq - 1,
      outputBytes: this.outbox.outputBytes,
      truncated: this.outbox.truncated,
      // The control plane refuses control characters in it (they could forge lines where it is shown).
       
      error: error === null ? null : error.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, ' ').slice(0, MAX_ERROR_LENGTH),
    });
  }
}
