import { type ExecutionFinished, type ExecutionStatus, type Interpreter, isTerminal, type StartExecution, type Trigger } from '@app/protocol';
import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import { ExecutionEvents, type StatusChanged } from './execution-events.js';
import { SerialCoalescer } from '../common/serial-coalescer.js';
import { preparedRows, rows } from './sql.js';

/** A queued execution this process just claimed (`dispatched`), with what its agent needs to run it. */
export interface ClaimedExecution {
  id: string;
  workspaceId: string;
  serverId: string;
  start: StartExecution;
}

/** An execution row with what its start command needs (script settings and the version's content). */
export interface ClaimRow {
  id: string;
  workspace_id: string;
  server_id: string;
  script_id: string;
  script_version: number;
  webhook_id: string | null;
  trigger: Trigger;
  interpreter: Interpreter;
  timeout_seconds: number;
  max_output_bytes: string;
  content: string;
}

interface ChangedRow {
  id: string;
  workspace_id: string;
  server_id: string;
  status: ExecutionStatus;
  exit_code: number | null;
}

/** Locked execution row, as the agent's reports need it. */
export interface LockedExecution {
  id: string;
  workspace_id: string;
  server_id: string;
  status: ExecutionStatus;
  cancel_requested: boolean;
  finish_report: ExecutionFinished | null;
}

const ACTIVE = `('dispatched', 'running')`;
/** Start acks marked `running` in one statement at most. */
const MAX_RUNNING_MARKS = 500;

/**
 * Every status change of an execution after it was queued. Each is one conditional UPDATE on the
 * status it expects, so two processes (or two nodes) racing on one execution cannot both win, and
 * a terminal status never changes again. Status events are emitted after the change committed.
 */
