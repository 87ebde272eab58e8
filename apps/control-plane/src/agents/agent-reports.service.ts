import {
  type AgentHello,
  type ErrorReply,
  ExecutionFinished,
  type ExecutionSpawned,
  type FinishedReply,
  type HelloReply,
  isTerminal,
  type OutputAck,
  type OutputBatch,
  protocolError,
  type SpawnedReply,
} from '@app/protocol';
import { Injectable, Logger } from '@nestjs/common';
import { ExecutionEvents } from '../executions/execution-events.js';
import { ExecutionOutputStore, type StoredChunk } from '../executions/execution-output.service.js';
import { ExecutionRepository } from '../executions/execution.repository.js';
import { AgentLink } from './agent-link.js';
import { ReportThrottle } from './report-throttle.js';
import { SerialCoalescer } from '@app/common';

/** What one output statement may carry when batches are merged (each batch: at most 256 chunks, 8 MiB). */
const MAX_BATCHES_PER_STATEMENT = 16;
const MAX_BYTES_PER_STATEMENT = 16 * 1024 * 1024;

/** The chunks of several batches in seq order, a seq sent twice kept as first sent. */
function mergeChunks(batches: PendingBatch[]): StoredChunk[] {
  const bySeq = new Map<number, StoredChunk>();
  for (const b of batches) for (const c of b.chunks) if (!bySeq.has(c.seq)) bySeq.set(c.seq, c);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** One validated output batch waiting for its execution's statement. */
interface PendingBatch {
  serverId: string;
  chunks: StoredChunk[];
  bytes: number;
}

const refuse = protocolError;
const unknownExecution = (id: string) => refuse('UNKNOWN_EXECUTION', `execution ${id} was not dispatched to this server`);
const isRefusal = (reply: object) => 'error' in reply;

export interface HelloOutcome {
  reply: HelloReply;
  /** Executions the agent runs but should stop (cancel requested, or already over here). */
  cancel: string[];
  /** Items of the hello refused (not this server's executions): each spends the agent's refusal budget. */
  refused: number;
}

/**
 * What an agent reports: output batches, spawned and finished reports, and the hello after each
 * connect. Payloads arrive parsed with the protocol's schemas by the gateway (malformed ones are
 * counted here as refusals); an agent may only report on executions dispatched to its own
 * server (anything else is refused and changes nothing). Thrown errors mean "could not store
 * now" (the gateway then drops the connection so the agent resends after its next hello).
 * What one agent's reports may cost is bounded (ReportThrottle): a flood is cut off.
 */
@Injectable()
export class AgentReports {
  private readonly logger = new Logger(AgentReports.name);
  private readonly throttle: ReportThrottle;
  /** Output batches per execution: one statement at a time, what queued up meanwhile together. */
  private readonly outputLanes = new SerialCoalescer<PendingBatch, OutputAck>(
    (executionId, batches) => this.storeBatches(executionId, batches),
    (group, next) =>
      next.serverId === group[0]!.serverId &&
      group.length < MAX_BATCHES_PER_STATEMENT &&
      group.reduce((n, b) => n + b.bytes, next.bytes) <= MAX_BYTES_PER_STATEMENT,
  );

  constructor(
    private readonly repo: ExecutionRepository,
    private readonly output: ExecutionOutputStore,
    private readonly events: ExecutionEvents,
    private readonly link: AgentLink,
  ) {
    this.throttle = new ReportThrottle((serverId, why) => {
      this.logger.warn({ serverId, why }, 'cutting off an agent whose reports exceed the limits');
      link.disconnect(serverId);
    });
  }

  /**
   * Stores a batch idempotently and acks it only once it is committed. Undefined (no answer) when
   * the agent was cut off before its turn.
   */
  storeOutput(serverId: string, batch: OutputBatch): Promise<OutputAck | undefined> {
    return this.throttle.run(serverId, () => this.storeOutputNow(serverId, batch), isRefusal);
  }

  /** A malformed message: answered with its refusal, which counts against the agent like any other. */
  refuseMalformed(serverId: string, refusal: ErrorReply): Promise<ErrorReply | undefined> {
    return this.throttle.run(serverId, () => Promise.resolve(refusal), () => true);
  }

  private async storeOutputNow(serverId: string, batch: OutputBatch): Promise<OutputAck> {
    const chunks: StoredChunk[] = batch.chunks.map((c) => ({
      seq: c.seq,
      stream: c.stream,
      data: Buffer.from(c.data.buffer, c.data.byteOffset, c.data.byteLength),
    }));
    let bytes = 0;
    for (let i = 0; i < chunks.length; i++) {
      if (i > 0 && chunks[i]!.seq <= chunks[i - 1]!.seq) return refuse('INVALID_PAYLOAD', `chunks.${i}.seq: not in increasing order`);
      bytes += chunks[i]!.data.length;
    }
    return this.outputLanes.run(batch.executionId, { serverId, chunks, bytes });
  }

  /**
   * Batches of one execution that queued up behind each other, in one statement: the chunks of
   * all (a seq sent twice counts once), then one answer per batch. Live events go out in seq
   * order, after the commit.
   */
  private async storeBatches(executionId: string, batches: PendingBatch[]): Promise<OutputAck[]> {
    const { serverId } = batches[0]!;
    const chunks = batches.length === 1 ? batches[0]!.chunks : mergeChunks(batches);
    const acks = (): OutputAck[] => batches.map((b) => ({ ackedSeq: b.chunks[b.chunks.length - 1]!.seq }));

    const stored = await this.repo.storeOutput(executionId, serverId, chunks);
    if (!stored) return batches.map(() => unknownExecution(executionId));
    if (stored.before === 'queued') return batches.map(() => refuse('NOT_DISPATCHED', `execution ${executionId} is queued, not dispatched`));
    for (const c of stored.stored) this.events.output.next({ executionId, workspaceId: stored.workspaceId, ...c });
    // A finished report that came before this output: complete the run now if nothing is missing any more.
    if (stored.report !== null && !isTerminal(stored.before)) {
      const report = ExecutionFinished.safeParse(stored.report);
      if (report.success) await this.repo.complete(serverId, report.data, false);
    }
    return acks();
  }

  finished(serverId: string, report: ExecutionFinished): Promise<FinishedReply | undefined> {
    return this.throttle.run(serverId, () => this.recordFinished(serverId, report), isRefusal);
  }

  /**
   * The agent spawned the run's process (protocol 2): `dispatched` becomes `running`. Acked as
   * well when the run is already running or over, so the agent stops resending it.
   */
  spawned(serverId: string, report: ExecutionSpawned): Promise<SpawnedReply | undefined> {
    return this.throttle.run(serverId, () => this.recordSpawned(serverId, report.executionId), isRefusal);
  }

  private async recordSpawned(serverId: string, executionId: string): Promise<SpawnedReply> {
    const r = await this.repo.markSpawned(executionId, serverId);
    if (r) {
      // A cancel asked for before the spawn may have reached the agent before its start did.
      if (r.cancelRequested) this.link.cancel(serverId, executionId);
      return { ok: true };
    }
    const [e] = await this.repo.ofServer(serverId, [executionId]);
    if (!e) return unknownExecution(executionId);
    if (e.status === 'queued') return refuse('NOT_DISPATCHED', `execution ${executionId} is queued, not dispatched`);
    return { ok: true };
  }

  /**
   * Completes the run when every chunk up to lastSeq is stored; if some are missing the report is
   * held and the output batch that completes it completes the run. A run the control plane already
   * ended keeps its status (the report is acked so the agent stops resending it).
   */
  private async recordFinished(serverId: string, report: ExecutionFinished): Promise<FinishedReply> {
    switch (await this.repo.complete(serverId, report, true)) {
      case 'unknown':
        return unknownExecution(report.executionId);
      case 'queued':
        return refuse('NOT_DISPATCHED', `execution ${report.executionId} is queued, not dispatched`);
      default:
        return { ok: true };
    }
  }

  /**
   * Reconciles after a (re)connect. What this server should be running but the agent knows
   * neither as running nor finished: `lost`, except a start that was never acked and produced no
   * output, which certainly never ran: back to `queued` while its delivery deadline holds.
   * The reply tells the agent, per execution it holds, the first seq not stored here.
   */
  async hello(serverId: string, hello: AgentHello): Promise<HelloOutcome> {
    const outcome = await this.throttle.run(serverId, () => this.helloNow(serverId, hello), (o) => (isRefusal(o.reply) ? 1 : o.refused));
    return outcome ?? { reply: refuse('CUT_OFF', 'this agent sent more than the control plane accepts; reconnect later'), cancel: [], refused: 0 };
  }

  private async helloNow(serverId: string, hello: AgentHello): Promise<HelloOutcome> {
    // Which of the listed executions are this server's: one statement for the whole hello, so a
    // list of unknown ids costs one query, not one per id.
    const held = [...hello.running.map((r) => ({ id: r.executionId, nextSeq: r.nextSeq })), ...hello.finished.map((f) => ({ id: f.executionId, nextSeq: f.lastSeq + 1 }))];
    const listed = new Map((await this.repo.ofServer(serverId, held.map((h) => h.id))).map((r) => [r.id, r]));
    let unknown = 0;
    let refusedFinished = 0;
    for (const report of hello.finished) {
      if (!listed.has(report.executionId)) {
        unknown++;
        continue;
      }
      if ('error' in (await this.recordFinished(serverId, report))) refusedFinished++;
    }
    unknown += hello.running.filter((r) => !listed.has(r.executionId)).length;
    if (unknown + refusedFinished > 0) {
      // Once per hello, with counts: a hello of thousands of forged ids is one line, not thousands.
      this.logger.warn({ serverId, unknown, refusedFinished, running: hello.running.length, finished: hello.finished.length }, 'refused items of a hello');
    }

    const known = new Set([...hello.running.map((r) => r.executionId), ...hello.finished.map((f) => f.executionId)]);
    for (const a of await this.repo.activeOn(serverId)) {
      if (known.has(a.id)) continue;
      // A start never acked that produced no output certainly never ran: queue it again.
      if (a.status === 'dispatched' && !a.accepted && !a.has_output && a.deliverable) {
        await this.repo.requeue(a.id);
      } else {
        await this.repo.markLost(a.id, 'the agent reconnected without this execution (it was restarted or lost the run)');
      }
    }

    // Read again: the finished reports above may have ended some.
    const own = new Map((await this.repo.ofServer(serverId, held.filter((h) => listed.has(h.id)).map((h) => h.id))).map((r) => [r.id, r]));
    const resend: { executionId: string; fromSeq: number }[] = [];
    const cancel: string[] = [];
    const running = new Set(hello.running.map((r) => r.executionId));
    for (const h of held) {
      const e = own.get(h.id);
      if (!e) continue; // not this server's: nothing to say about it
      if (running.has(h.id)) {
        // Ended here meanwhile (lost, timed out, cancelled while the agent was away): the agent stops it.
        if (isTerminal(e.status) || e.cancel_requested) cancel.push(h.id);
        else if (e.status === 'dispatched') await this.repo.markStarted(h.id, serverId);
      }
      // Output written after the control plane ended the run is still wanted: the whole of it, byte for byte.
      resend.push({ executionId: h.id, fromSeq: await this.output.firstMissingSeq(h.id) });
    }
    return { reply: { resend }, cancel, refused: unknown + refusedFinished };
  }
}