@Injectable()
export class ExecutionLifecycle {
  private readonly logger = new Logger(ExecutionLifecycle.name);
  private readonly runningMarks = new SerialCoalescer<string, { cancelRequested: boolean } | null>(
    (_serverId, ids) => this.markRunningNow(ids),
    (group) => group.length < MAX_RUNNING_MARKS,
  );

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly events: ExecutionEvents,
  ) {}

  /**
   * Claims up to `limit` queued executions of a server, oldest first, still inside their delivery
   * deadline: `queued` -> `dispatched` atomically (SKIP LOCKED: concurrent claimers take others).
   */
  async claimQueued(serverId: string, limit: number): Promise<ClaimedExecution[]> {
    const claimed = await this.withStart(
      `UPDATE execution SET status = 'dispatched', dispatched_at = now()
       WHERE status = 'queued' AND id IN (
         SELECT id FROM execution
         WHERE server_id = $1 AND status = 'queued' AND deliver_by > now()
         ORDER BY queued_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)`,
      [serverId, limit],
    );
    for (const c of claimed) this.emit({ id: c.id, workspace_id: c.workspaceId, server_id: c.serverId, status: 'dispatched', exit_code: null });
    return claimed;
  }

  /** Tells listeners about an execution that was created already claimed (`dispatched`) by this process. */
  announceDispatched(c: ClaimedExecution): void {
    this.emit({ id: c.id, workspace_id: c.workspaceId, server_id: c.serverId, status: 'dispatched', exit_code: null });
  }

  /**
   * Dispatched executions whose start was sent more than `olderThanMs` ago without an answer,
   * while their agent is connected: taken for one more start (the agent accepts a repeated start
   * of the same id once only). dispatched_at moves on, so one node resends at a time.
   */
  async takeUnanswered(serverId: string, olderThanMs: number, limit: number): Promise<ClaimedExecution[]> {
    return this.withStart(
      `UPDATE execution SET dispatched_at = now()
       WHERE status = 'dispatched' AND id IN (
         SELECT id FROM execution
         WHERE server_id = $1 AND status = 'dispatched' AND dispatched_at < now() - make_interval(secs => $3)
         ORDER BY queued_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)`,
      [serverId, limit, olderThanMs / 1000],
    );
  }

  /** Runs an UPDATE of executions and returns each with the start command of its recorded version. */
  private async withStart(update: string, params: unknown[]): Promise<ClaimedExecution[]> {
    const found = await rows<ClaimRow>(
      this.db,
      `WITH claimed AS (${update}
         RETURNING id, workspace_id, server_id, script_id, script_version, webhook_id, trigger, queued_at)
       SELECT c.*, s.interpreter, s.timeout_seconds, s.max_output_bytes, v.content
       FROM claimed c
       JOIN script s ON s.id = c.script_id
       JOIN script_version v ON v.script_id = c.script_id AND v.version = c.script_version
       ORDER BY c.queued_at, c.id`,
      params,
    );
    return found.map((r) => ({ id: r.id, workspaceId: r.workspace_id, serverId: r.server_id, start: startCommand(r) }));
  }

  /**
   * The agent accepted the start. Returns whether a cancel was asked for meanwhile, or null if it
   * was not `dispatched`. A server's acks that arrive while one UPDATE runs go into the next
   * together (per server, so a row lock one of them waits on holds up no other server).
   */
  markRunning(id: string, serverId: string): Promise<{ cancelRequested: boolean } | null> {
    return this.runningMarks.run(serverId, id);
  }

  private async markRunningNow(ids: string[]): Promise<({ cancelRequested: boolean } | null)[]> {
    const changed = await preparedRows<ChangedRow & { cancel_requested: boolean }>(
      this.db,
      // Rows locked in id order, as any other statement locking several executions should.
      `UPDATE execution x SET status = 'running', started_at = COALESCE(x.started_at, now())
       FROM (SELECT id FROM execution WHERE id = ANY($1::uuid[]) AND status = 'dispatched' ORDER BY id FOR UPDATE) l
       WHERE x.id = l.id AND x.status = 'dispatched'
       RETURNING x.id, x.workspace_id, x.server_id, x.status, x.exit_code, x.cancel_requested`,
      [ids],
    );
    for (const r of changed) this.emit(r);
    const byId = new Map(changed.map((r) => [r.id, r]));
    return ids.map((id) => {
      const r = byId.get(id);
      return r ? { cancelRequested: r.cancel_requested } : null;
    });
  }

  /** The agent refused the start (shutting down, invalid command): `failed` with its reason. */
  async markRefused(id: string, reason: string): Promise<void> {
    await this.change(
      `UPDATE execution SET status = 'failed', error = $2, finished_at = now()
       WHERE id = $1 AND status = 'dispatched' RETURNING ${RETURNED}`,
      [id, `the agent refused to start it: ${reason}`.slice(0, 2000)],
    );
  }

  /**
   * A dispatched execution that certainly never ran (no agent got the start, or the agent came back
   * without it and without any output): back to `queued`, or `cancelled` if a cancel was asked for.
   */
  async requeue(id: string): Promise<void> {
    await this.change(
      `UPDATE execution SET
         status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
         dispatched_at = NULL,
         finished_at = CASE WHEN cancel_requested THEN now() END,
         error = CASE WHEN cancel_requested THEN 'cancelled before it started' END
       WHERE id = $1 AND status = 'dispatched' RETURNING ${RETURNED}`,
      [id],
    );
  }

  /** The agent came back without it: `lost`. */
  async markLost(id: string, reason: string): Promise<void> {
    await this.change(
      `UPDATE execution SET status = 'lost', error = $2, finished_at = now()
       WHERE id = $1 AND status IN ${ACTIVE} RETURNING ${RETURNED}`,
      [id, reason],
    );
  }

  /**
   * Runs on these servers (whose agents are connected) that the agent reported finished but whose
   * output never arrived whole: nothing more of it came for `graceSeconds` since the report was
   * last held (a hello after a reconnect holds it again, and the agent then resends what is
   * missing at once). An honest agent always fills its gaps, so only a buggy or hostile one
   * leaves a run here; without this it would stay `running` for ever. Returns what changed.
   */
  async giveUpIncomplete(serverIds: string[], graceSeconds: number): Promise<{ id: string; serverId: string }[]> {
    if (serverIds.length === 0) return [];
    const changed = await this.change(
      `UPDATE execution x SET status = 'lost', finished_at = now(),
         error = 'the agent reported the end of this run, but not all of its output arrived (nothing more for ' || $2::int || ' s)'
       WHERE x.server_id = ANY($1::uuid[]) AND x.status IN ${ACTIVE} AND x.finish_report IS NOT NULL
         AND x.finish_held_at < now() - make_interval(secs => $2::int)
         AND NOT EXISTS (SELECT 1 FROM execution_output o
                         WHERE o.execution_id = x.id AND o.created_at >= now() - make_interval(secs => $2::int))
       RETURNING ${RETURNED}`,
      [serverIds, graceSeconds],
    );
    return changed.map((r) => ({ id: r.id, serverId: r.server_id }));
  }

  /**
   * Of these servers, the ones with queued executions (to dispatch) or with starts sent more than
   * `unansweredAfterMs` ago and not answered (to resend): one indexed query for any number.
   */
  async serversWithWork(serverIds: string[], unansweredAfterMs: number): Promise<{ serverId: string; queued: boolean; unanswered: boolean }[]> {
    if (serverIds.length === 0) return [];
    const found = await preparedRows<{ server_id: string; queued: boolean; unanswered: boolean }>(
      this.db,
      `SELECT server_id, bool_or(status = 'queued' AND deliver_by > now()) AS queued,
              bool_or(status = 'dispatched' AND dispatched_at < now() - make_interval(secs => $2)) AS unanswered
       FROM execution WHERE server_id = ANY($1::uuid[]) AND status IN ('queued', 'dispatched')
       GROUP BY server_id`,
      [serverIds, unansweredAfterMs / 1000],
    );
    return found.filter((r) => r.queued || r.unanswered).map((r) => ({ serverId: r.server_id, queued: r.queued, unanswered: r.unanswered }));
  }

  /** Queued executions whose delivery deadline passed: `undeliverable`. */
  async expireQueued(): Promise<number> {
    const changed = await this.change(
      `UPDATE execution SET status = 'undeliverable', finished_at = now(),
         error = 'the agent did not come online before the delivery deadline'
       WHERE status = 'queued' AND deliver_by <= now() RETURNING ${RETURNED}`,
      [],
    );
    return changed.length;
  }

  /** Locks an execution of this server for the rest of the transaction; null when it is not this server's. */
  async lockForServer(tx: EntityManager, id: string, serverId: string): Promise<LockedExecution | null> {
    const [row] = await rows<LockedExecution>(
      tx,
      `SELECT id, workspace_id, server_id, status, cancel_requested, finish_report
       FROM execution WHERE id = $1 AND server_id = $2 FOR UPDATE`,
      [id, serverId],
    );
    return row ?? null;
  }

  /**
   * Completes an execution whose finished report is held, if every chunk up to its lastSeq is
   * stored; otherwise it stays as it is until the missing chunks arrive. Inside the caller's
   * transaction, with the row locked; returns the change to emit after commit.
   */
  async completeIfWhole(tx: EntityManager, id: string, report: ExecutionFinished): Promise<StatusChanged | null> {
    if (report.lastSeq >= 0) {
      const [{ n }] = (await rows<{ n: number }>(
        tx,
        `SELECT count(*)::int AS n FROM execution_output WHERE execution_id = $1 AND seq <= $2`,
        [id, report.lastSeq],
      )) as [{ n: number }];
      if (n < report.lastSeq + 1) return null;
    }
    const { status, error } = outcome(report);
    const [row] = await rows<ChangedRow>(
      tx,
      `UPDATE execution SET status = $2, exit_code = $3, signal = $4, error = $5, output_truncated = $6,
         finished_at = now(), finish_report = $7
       WHERE id = $1 AND status IN ${ACTIVE} RETURNING ${RETURNED}`,
      [id, status, report.exitCode, report.signal, error, report.truncated, JSON.stringify(report)],
    );
    return row ? toEvent(row) : null;
  }

  /**
   * The usual finished report in one statement: when the execution is this server's, active, and
   * every chunk up to lastSeq is stored, it becomes terminal at once. `incomplete` means it is
   * active but output is missing (the caller then holds the report until it arrives).
   */
  async finishIfWhole(
    serverId: string,
    report: ExecutionFinished,
  ): Promise<{ kind: 'unknown' } | { kind: 'queued' } | { kind: 'over' } | { kind: 'incomplete' } | { kind: 'done'; change: StatusChanged }> {
    const { status, error } = outcome(report);
    const [row] = await preparedRows<{ before: ExecutionStatus; changed: ChangedRow | null }>(
      this.db,
      `WITH e AS (
         SELECT id, status FROM execution WHERE id = $1 AND server_id = $2 FOR UPDATE
       ), upd AS (
         UPDATE execution x SET status = $4, exit_code = $5, signal = $6, error = $7, output_truncated = $8,
           finished_at = now(), finish_report = $9
         FROM e WHERE x.id = e.id AND e.status IN ${ACTIVE}
           AND (SELECT count(*) FROM execution_output o WHERE o.execution_id = e.id AND o.seq <= $3::bigint) >= $3::bigint + 1
         RETURNING x.${RETURNED.split(', ').join(', x.')}
       )
       SELECT e.status AS before, (SELECT row_to_json(upd) FROM upd) AS changed FROM e`,
      [report.executionId, serverId, report.lastSeq, status, report.exitCode, report.signal, error, report.truncated, JSON.stringify(report)],
    );
    if (!row) return { kind: 'unknown' };
    if (row.before === 'queued') return { kind: 'queued' };
    if (row.changed) return { kind: 'done', change: toEvent(row.changed) };
    return isTerminal(row.before) ? { kind: 'over' } : { kind: 'incomplete' };
  }

  /** Announces committed changes. */
  emitAll(changes: (StatusChanged | null)[]): void {
    for (const c of changes) if (c) this.events.status.next(c);
  }

  /** One conditional UPDATE on its own (autocommit), so its events can go out at once. */
  private async change(sql: string, params: unknown[]): Promise<ChangedRow[]> {
    const changed = await preparedRows<ChangedRow>(this.db, sql, params);
    for (const r of changed) this.emit(r);
    return changed;
  }

  private emit(r: ChangedRow): void {
    this.logger.debug({ executionId: r.id, status: r.status }, 'execution status');
    this.events.status.next(toEvent(r));
  }
}

const RETURNED = 'id, workspace_id, server_id, status, exit_code';

function toEvent(r: ChangedRow): StatusChanged {
  return { executionId: r.id, workspaceId: r.workspace_id, serverId: r.server_id, status: r.status, exitCode: r.exit_code };
}

/** The terminal status a finished report means. */
export function outcome(r: ExecutionFinished): { status: ExecutionStatus; error: string | null } {
  if (r.cancelled) return { status: 'cancelled', error: r.error };
  if (r.timedOut) return { status: 'timed_out', error: r.error };
  if (r.error !== null) return { status: 'failed', error: r.error };
  if (r.exitCode === 0) return { status: 'succeeded', error: null };
  return { status: 'failed', error: r.exitCode === null && r.signal ? `killed by ${r.signal}` : null };
}

export function startCommand(r: ClaimRow): StartExecution {
  const env: Record<string, string> = {
    DEVPILOT_EXECUTION_ID: r.id,
    DEVPILOT_SCRIPT_ID: r.script_id,
    DEVPILOT_SCRIPT_VERSION: String(r.script_version),
    DEVPILOT_SERVER_ID: r.server_id,
    DEVPILOT_TRIGGER: r.trigger,
  };
  if (r.webhook_id) env.DEVPILOT_WEBHOOK_ID = r.webhook_id;
  return {
    executionId: r.id,
    interpreter: r.interpreter,
    content: r.content,
    env,
    timeoutMs: r.timeout_seconds * 1000,
    maxOutputBytes: Number(r.max_output_bytes),
  };
}
