import {
  ACTIVE_STATUSES,
  allowedFrom,
  type ExecutionFinished,
  type ExecutionStatus,
  isTerminal,
  PAYLOAD_SINCE_PROTOCOL,
  TERMINAL_STATUSES,
} from '@app/protocol';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { SerialCoalescer } from '@app/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ExecutionEvents, type StatusChanged } from './execution-events.js';
import type { StoredChunk } from './execution-output.service.js';
import { type ExecutionRow, VIEW_SELECT } from './execution-view.js';
import { type ClaimRow, outcome } from './run-commands.js';
import { preparedRows, type Queryable, rows } from './sql.js';
import { runSecrets } from '../secrets/secrets.service.js';
import { triggerAcceptGroup } from '../metrics/trigger-metrics.js';

/** What a statement that ends runs also returns: the servers whose next `queue` run may go now. */
interface Releases {
  released_servers: string[] | null;
  /** The runs it ended whose webhook has the `queue` policy (released once more, see releaseAgain). */
  queue_ended: string[] | null;
}

/** SQL: the `Releases` columns of a statement with the CTEs `ended` and `released`. */
const RELEASES = `(SELECT array_agg(DISTINCT server_id) FROM released) AS released_servers,
  (SELECT array_agg(e.id) FROM ended e JOIN webhook w ON w.id = e.ended_webhook_id AND w.concurrency = 'queue') AS queue_ended`;

/** A status change as the statements return it. */
interface ChangedRow {
  id: string;
  workspace_id: string;
  server_id: string;
  status: ExecutionStatus;
  exit_code: number | null;
}

/** What a status change may set beside the status; the timestamps follow from the status itself. */
export interface TransitionPatch {
  /** The reason of a terminal status that is not a plain exit. */
  error?: string | null;
  exitCode?: number | null;
  signal?: string | null;
  outputTruncated?: boolean;
  cancelRequested?: boolean;
}

/** How a new execution comes about: a webhook call (with its delivery row), or a manual run. */
export type NewExecution =
  | {
      trigger: 'webhook';
      webhookId: string;
      allowedIps: string[];
      sourceIp: string;
      userAgent: string | null;
      /** The sender's delivery id: remembered with the execution, so the same id is never run twice. */
      deliveryId: string | null;
      /** The policy the call was checked against; the statement creates nothing if it changed meanwhile. */
      policy: WebhookPolicy;
      /** Whether the webhook passed its request to the script when the call was checked (as `policy`). */
      passPayload: boolean;
      /** The request, kept for the run until it ends (given exactly when `passPayload`). */
      payload: SealedPayload | null;
    }
  | { trigger: 'manual'; workspaceId: string; scriptId: string; serverId: string };

/** A webhook call whose webhook has no policy (runs in parallel, no cooldown): accepted in groups. */
interface PlainCall {
  spec: Extract<NewExecution, { trigger: 'webhook' }>;
  dispatchNow: boolean;
}

/** What an accept statement answers for one call (see create()). */
export type Acceptance = CreatedRow | 'overloaded' | 'duplicate' | null;

/** A new execution, with its start command's ingredients (content only when it was created `dispatched`). */
export interface CreatedRow extends ClaimRow {
  status: 'queued' | 'dispatched';
  queued_at: Date;
  deliver_by: Date;
}

/** A webhook call's request as kept for its run (`execution_payload`): the body sealed under the master key. */
export interface SealedPayload {
  bodySealed: Buffer;
  event: string;
  deliveryId: string;
  contentType: string;
}

/** How a webhook's runs may overlap. */
export interface WebhookPolicy {
  concurrency: 'parallel' | 'queue' | 'skip' | 'replace';
  cooldownSeconds: number;
}

/** Why a call was answered `skipped`, and the run it names. */
export interface Skipped {
  reason: 'ALREADY_RUNNING' | 'COOLDOWN';
  executionId: string;
}

/** The execution an earlier call with the same delivery id created. */
export interface RememberedDelivery {
  id: string;
  status: ExecutionStatus;
}

/** How long a webhook remembers an accepted delivery id (a sender's retries and replays fall inside). */
export const DELIVERY_MEMORY_SECONDS = 24 * 3600;

export type CompleteOutcome = 'unknown' | 'queued' | 'over' | 'incomplete' | 'done';

/** A finished report waiting for its server's completion statement. */
interface PendingCompletion {
  report: ExecutionFinished;
  /** Keep the report when the output is not whole yet (false: the output path asks again). */
  hold: boolean;
}

const RETURNED = 'x.id, x.workspace_id, x.server_id, x.status, x.exit_code';
/** Start acks (and spawn and finished reports) handled in one statement at most. */
const MAX_START_MARKS = 500;
/** Plain webhook calls accepted in one statement at most, and the bytes of the requests they carry. */
const MAX_ACCEPTS = 100;
const MAX_ACCEPT_PAYLOAD_BYTES = 4 * 1024 * 1024;
/** Rows a webhook's call counter is spread over at most (by database session). */
const TALLY_SHARDS = 32;
/** Batches of up to this many chunks (the usual ones) run as prepared statements, one per count. */
const PREPARED_MAX_CHUNKS = 4;

/** `x.status = ANY('{...}')`: the statuses `to` may follow, from the transitions table. */
function guard(to: ExecutionStatus): string {
  return `x.status = ANY('{${allowedFrom(to).join(',')}}'::text[])`;
}

/** guard() for a status chosen per row (`column`), one of `targets`: the same table, one branch per target. */
function guardTo(column: string, targets: readonly ExecutionStatus[]): string {
  return `CASE ${column} ${targets.map((to) => `WHEN '${to}' THEN ${guard(to)}`).join(' ')} ELSE false END`;
}

/** The columns of a new execution its accept statement returns. */
const NEW_COLUMNS = 'id, workspace_id, script_id, script_version, server_id, webhook_id, trigger, status, queued_at, deliver_by, timeout_seconds';

const ACTIVE = `('${ACTIVE_STATUSES.join("', '")}')`;

/** Deletes the kept requests of the runs in CTE `ended` (they just became terminal): never kept past the run. */
const FORGET_PAYLOADS = (ended: string) => `DELETE FROM execution_payload p USING ${ended} WHERE p.execution_id = ${ended}.id`;

/**
 * SQL: the queued run `a` waits behind its webhook's `queue` policy: another run of the webhook is
 * dispatched or running, or was accepted before it and still waits. Such a run is neither claimed
 * nor expired; only the oldest waiting run of the webhook goes, once nothing of it is active.
 */
function heldByQueue(a: string): string {
  return `(${a}.webhook_id IS NOT NULL
    AND EXISTS (SELECT 1 FROM webhook qw WHERE qw.id = ${a}.webhook_id AND qw.concurrency = 'queue')
    AND EXISTS (SELECT 1 FROM execution qa WHERE qa.webhook_id = ${a}.webhook_id AND qa.id <> ${a}.id
                AND (qa.status IN ${ACTIVE} OR (qa.status = 'queued' AND (qa.queued_at, qa.id) < (${a}.queued_at, ${a}.id)))))`;
}

/**
 * SQL: a CTE `released` for a statement whose CTE `ended` ends runs (returning `id` and
 * `ended_webhook_id`): for each `queue` webhook among them, the oldest waiting run, when no other
 * run of the webhook stays active, gets its delivery deadline from now (the time it waited behind
 * the policy does not count). Returns the servers that have a run to dispatch now.
 */
function releaseNext(deadlineParam: string): string {
  return `released AS (
    UPDATE execution n SET deliver_by = greatest(n.deliver_by, now() + make_interval(secs => ${deadlineParam}))
    FROM (SELECT DISTINCT ended.ended_webhook_id AS webhook_id FROM ended
          JOIN webhook w ON w.id = ended.ended_webhook_id AND w.concurrency = 'queue') q
    WHERE n.status = 'queued'
      AND n.id = (SELECT h.id FROM execution h
                  WHERE h.webhook_id = q.webhook_id AND h.status = 'queued' AND h.id NOT IN (SELECT id FROM ended)
                  ORDER BY h.queued_at, h.id LIMIT 1)
      AND NOT EXISTS (SELECT 1 FROM execution a
                      WHERE a.webhook_id = q.webhook_id AND a.status IN ${ACTIVE} AND a.id NOT IN (SELECT id FROM ended))
    RETURNING n.server_id)`;
}

/**
 * SQL: whether a new run for `serverId` is created `dispatched` or `queued`: dispatched when its
 * server's agent is ready here (`dispatchNow`) or the server is online (its agent may be on another
 * node), and no run of the server waits (other than behind its webhook's `queue` policy), nor,
 * with `extra`, anything else that condition names.
 */
function newStatus(serverId: string, dispatchNow: string, extra = ''): string {
  return `SELECT CASE WHEN (${dispatchNow} OR EXISTS (SELECT 1 FROM server o WHERE o.id = ${serverId} AND o.status = 'online'))
             AND NOT EXISTS (
               SELECT 1 FROM execution q WHERE q.server_id = ${serverId} AND q.status = 'queued' AND NOT ${heldByQueue('q')}
             ) ${extra} THEN 'dispatched' ELSE 'queued' END AS status`;
}

/**
 * SQL, a CTE: the call counter of each webhook in CTE `src` (one row per accepted call) moved by
 * its calls, on the tally row of this database session's shard. Sessions of other nodes mostly
 * land on other rows, so their accepts do not queue on one row lock until each other's commit.
 */
const TALLY = `tally AS (
         INSERT INTO webhook_call_tally AS t (webhook_id, shard, calls, last_called_at)
         SELECT webhook_id, pg_backend_pid() % ${TALLY_SHARDS}, count(*), now() FROM src GROUP BY webhook_id
         ON CONFLICT (webhook_id, shard) DO UPDATE
           SET calls = t.calls + EXCLUDED.calls, last_called_at = greatest(t.last_called_at, EXCLUDED.last_called_at)
       )`;

/**
 * SQL: webhook row `w` is active and still has the settings a call was checked against (`checked`:
 * SQL expressions of those settings), so the accept goes on only for the webhook as it is now.
 */
function webhookMatches(w: string, checked: { allowedIps: string; concurrency: string; cooldownSeconds: string; passPayload: string }): string {
  return `${w}.active AND ${w}.allowed_ips = ${checked.allowedIps} AND ${w}.concurrency = ${checked.concurrency}
         AND ${w}.cooldown_seconds = ${checked.cooldownSeconds} AND ${w}.pass_payload = ${checked.passPayload}`;
}

/** webhookMatches() against the settings in the columns of row `r`. */
const checkedIn = (r: string) => ({
  allowedIps: `${r}.allowed_ips`,
  concurrency: `${r}.concurrency`,
  cooldownSeconds: `${r}.cooldown_seconds`,
  passPayload: `${r}.pass_payload`,
});

/**
 * SQL: the bytes of the kept requests (pass_payload) of the runs waiting for server `serverId`: with
 * the count of waiting runs, what the backlog bound holds (at most DEVPILOT_MAX_QUEUED_PER_SERVER
 * rows to sum).
 */
function queuedRequestBytes(serverId: string): string {
  return `(SELECT coalesce(sum(octet_length(p.body_encrypted)), 0) FROM execution q JOIN execution_payload p ON p.execution_id = q.id
           WHERE q.server_id = ${serverId} AND q.status = 'queued')`;
}

/** SQL: the joins a start command's ingredients come from, for the run rows `r`: its script `s`, version `v` and server `srv`. */
function startJoins(r: string): string {
  return `JOIN script s ON s.id = ${r}.script_id
         JOIN script_version v ON v.script_id = ${r}.script_id AND v.version = ${r}.script_version
         JOIN server srv ON srv.id = ${r}.server_id`;
}

/** SQL: what a start command needs to know of the run rows `r` beyond their script (with startJoins). */
function startFacts(r: string): string {
  return `srv.allow_run_as IS NOT NULL AS agent_knows_run_as,
                coalesce(srv.agent_protocol_version, 0) >= ${PAYLOAD_SINCE_PROTOCOL} AS agent_knows_payload,
                (SELECT w.name FROM webhook w WHERE w.id = ${r}.webhook_id) AS webhook_name`;
}

/** SQL: the new runs of CTE `e` with their start command's ingredients (content only for a `dispatched` one). */
function createdRows(hasPayload: string): string {
  return `SELECT e.*, s.interpreter, s.max_output_bytes, CASE WHEN e.status = 'dispatched' THEN v.content END AS content, v.secrets, v.run_as,
                ${hasPayload} AS has_payload, ${startFacts('e')}
         FROM e
         ${startJoins('e')}`;
}

/**
 * The only writer of `execution` and `execution_output`. Every status change goes through
 * `change()` (or a hot-path statement built with the same `guard()`), whose WHERE clause comes
 * from the transitions table, so a status can only follow one the table allows, two nodes racing
 * on one execution cannot both win, and a terminal status never changes again. Status events are
 * emitted here, after the change committed. Batching (start acks, output batches) is this
 * class's business, so callers stay one call per message.
 */
@Injectable()
export class ExecutionRepository {
  private readonly logger = new Logger(ExecutionRepository.name);
  private readonly startMarks = new SerialCoalescer<string, { cancelRequested: boolean } | null>(
    (_serverId, ids) => this.markStartedNow(ids),
    (group) => group.length < MAX_START_MARKS,
  );
  private readonly completions = new SerialCoalescer<PendingCompletion, CompleteOutcome>(
    (serverId, items) => this.completeNow(serverId, items),
    (group, next) => group.length < MAX_START_MARKS && !group.some((i) => i.report.executionId === next.report.executionId),
  );
  private readonly accepts = new SerialCoalescer<PlainCall, { row: Acceptance } | { error: unknown }>(
    (_serverId, calls) => this.acceptNow(calls),
    (group, next) =>
      group.length < MAX_ACCEPTS &&
      // One delivery id twice in one statement would make its memory row conflict with itself.
      (next.spec.deliveryId === null || !group.some((c) => c.spec.webhookId === next.spec.webhookId && c.spec.deliveryId === next.spec.deliveryId)) &&
      group.reduce((n, c) => n + (c.spec.payload?.bodySealed.length ?? 0), next.spec.payload?.bodySealed.length ?? 0) <= MAX_ACCEPT_PAYLOAD_BYTES,
  );
  private readonly spawnMarks = new SerialCoalescer<string, { cancelRequested: boolean } | null>(
    (serverId, ids) => this.markSpawnedNow(serverId, ids),
    (group) => group.length < MAX_START_MARKS,
  );

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectDataSource() private readonly db: DataSource,
    private readonly events: ExecutionEvents,
  ) {}

  // ---- creation -------------------------------------------------------------------------------

  /**
   * One statement, so one round trip and its own transaction: the execution of the script's
   * current version; for a webhook call also its call counter's tally (only while the webhook is
   * still active with the allowed IPs the call was checked against) and the delivery row. With
   * `dispatchNow` (this node holds the server's ready agent), or with the server online (its
   * agent may be on another node, which is handed the run's id and sends the start itself; a run
   * nobody holds an agent for is requeued), and nothing older queued for the server, it is
   * created already claimed (`dispatched`) with its content.
   * `overloaded` when DEVPILOT_MAX_QUEUED_PER_SERVER runs already wait for the server, or a kept
   * request would take the bytes of those waiting past DEVPILOT_MAX_QUEUED_REQUEST_BYTES_PER_SERVER
   * (nothing is written, the call counter included); null when the webhook no longer matches or the
   * script/server is gone.
   */
  async create(spec: NewExecution, dispatchNow: boolean, on?: Queryable): Promise<CreatedRow | 'overloaded' | 'duplicate' | null> {
    const params: unknown[] = [dispatchNow, this.config.deliveryDeadlineMs / 1000, this.config.maxQueuedPerServer];
    let target: string;
    let source: string;
    let after = '';
    let remember = '';
    let idColumn = '';
    let idValue = '';
    let requestRoom = '';
    // queue: a call waits while another run of the webhook waits or is active (the caller holds
    // the webhook's row lock, so concurrent calls are decided one after the other).
    let waitsForWebhook = '';
    if (spec.trigger === 'webhook') {
      if (spec.policy.concurrency === 'queue') {
        waitsForWebhook = `AND NOT EXISTS (
               SELECT 1 FROM execution p WHERE p.webhook_id = src.webhook_id AND p.status IN ('queued', ${ACTIVE.slice(1)}
             )`;
      }
      params.push(spec.webhookId, spec.allowedIps, spec.sourceIp, spec.userAgent?.slice(0, 512) ?? null);
      params.push(spec.policy.concurrency, spec.policy.cooldownSeconds, spec.passPayload);
      const matches = `webhook.id = $4 AND ${webhookMatches('webhook', { allowedIps: '$5::text[]', concurrency: '$8', cooldownSeconds: '$9', passPayload: '$10' })}`;
      target = `SELECT workspace_id, script_id, server_id, id AS webhook_id FROM webhook WHERE ${matches}`;
      // The counter moves only for a call that is accepted, and only while the webhook still matches.
      let gate = 'EXISTS (SELECT 1 FROM room)';
      if (spec.deliveryId !== null) {
        // The delivery id is remembered in the same statement as the accept: of concurrent calls
        // with one id (on any node) the first insert wins, the others wait for it on the key and
        // then find it there, so they create nothing. An expired id is taken over.
        params.push(spec.deliveryId, DELIVERY_MEMORY_SECONDS);
        remember = `, mem AS (
         INSERT INTO webhook_delivery_id AS m (webhook_id, delivery_id, execution_id, expires_at)
         SELECT room.webhook_id, $11, gen_random_uuid(), now() + make_interval(secs => $12) FROM room
         ON CONFLICT (webhook_id, delivery_id) DO UPDATE
           SET execution_id = EXCLUDED.execution_id, expires_at = EXCLUDED.expires_at
           WHERE m.expires_at <= now()
         RETURNING execution_id)`;
        gate = 'EXISTS (SELECT 1 FROM mem)';
        idColumn = 'id, ';
        idValue = '(SELECT execution_id FROM mem), ';
      }
      // FOR SHARE: an edit of the webhook in progress is waited for and the call checked against
      // its outcome; accepts of the same webhook (on any node) do not wait for each other.
      source = `SELECT workspace_id, script_id, server_id, id AS webhook_id FROM webhook
         WHERE ${matches} AND ${gate}
         FOR SHARE`;
      after = `, ${TALLY}, delivery AS (
         INSERT INTO webhook_delivery (webhook_id, workspace_id, source_ip, status_code, code, reason, execution_id, user_agent)
         SELECT e.webhook_id, e.workspace_id, $6, 202, 'ACCEPTED', 'accepted', e.id, $7 FROM e)`;
      if (spec.payload) {
        // In the same statement as the execution: an accepted call never runs without its request.
        const { bodySealed, event, deliveryId, contentType } = spec.payload;
        params.push(bodySealed, event, deliveryId, contentType);
        const n = params.length;
        after += `, payload AS (
         INSERT INTO execution_payload (execution_id, body_encrypted, event, delivery_id, content_type)
         SELECT e.id, $${n - 3}, $${n - 2}, $${n - 1}, $${n} FROM e)`;
        params.push(this.config.maxQueuedRequestBytesPerServer);
        requestRoom = ` AND ${queuedRequestBytes('b.server_id')} + octet_length($${n - 3}::bytea) <= $${n + 1}`;
      }
    } else {
      params.push(spec.workspaceId, spec.scriptId, spec.serverId);
      target = `SELECT sc.workspace_id, sc.id AS script_id, sv.id AS server_id, NULL::uuid AS webhook_id
         FROM script sc JOIN server sv ON sv.id = $6 AND sv.workspace_id = sc.workspace_id
         WHERE sc.id = $5 AND sc.workspace_id = $4`;
      source = `SELECT workspace_id, script_id, server_id, webhook_id FROM room`;
    }
    // The backlog bound: runs already waiting for this server, counted up to the bound only (the
    // usual case, nothing queued, reads one index entry); for a kept request, their requests' bytes.
    const sql = `WITH t AS (${target}), b AS (
         SELECT t.*, (SELECT count(*) FROM (SELECT 1 FROM execution q WHERE q.server_id = t.server_id AND q.status = 'queued' LIMIT $3) z) AS backlog
         FROM t
       ), room AS (SELECT * FROM b WHERE backlog < $3${requestRoom})${remember}, src AS (${source}), e AS (
         INSERT INTO execution (${idColumn}workspace_id, script_id, script_version, server_id, webhook_id, trigger, status,
                                queued_at, deliver_by, dispatched_at, timeout_seconds)
         SELECT ${idValue}src.workspace_id, src.script_id, s.current_version, src.server_id, src.webhook_id, '${spec.trigger}', d.status,
                -- The time of the insert, not of the transaction's start: under a webhook's row lock
                -- the order of queued_at is the order calls were accepted in (what queue runs by).
                -- A run created dispatched is dispatched then too (now() could read before queued_at).
                clock_timestamp(), now() + make_interval(secs => $2), CASE WHEN d.status = 'dispatched' THEN clock_timestamp() END, s.timeout_seconds
         FROM src
         JOIN script s ON s.id = src.script_id
         CROSS JOIN LATERAL (${newStatus('src.server_id', '$1::boolean', waitsForWebhook)}) d
         RETURNING ${NEW_COLUMNS}
       )${after}
       SELECT x.*, EXISTS (SELECT 1 FROM b) AND NOT EXISTS (SELECT 1 FROM room) AS overloaded,
              ${remember ? 'EXISTS (SELECT 1 FROM room) AND NOT EXISTS (SELECT 1 FROM mem)' : 'false'} AS duplicate
       FROM (SELECT 1) one LEFT JOIN (${createdRows(spec.trigger === 'webhook' && spec.payload ? 'true' : 'false')}) x ON true`;
    type Row = CreatedRow & { overloaded: boolean | null; duplicate: boolean };
    const once = () => (on ? rows<Row>(on, sql, params) : preparedRows<Row>(this.db, sql, params));
    const run = async () => {
      try {
        return await once();
      } catch (e) {
        // A script or server being deleted at this moment locks in the other order: one retry
        // (inside a caller's transaction the error has ended it: the caller decides).
        if (!on && isSerializationFailure(e)) return once();
        throw e;
      }
    };
    try {
      const [row] = await run();
      if (!row?.id) return row?.duplicate ? 'duplicate' : row?.overloaded ? 'overloaded' : null;
      // Only the row's own columns go on (callers tell a duplicate by its shape).
      const created: CreatedRow & { overloaded?: unknown; duplicate?: unknown } = { ...row };
      delete created.overloaded;
      delete created.duplicate;
      if (created.status === 'dispatched' && !on) this.emit([{ ...created, exit_code: null }]);
      return created;
    } catch (e) {
      // The script, server or webhook was deleted while the statement ran.
      if (pgCode(e) === '23503') return null;
      throw e;
    }
  }

  /**
   * create() for a webhook call whose webhook has no policy (parallel, no cooldown), the usual
   * kind: a group commit. The calls for one server that arrive while its accept statement runs go
   * into the next statement together (acceptTogether), so a burst costs a statement, a commit and
   * a webhook-row lock per group instead of per call. A lone call runs create() at once.
   */
  async accept(spec: PlainCall['spec'], serverId: string, dispatchNow: boolean): Promise<Acceptance> {
    const answer = await this.accepts.run(serverId, { spec, dispatchNow });
    if ('error' in answer) throw answer.error;
    return answer.row;
  }

  private async acceptNow(calls: PlainCall[]): Promise<Array<{ row: Acceptance } | { error: unknown }>> {
    if (calls.length > 1) {
      try {
        const answers = await this.acceptTogether(calls);
        triggerAcceptGroup.observe(calls.length);
        return answers.map((row) => ({ row }));
      } catch (e) {
        // One call's failure (its script or server deleted meanwhile, a lock taken in the other
        // order) ends the whole statement: then each call goes alone and gets its own answer.
        this.logger.debug({ err: e, calls: calls.length }, 'group accept failed; accepting the calls one by one');
      }
    }
    for (let i = 0; i < calls.length; i++) triggerAcceptGroup.observe(1);
    return Promise.all(calls.map((c) => this.create(c.spec, c.dispatchNow).then((row) => ({ row }), (error: unknown) => ({ error }))));
  }

  /**
   * create() for several plain webhook calls in one statement, answers in the calls' order: each
   * call's execution, delivery row, request and remembered delivery id, and each webhook's call
   * counter moved once by its accepted calls (under its row lock, only while the webhook still
   * matches what the calls were checked against). The backlog bound counts the calls queued
   * ahead in the group too.
   */
  private async acceptTogether(calls: PlainCall[]): Promise<Acceptance[]> {
    const input = calls.map(({ spec, dispatchNow }, i) => ({
      i: i + 1,
      // Made here so that a call's remembered delivery id names its execution before it exists.
      id: randomUUID(),
      webhook_id: spec.webhookId,
      allowed_ips: spec.allowedIps,
      source_ip: spec.sourceIp,
      user_agent: spec.userAgent?.slice(0, 512) ?? null,
      delivery_id: spec.deliveryId,
      concurrency: spec.policy.concurrency,
      cooldown_seconds: spec.policy.cooldownSeconds,
      pass_payload: spec.passPayload,
      dispatch_now: dispatchNow,
      has_payload: spec.payload !== null,
      event: spec.payload?.event ?? null,
      payload_delivery_id: spec.payload?.deliveryId ?? null,
      content_type: spec.payload?.contentType ?? null,
    }));
    const params = [
      JSON.stringify(input),
      this.config.deliveryDeadlineMs / 1000,
      this.config.maxQueuedPerServer,
      DELIVERY_MEMORY_SECONDS,
      calls.map((c) => c.spec.payload?.bodySealed ?? null),
      this.config.maxQueuedRequestBytesPerServer,
    ];
    const sql = `WITH c AS (
         SELECT * FROM jsonb_to_recordset($1::jsonb) AS c(
           i int, id uuid, webhook_id uuid, allowed_ips text[], source_ip text, user_agent text, delivery_id text,
           concurrency text, cooldown_seconds int, pass_payload boolean, dispatch_now boolean,
           has_payload boolean, event text, payload_delivery_id text, content_type text)
       ), t AS (
         SELECT c.*, w.workspace_id, w.script_id, w.server_id
         FROM c JOIN webhook w ON w.id = c.webhook_id AND ${webhookMatches('w', checkedIn('c'))}
       ), waiting AS (
         -- Counted once per server (up to the bound), not once per call; the bytes of kept requests
         -- only where a call of the group keeps one.
         SELECT s.server_id, (SELECT count(*) FROM (SELECT 1 FROM execution q WHERE q.server_id = s.server_id AND q.status = 'queued' LIMIT $3) z) AS n,
                CASE WHEN s.keeps THEN ${queuedRequestBytes('s.server_id')} ELSE 0 END AS request_bytes
         FROM (SELECT server_id, bool_or(has_payload) AS keeps FROM t GROUP BY server_id) s
       ), decided AS (
         SELECT t.*, d.status, CASE WHEN t.has_payload THEN octet_length(($5::bytea[])[t.i]) ELSE 0 END AS own_bytes
         FROM t CROSS JOIN LATERAL (${newStatus('t.server_id', 't.dispatch_now')}) d
       ), b AS (
         -- The calls queued ahead in the group count too: their runs and their requests' bytes.
         SELECT x.*,
                waiting.n + CASE WHEN x.status = 'queued'
                  THEN count(*) FILTER (WHERE x.status = 'queued') OVER ahead - 1 ELSE 0 END AS backlog,
                waiting.request_bytes + CASE WHEN x.status = 'queued'
                  THEN coalesce(sum(x.own_bytes) FILTER (WHERE x.status = 'queued') OVER ahead, 0) ELSE x.own_bytes END AS request_bytes
         FROM decided x JOIN waiting ON waiting.server_id = x.server_id
         WINDOW ahead AS (PARTITION BY x.server_id ORDER BY x.i)
       ), room AS (SELECT * FROM b WHERE backlog < $3 AND (NOT has_payload OR request_bytes <= $6)), mem AS (
         INSERT INTO webhook_delivery_id AS m (webhook_id, delivery_id, execution_id, expires_at)
         SELECT webhook_id, delivery_id, id, now() + make_interval(secs => $4) FROM room WHERE delivery_id IS NOT NULL
         ON CONFLICT (webhook_id, delivery_id) DO UPDATE
           SET execution_id = EXCLUDED.execution_id, expires_at = EXCLUDED.expires_at
           WHERE m.expires_at <= now()
         RETURNING execution_id
       ), fresh AS (
         SELECT * FROM room WHERE delivery_id IS NULL OR id IN (SELECT execution_id FROM mem)
       ), current AS (
         -- As in create(): under a share lock, so an edit in progress is waited for.
         SELECT w.id, w.active, w.allowed_ips, w.concurrency, w.cooldown_seconds, w.pass_payload
         FROM webhook w
         WHERE w.id IN (SELECT webhook_id FROM fresh)
         FOR SHARE
       ), src AS (
         -- Only the calls checked against the webhook as it is now (a call checked before an edit is not).
         SELECT * FROM fresh f WHERE EXISTS (SELECT 1 FROM current k WHERE k.id = f.webhook_id AND ${webhookMatches('k', checkedIn('f'))})
       ), ${TALLY}, e AS (
         INSERT INTO execution (id, workspace_id, script_id, script_version, server_id, webhook_id, trigger, status,
                                queued_at, deliver_by, dispatched_at, timeout_seconds)
         SELECT src.id, src.workspace_id, src.script_id, s.current_version, src.server_id, src.webhook_id, 'webhook', src.status,
                clock_timestamp(), now() + make_interval(secs => $2), CASE WHEN src.status = 'dispatched' THEN clock_timestamp() END, s.timeout_seconds
         FROM src
         JOIN script s ON s.id = src.script_id
         ORDER BY src.i
         RETURNING ${NEW_COLUMNS}
       ), delivery AS (
         INSERT INTO webhook_delivery (webhook_id, workspace_id, source_ip, status_code, code, reason, execution_id, user_agent)
         SELECT e.webhook_id, e.workspace_id, src.source_ip, 202, 'ACCEPTED', 'accepted', e.id, src.user_agent FROM e JOIN src ON src.id = e.id
       ), payload AS (
         INSERT INTO execution_payload (execution_id, body_encrypted, event, delivery_id, content_type)
         SELECT e.id, ($5::bytea[])[src.i], src.event, src.payload_delivery_id, src.content_type
         FROM e JOIN src ON src.id = e.id WHERE src.has_payload
       )
       SELECT x.*, r.i IS NULL AND b.i IS NOT NULL AS overloaded,
              r.delivery_id IS NOT NULL AND r.id NOT IN (SELECT execution_id FROM mem) AS duplicate
       FROM c LEFT JOIN b ON b.i = c.i LEFT JOIN room r ON r.i = c.i
       LEFT JOIN (${createdRows('EXISTS (SELECT 1 FROM src WHERE src.id = e.id AND src.has_payload)')}) x ON x.id = c.id
       ORDER BY c.i`;
    type Row = CreatedRow & { overloaded: boolean; duplicate: boolean };
    const found = await preparedRows<Row>(this.db, sql, params);
    const answers = found.map((row): Acceptance => {
      if (!row.id) return row.duplicate ? 'duplicate' : row.overloaded ? 'overloaded' : null;
      const created: CreatedRow & { overloaded?: unknown; duplicate?: unknown } = { ...row };
      delete created.overloaded;
      delete created.duplicate;
      return created;
    });
    this.emit(answers.flatMap((a) => (a !== null && typeof a === 'object' && a.status === 'dispatched' ? [{ ...a, exit_code: null }] : [])));
    return answers;
  }

  /**
   * A webhook call under a policy (queue, skip, replace, a cooldown): in one transaction holding the
   * webhook's row lock, so concurrent calls on any node are decided one after the other against
   * what the earlier ones committed. In order: a delivery seen before, the cooldown, a run already
   * active (skip: nothing is created; replace: the active runs are returned for cancelling), then
   * the usual accept statement (queue: the run is created `queued` while another waits or runs).
   */
  async createUnderPolicy(
    spec: Extract<NewExecution, { trigger: 'webhook' }>,
    dispatchNow: boolean,
  ): Promise<{ created: CreatedRow; replaces: string[] } | { skipped: Skipped } | 'overloaded' | 'duplicate' | null> {
    const qr = this.db.createQueryRunner();
    await qr.connect();
    let committed = false;
    try {
      await qr.startTransaction();
      const [w] = await rows<{ concurrency: string; cooldown_seconds: number }>(
        qr,
        `SELECT concurrency, cooldown_seconds FROM webhook WHERE id = $1 FOR UPDATE`,
        [spec.webhookId],
      );
      if (!w || w.concurrency !== spec.policy.concurrency || w.cooldown_seconds !== spec.policy.cooldownSeconds) return null;
      if (spec.deliveryId !== null) {
        const [seen] = await rows<{ id: string }>(
          qr,
          `SELECT 1 AS id FROM webhook_delivery_id WHERE webhook_id = $1 AND delivery_id = $2 AND expires_at > now()`,
          [spec.webhookId, spec.deliveryId],
        );
        if (seen) return 'duplicate';
      }
      if (spec.policy.cooldownSeconds > 0) {
        const [last] = await rows<{ id: string; recent: boolean }>(
          qr,
          `SELECT id, queued_at > now() - make_interval(secs => $2) AS recent FROM execution
           WHERE webhook_id = $1 ORDER BY queued_at DESC LIMIT 1`,
          [spec.webhookId, spec.policy.cooldownSeconds],
        );
        if (last?.recent) return { skipped: { reason: 'COOLDOWN', executionId: last.id } };
      }
      let active: string[] = [];
      // queue needs no look here: the accept statement makes the run wait behind the others.
      if (spec.policy.concurrency === 'skip' || spec.policy.concurrency === 'replace') {
        const found = await rows<{ id: string }>(
          qr,
          `SELECT id FROM execution WHERE webhook_id = $1 AND status IN ('queued', ${ACTIVE.slice(1)} ORDER BY queued_at, id`,
          [spec.webhookId],
        );
        active = found.map((r) => r.id);
        if (spec.policy.concurrency === 'skip' && active.length) return { skipped: { reason: 'ALREADY_RUNNING', executionId: active[0]! } };
      }
      const created = await this.create(spec, dispatchNow, qr);
      if (created === null || typeof created === 'string') return created;
      await qr.commitTransaction();
      committed = true;
      if (created.status === 'dispatched') this.emit([{ ...created, exit_code: null }]);
      return { created, replaces: spec.policy.concurrency === 'replace' ? active : [] };
    } finally {
      try {
        if (!committed && qr.isTransactionActive) await qr.rollbackTransaction();
      } finally {
        // Even when the rollback failed: a connection never given back would shrink the pool for good.
        await qr.release();
      }
    }
  }

  /**
   * The webhook is leaving the `queue` policy (call inside the transaction that changes it, before
   * the change): its runs waiting behind the policy get their delivery deadline from now. Returns
   * the servers to dispatch to once the change committed.
   */
  async releaseWaiting(webhookId: string, on: Queryable): Promise<string[]> {
    const found = await rows<{ server_id: string }>(
      on,
      `UPDATE execution x SET deliver_by = greatest(x.deliver_by, now() + make_interval(secs => $2))
       WHERE x.webhook_id = $1 AND x.status = 'queued' AND ${heldByQueue('x')}
       RETURNING x.server_id`,
      [webhookId, this.config.deliveryDeadlineMs / 1000],
    );
    return [...new Set(found.map((r) => r.server_id))];
  }

  /**
   * The webhook is being deleted (call inside that transaction, holding its row lock): its runs
   * waiting behind the `queue` policy are cancelled, since without the webhook nothing would keep
   * them one at a time. Announce the returned changes with `announce` once the deletion committed.
   */
  cancelWaitingOf(webhookId: string, on: Queryable): Promise<ChangedRow[]> {
    return rows<ChangedRow>(
      on,
      `WITH ended AS (
         UPDATE execution x SET status = 'cancelled', finished_at = now(), cancel_requested = true,
           error = 'its webhook was deleted while it waited for the runs ahead of it (queue policy)'
         WHERE ${guard('cancelled')} AND x.webhook_id = $1 AND x.status = 'queued' AND ${heldByQueue('x')}
         RETURNING ${RETURNED}
       ), gone AS (${FORGET_PAYLOADS('ended')})
       SELECT * FROM ended`,
      [webhookId],
    );
  }

  /** Announces status changes a caller's transaction committed. */
  announce(changed: ChangedRow[]): void {
    this.emit(changed);
  }

  /** The execution a webhook accepted for this delivery id, while the id is remembered. */
  async remembered(webhookId: string, deliveryId: string): Promise<RememberedDelivery | null> {
    const [row] = await rows<RememberedDelivery>(
      this.db,
      `SELECT x.id, x.status FROM webhook_delivery_id m JOIN execution x ON x.id = m.execution_id
       WHERE m.webhook_id = $1 AND m.delivery_id = $2 AND m.expires_at > now()`,
      [webhookId, deliveryId],
    );
    return row ?? null;
  }

  /** Forgets up to `limit` expired delivery ids; how many went. */
  async pruneRememberedDeliveries(limit: number): Promise<number> {
    const gone = await rows<{ webhook_id: string }>(
      this.db,
      `DELETE FROM webhook_delivery_id WHERE ctid IN (
         SELECT ctid FROM webhook_delivery_id WHERE expires_at <= now() LIMIT $1)
       RETURNING webhook_id`,
      [limit],
    );
    return gone.length;
  }

  /** The kept requests of these runs (those whose webhook passes its request to the script). */
  payloads(ids: string[]): Promise<{ execution_id: string; body_encrypted: Buffer; event: string; delivery_id: string; content_type: string }[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return rows(
      this.db,
      `SELECT execution_id, body_encrypted, event, delivery_id, content_type FROM execution_payload WHERE execution_id = ANY($1::uuid[])`,
      [ids],
    );
  }

  // ---- dispatch ------------------------------------------------------------------------------

  /**
   * Claims up to `limit` queued executions of a server, oldest first, still inside their delivery
   * deadline: `queued` -> `dispatched` atomically (SKIP LOCKED: concurrent claimers take others).
   * Of a `queue` webhook only the oldest waiting run, and only while none of its runs is active:
   * a concurrent claimer that skips it (locked) finds the next one still behind it.
   */
  async claimQueued(serverId: string, limit: number): Promise<ClaimRow[]> {
    const found = await this.withStart(
      `UPDATE execution x SET status = 'dispatched', dispatched_at = now()
       WHERE ${guard('dispatched')} AND x.id IN (
         SELECT c.id FROM execution c
         WHERE c.server_id = $1 AND c.status = 'queued' AND c.deliver_by > now() AND NOT ${heldByQueue('c')}
         ORDER BY c.queued_at, c.id LIMIT $2 FOR UPDATE SKIP LOCKED)`,
      [serverId, limit],
    );
    this.emit(found.map((r) => ({ ...r, status: 'dispatched' as const, exit_code: null })));
    return found;
  }

  /**
   * Dispatched executions whose start was sent more than `olderThanMs` ago and never answered,
   * while their agent is connected: taken for one more start (the agent accepts a repeated start
   * of the same id once only). dispatched_at moves on, so one node resends at a time.
   */
  takeUnanswered(serverId: string, olderThanMs: number, limit: number): Promise<ClaimRow[]> {
    return this.withStart(
      `UPDATE execution x SET dispatched_at = now()
       WHERE x.status = 'dispatched' AND x.id IN (
         SELECT id FROM execution
         WHERE server_id = $1 AND status = 'dispatched' AND accepted_at IS NULL
           AND dispatched_at < now() - make_interval(secs => $3)
         ORDER BY queued_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)`,
      [serverId, limit, olderThanMs / 1000],
    );
  }

  /** Runs another node created claimed for this server, whose agent this node holds, still unanswered. */
  takeHandedOver(serverId: string, ids: string[]): Promise<ClaimRow[]> {
    return this.withStart(
      `UPDATE execution x SET dispatched_at = now()
       WHERE x.status = 'dispatched' AND x.id IN (
         SELECT id FROM execution
         WHERE id = ANY($2::uuid[]) AND server_id = $1 AND status = 'dispatched' AND accepted_at IS NULL
         ORDER BY queued_at, id FOR UPDATE)`,
      [serverId, ids],
      // It moves only the resend clock (the run was claimed, durably, by the node that accepted
      // it): its commit need not wait for the WAL flush, which the start would wait for.
      true,
    );
  }

  /**
   * Runs an UPDATE of executions and returns each with everything its start command needs, sealed
   * secret values and kept request included, so building it reads nothing more (StartCommands).
   * `asyncCommit`: the statement's commit does not wait for the WAL to reach the disk (for changes a
   * crash may lose).
   */
  private withStart(update: string, params: unknown[], asyncCommit = false): Promise<ClaimRow[]> {
    const secrets = runSecrets('sec', { workspaceId: 'c.workspace_id', names: 'v.secrets', serverId: 'c.server_id' });
    return preparedRows<ClaimRow>(
      this.db,
      `WITH ${asyncCommit ? `nowait AS (SELECT set_config('synchronous_commit', 'off', true)), ` : ''}c AS (${update}
         RETURNING x.id, x.workspace_id, x.server_id, x.script_id, x.script_version, x.webhook_id, x.trigger, x.queued_at,
                   x.timeout_seconds)
       SELECT c.id, c.workspace_id, c.server_id, c.script_id, c.script_version, c.webhook_id, c.trigger,
              COALESCE(c.timeout_seconds, s.timeout_seconds) AS timeout_seconds, s.interpreter, s.max_output_bytes, v.content, v.secrets, v.run_as,
              ${startFacts('c')},
              p.execution_id IS NOT NULL AS has_payload,
              CASE WHEN p.execution_id IS NOT NULL THEN json_build_object('body', encode(p.body_encrypted, 'base64'), 'event', p.event,
                'deliveryId', p.delivery_id, 'contentType', p.content_type) END AS sealed_payload,
              (SELECT coalesce(json_agg(json_build_object('name', sec.name, 'value', encode(sec.value_encrypted, 'base64'))
                                        ORDER BY ${secrets.order}), '[]'::json)
                 FROM secret sec WHERE ${secrets.where}
              ) AS sealed_secrets
       FROM c
       ${startJoins('c')}
       LEFT JOIN execution_payload p ON p.execution_id = c.id${asyncCommit ? ' CROSS JOIN nowait' : ''}
       ORDER BY c.queued_at, c.id`,
      params,
    );
  }

  /**
   * The agent accepted the start. A v1 agent spawns at once, so the run is `running`; a v2 agent
   * may hold it in its own queue and reports the spawn separately, so it stays `dispatched` and is
   * only marked accepted (never resent). Returns whether a cancel was asked for meanwhile, or null
   * if it was no longer `dispatched`. A server's acks that arrive while one statement runs go into
   * the next together.
   */
  markStarted(id: string, serverId: string): Promise<{ cancelRequested: boolean } | null> {
    return this.startMarks.run(serverId, id);
  }

  private async markStartedNow(ids: string[]): Promise<({ cancelRequested: boolean } | null)[]> {
    const found = await preparedRows<ChangedRow & { cancel_requested: boolean; ran: boolean }>(
      this.db,
      // Rows locked in id order, as any other statement locking several executions should.
      `WITH l AS (
         SELECT x.id, COALESCE(sv.agent_protocol_version, 1) < 2 AS spawns
         FROM execution x JOIN server sv ON sv.id = x.server_id
         WHERE x.id = ANY($1::uuid[]) AND ${guard('running')} ORDER BY x.id FOR UPDATE OF x
       ), ran AS (
         UPDATE execution x SET status = 'running', started_at = COALESCE(x.started_at, now()), accepted_at = COALESCE(x.accepted_at, now())
         FROM l WHERE x.id = l.id AND l.spawns AND ${guard('running')}
         RETURNING ${RETURNED}, x.cancel_requested
       ), held AS (
         UPDATE execution x SET accepted_at = COALESCE(x.accepted_at, now())
         FROM l WHERE x.id = l.id AND NOT l.spawns
         RETURNING ${RETURNED}, x.cancel_requested
       )
       SELECT ran.*, true AS ran FROM ran UNION ALL SELECT held.*, false AS ran FROM held`,
      [ids],
    );
    this.emit(found.filter((r) => r.ran));
    const byId = new Map(found.map((r) => [r.id, r]));
    return ids.map((id) => {
      const r = byId.get(id);
      return r ? { cancelRequested: r.cancel_requested } : null;
    });
  }

  /**
   * The agent reported the process spawned (protocol v2): `running`. Null when it is not this
   * server's dispatched run. A server's reports that arrive while one statement runs go into the
   * next together (a burst of spawns is one UPDATE per statement time, not one per run).
   */
  markSpawned(id: string, serverId: string): Promise<{ cancelRequested: boolean } | null> {
    return this.spawnMarks.run(serverId, id);
  }

  private async markSpawnedNow(serverId: string, ids: string[]): Promise<({ cancelRequested: boolean } | null)[]> {
    const changed = await preparedRows<ChangedRow & { cancel_requested: boolean }>(
      this.db,
      // Rows locked in id order, as any other statement locking several executions should.
      `WITH l AS (
         SELECT x.id FROM execution x WHERE x.id = ANY($1::uuid[]) AND x.server_id = $2 AND ${guard('running')} ORDER BY x.id FOR UPDATE
       )
       UPDATE execution x SET status = 'running', started_at = COALESCE(x.started_at, now())
       FROM l WHERE x.id = l.id AND ${guard('running')}
       RETURNING ${RETURNED}, x.cancel_requested`,
      [ids, serverId],
    );
    this.emit(changed);
    const byId = new Map(changed.map((r) => [r.id, r]));
    // A report sent twice in one group changed the run once: the repeat answers as if it came after.
    return ids.map((id) => {
      const r = byId.get(id);
      byId.delete(id);
      return r ? { cancelRequested: r.cancel_requested } : null;
    });
  }

  /** The agent refused the start (shutting down, invalid command): `failed` with its reason. */
  async markRefused(id: string, reason: string): Promise<void> {
    await this.change('failed', `x.id = $1 AND x.status = 'dispatched'`, [id], {
      error: `the agent refused to start it: ${reason}`.slice(0, 2000),
    });
  }

  /**
   * A dispatched execution that certainly never ran (no agent got the start, or the agent came back
   * without it and without any output): back to `queued`, or `cancelled` if a cancel was asked for.
   */
  async requeue(id: string): Promise<void> {
    const [cancelled] = await this.change('cancelled', `x.id = $1 AND x.status = 'dispatched' AND x.cancel_requested`, [id], {
      error: 'cancelled before it started',
    });
    if (!cancelled) await this.change('queued', `x.id = $1 AND NOT x.cancel_requested`, [id]);
  }

  /**
   * Of these servers, the ones with queued executions (to dispatch) or with starts sent more than
   * `unansweredAfterMs` ago and not answered (to resend): one indexed query for any number.
   */
  async serversWithWork(serverIds: string[], unansweredAfterMs: number): Promise<{ serverId: string; queued: boolean; unanswered: boolean }[]> {
    if (serverIds.length === 0) return [];
    const found = await preparedRows<{ server_id: string; queued: boolean; unanswered: boolean }>(
      this.db,
      `SELECT server_id, bool_or(status = 'queued' AND deliver_by > now() AND NOT ${heldByQueue('e')}) AS queued,
              bool_or(status = 'dispatched' AND accepted_at IS NULL AND dispatched_at < now() - make_interval(secs => $2)) AS unanswered
       FROM execution e WHERE server_id = ANY($1::uuid[]) AND status IN ('queued', 'dispatched')
       GROUP BY server_id`,
      [serverIds, unansweredAfterMs / 1000],
    );
    return found.filter((r) => r.queued || r.unanswered).map((r) => ({ serverId: r.server_id, queued: r.queued, unanswered: r.unanswered }));
  }

  // ---- output and completion ------------------------------------------------------------------

  /**
   * An output batch in one statement (one round trip, its own transaction): locks the execution if
   * it belongs to `serverId` and was dispatched, inserts the chunks idempotently (also after the
   * control plane ended the run: what the script wrote is kept), adds the bytes of rows actually
   * inserted to the run's and the workspace's output_bytes, and makes a dispatched run `running`
   * (output proves the spawn). The control plane enforces the limits itself, whatever the agent
   * does: past the script's maxOutputBytes or the workspace's quota a chunk is stored cut (and
   * later ones empty, so seqs stay contiguous and the run can complete), and the run is marked
   * truncated with the reason. Null when the execution is not this server's; otherwise its status
   * before, the finished report it holds, and the chunks that were new (as stored).
   */
  async storeOutput(
    executionId: string,
    serverId: string,
    chunks: StoredChunk[],
  ): Promise<{ workspaceId: string; before: ExecutionStatus; report: unknown; stored: StoredChunk[] } | null> {
    const values: string[] = [];
    const params: unknown[] = [executionId, serverId, this.config.workspaceOutputQuotaBytes];
    for (const c of chunks) {
      params.push(c.seq, c.stream, c.data);
      const n = params.length;
      values.push(`($${n - 2}::int, $${n - 1}::text, $${n}::bytea)`);
    }
    const query = chunks.length <= PREPARED_MAX_CHUNKS ? preparedRows : rows;
    const [row] = await query<{ workspace_id: string; status: ExecutionStatus; finish_report: unknown; inserted: { seq: number; bytes: number }[] | null }>(
      this.db,
      `WITH e AS (
         SELECT x.id, x.workspace_id, x.status, x.finish_report, x.output_bytes, x.output_expired_at, s.max_output_bytes
         FROM execution x JOIN script s ON s.id = x.script_id
         WHERE x.id = $1 AND x.server_id = $2 FOR UPDATE OF x
       ), ws AS (
         SELECT w.id, w.output_bytes FROM workspace w WHERE w.id = (SELECT workspace_id FROM e) FOR UPDATE
       ), c AS (
         SELECT v.seq, v.stream, v.data, sum(octet_length(v.data)) OVER (ORDER BY v.seq) AS upto
         FROM e, (VALUES ${values.join(', ')}) AS v(seq, stream, data)
         WHERE e.status <> 'queued' AND e.output_expired_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM execution_output o WHERE o.execution_id = e.id AND o.seq = v.seq)
       ), k AS (
         SELECT c.*, octet_length(c.data) AS len, r.room,
                CASE WHEN r.quota_room < r.script_room THEN 'workspace_quota' ELSE 'script_limit' END AS why
         FROM c, (SELECT least(greatest(e.max_output_bytes - e.output_bytes, 0), greatest($3::bigint - ws.output_bytes, 0)) AS room,
                         greatest(e.max_output_bytes - e.output_bytes, 0) AS script_room,
                         greatest($3::bigint - ws.output_bytes, 0) AS quota_room
                  FROM e, ws) r
       ), kept AS (
         SELECT seq, stream, why, upto > room AS cut,
                CASE WHEN upto <= room THEN data
                     WHEN upto - len < room THEN substring(data FROM 1 FOR (room - (upto - len))::int)
                     ELSE '\\x'::bytea END AS data
         FROM k
       ), ins AS (
         INSERT INTO execution_output (execution_id, seq, stream, data)
         SELECT e.id, kept.seq, kept.stream, kept.data FROM e, kept
         ON CONFLICT (execution_id, seq) DO NOTHING
         RETURNING seq, octet_length(data) AS bytes
       ), added AS (
         SELECT coalesce(sum(bytes), 0) AS n FROM ins
       ), cut AS (
         SELECT why FROM kept WHERE cut ORDER BY seq LIMIT 1
       ), wsu AS (
         UPDATE workspace w SET output_bytes = w.output_bytes + (SELECT n FROM added)
         FROM ws WHERE w.id = ws.id AND (SELECT n FROM added) > 0
         RETURNING w.id
       ), upd AS (
         UPDATE execution x SET output_bytes = x.output_bytes + (SELECT n FROM added),
           status = CASE WHEN ${guard('running')} THEN 'running' ELSE x.status END,
           started_at = CASE WHEN ${guard('running')} THEN COALESCE(x.started_at, now()) ELSE x.started_at END,
           output_truncated = x.output_truncated OR EXISTS (SELECT 1 FROM cut),
           output_truncated_by = COALESCE(x.output_truncated_by, (SELECT why FROM cut))
         FROM e WHERE x.id = e.id AND e.status <> 'queued'
         RETURNING x.id
       )
       SELECT e.workspace_id, e.status, e.finish_report,
              (SELECT json_agg(json_build_object('seq', seq, 'bytes', bytes)) FROM ins) AS inserted,
              (SELECT count(*) FROM upd) AS updated, (SELECT count(*) FROM wsu) AS workspaces
       FROM e`,
      params,
    );
    if (!row) return null;
    if (row.status === 'dispatched') {
      this.emit([{ id: executionId, workspace_id: row.workspace_id, server_id: serverId, status: 'running', exit_code: null }]);
    }
    const kept = new Map((row.inserted ?? []).map((i) => [Number(i.seq), Number(i.bytes)]));
    const stored: StoredChunk[] = [];
    for (const c of chunks) {
      const bytes = kept.get(c.seq);
      if (bytes !== undefined) stored.push(bytes === c.data.length ? c : { ...c, data: c.data.subarray(0, bytes) });
    }
    return { workspaceId: row.workspace_id, before: row.status, report: row.finish_report, stored };
  }

  /**
   * The one completion path: an active run of this server whose output is whole up to
   * `report.lastSeq` takes the report's outcome; one whose output is not whole yet keeps the
   * report (with `hold`) so the output batch that completes it completes the run. A server's
   * reports that arrive while one statement runs go into the next together (one per execution:
   * a repeat waits for the statement after, so it sees the first one's outcome).
   */
  complete(serverId: string, report: ExecutionFinished, hold: boolean): Promise<CompleteOutcome> {
    return this.completions.run(serverId, { report, hold });
  }

  private async completeNow(serverId: string, items: PendingCompletion[]): Promise<CompleteOutcome[]> {
    const column = (f: (item: PendingCompletion, o: ReturnType<typeof outcome>) => unknown) => items.map((i) => f(i, outcome(i.report)));
    const found = await preparedRows<{ id: string; before: ExecutionStatus; whole: boolean; done: ChangedRow | null } & Releases>(
      this.db,
      // Rows locked in id order, as any other statement locking several executions should.
      `WITH r AS (
         SELECT * FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::integer[], $6::text[], $7::text[], $8::boolean[], $9::text[], $10::boolean[])
           AS r(id, last_seq, to_status, exit_code, signal, error, truncated, report, hold)
       ), e AS (
         SELECT x.id, x.status FROM execution x WHERE x.id IN (SELECT id FROM r) AND x.server_id = $1 ORDER BY x.id FOR UPDATE
       ), w AS (
         SELECT e.id, e.status, r.to_status, r.exit_code, r.signal, r.error, r.truncated, r.report, r.hold,
                (SELECT count(*) FROM execution_output o WHERE o.execution_id = e.id AND o.seq <= r.last_seq) >= r.last_seq + 1 AS whole
         FROM e JOIN r ON r.id = e.id
       ), done AS (
         UPDATE execution x SET status = w.to_status, exit_code = w.exit_code, signal = w.signal,
           error = CASE WHEN w.to_status = 'cancelled' THEN COALESCE(x.error, w.error) ELSE w.error END,
           output_truncated = x.output_truncated OR w.truncated,
           output_truncated_by = COALESCE(x.output_truncated_by, CASE WHEN w.truncated THEN 'script_limit' END),
           finished_at = now(), finish_report = w.report::jsonb
         FROM w WHERE x.id = w.id AND w.whole AND w.status <> 'queued' AND ${guardTo('w.to_status', TERMINAL_STATUSES)}
         RETURNING ${RETURNED}, x.webhook_id AS ended_webhook_id
       ), ended AS (
         SELECT id, ended_webhook_id FROM done
       ), gone AS (${FORGET_PAYLOADS('ended')}), ${releaseNext('$11')}, held AS (
         UPDATE execution x SET finish_report = w.report::jsonb, finish_held_at = now()
         FROM w WHERE w.hold AND x.id = w.id AND NOT w.whole AND w.status <> 'queued' AND x.status IN ${ACTIVE}
       )
       SELECT w.id, w.status AS before, w.whole, (SELECT row_to_json(done) FROM done WHERE done.id = w.id) AS done, ${RELEASES}
       FROM w`,
      [
        serverId,
        column((i) => i.report.executionId),
        column((i) => i.report.lastSeq),
        column((_, o) => o.status),
        column((i) => i.report.exitCode),
        column((i) => i.report.signal),
        column((_, o) => o.error),
        column((i) => i.report.truncated),
        column((i) => JSON.stringify(i.report)),
        column((i) => i.hold),
        this.config.deliveryDeadlineMs / 1000,
      ],
    );
    const byId = new Map(found.map((r) => [r.id, r]));
    const outcomes = items.map(({ report, hold }): CompleteOutcome => {
      const row = byId.get(report.executionId);
      if (!row) return 'unknown';
      if (row.before === 'queued') return 'queued';
      if (row.done) {
        this.emit([row.done]);
        return 'done';
      }
      if (isTerminal(row.before)) return 'over';
      if (hold) this.logger.warn({ executionId: report.executionId, lastSeq: report.lastSeq }, 'finished before all its output is stored; waiting for it');
      return 'incomplete';
    });
    // After the ends: the runs a `queue` webhook held behind them, once for the whole statement.
    this.emit([], found[0]?.released_servers);
    this.releaseAgain(found[0]?.queue_ended);
    return outcomes;
  }

  // ---- after a reconnect ------------------------------------------------------------------------

  /** The server's active executions, for the hello's reconciliation. */
  activeOn(serverId: string): Promise<{ id: string; status: ExecutionStatus; deliverable: boolean; has_output: boolean; accepted: boolean }[]> {
    return rows(
      this.db,
      `SELECT e.id, e.status, e.deliver_by > now() AS deliverable, e.accepted_at IS NOT NULL AS accepted,
              EXISTS (SELECT 1 FROM execution_output o WHERE o.execution_id = e.id) AS has_output
       FROM execution e WHERE e.server_id = $1 AND e.status IN ${ACTIVE}`,
      [serverId],
    );
  }

  /** These executions of this server (others are left out), with what the hello needs to know. */
  ofServer(serverId: string, ids: string[]): Promise<{ id: string; status: ExecutionStatus; cancel_requested: boolean }[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return rows(this.db, `SELECT id, status, cancel_requested FROM execution WHERE server_id = $1 AND id = ANY($2::uuid[])`, [serverId, ids]);
  }

  /** The agent came back without it: `lost`. */
  async markLost(id: string, reason: string): Promise<void> {
    await this.change('lost', `x.id = $1`, [id], { error: reason });
  }

  // ---- cancel ----------------------------------------------------------------------------------

  /**
   * Cancel, as far as the database goes: a queued run is `cancelled` at once; so is an active one
   * whose agent is offline (`agentOnline` false; the agent stops it when it returns); an active run
   * with its agent online gets cancel_requested and `tell` is true (its agent reports the end).
   */
  async cancel(
    workspaceId: string,
    id: string,
    agentOnline: (serverId: string) => Promise<boolean>,
    reason?: string,
  ): Promise<'cancelled' | 'requested' | 'over' | 'unknown'> {
    const [queued] = await this.change('cancelled', `x.id = $1 AND x.workspace_id = $2 AND x.status = 'queued'`, [id, workspaceId], {
      error: reason ?? 'cancelled before it started',
      cancelRequested: true,
    });
    if (queued) return 'cancelled';
    const [current] = await rows<{ server_id: string; status: ExecutionStatus }>(
      this.db,
      `SELECT server_id, status FROM execution WHERE id = $1 AND workspace_id = $2`,
      [id, workspaceId],
    );
    if (!current) return 'unknown';
    if (isTerminal(current.status)) return 'over';
    if (current.status === 'queued') return this.cancel(workspaceId, id, agentOnline, reason); // requeued meanwhile
    if (!(await agentOnline(current.server_id))) {
      const [gone] = await this.change('cancelled', `x.id = $1 AND x.status IN ${ACTIVE}`, [id], {
        error: `${reason ? `${reason}; ` : ''}cancelled while its agent was offline; the agent is told to stop it when it reconnects`,
        cancelRequested: true,
      });
      if (gone) return 'cancelled';
    } else {
      const [asked] = await rows<{ id: string }>(
        this.db,
        // The reason is kept for the cancelled status the agent will report (see complete()).
        `UPDATE execution SET cancel_requested = true, error = COALESCE($2, error) WHERE id = $1 AND status IN ${ACTIVE} RETURNING id`,
        [id, reason ?? null],
      );
      if (asked) {
        this.events.cancelRequested.next({ executionId: id, serverId: current.server_id });
        return 'requested';
      }
    }
    // It moved meanwhile (finished, or went back to the queue): decide again.
    return this.cancel(workspaceId, id, agentOnline, reason);
  }

  // ---- the clock -------------------------------------------------------------------------------

  /**
   * Queued executions whose delivery deadline passed (their agent stayed offline): `undeliverable`.
   * A run waiting behind its webhook's `queue` policy never is: its deadline starts again when the
   * run ahead of it ends (see releaseNext).
   */
  async expireQueued(): Promise<number> {
    const changed = await this.change('undeliverable', `x.status = 'queued' AND x.deliver_by <= now() AND NOT ${heldByQueue('x')}`, [], {
      error: 'the agent did not come online before the delivery deadline',
    });
    return changed.length;
  }

  /**
   * Runs whose agent has been disconnected (its server offline, not seen by any node) for
   * `lostSeconds`: `lost`. If the agent comes back with one, its hello tells it to stop it.
   */
  async loseAbandoned(lostSeconds: number): Promise<{ id: string; serverId: string }[]> {
    const changed = await this.change(
      'lost',
      `x.status IN ${ACTIVE} AND x.server_id IN (
         SELECT id FROM server WHERE status = 'offline' AND (last_seen_at IS NULL OR last_seen_at < now() - make_interval(secs => $1::int)))`,
      [lostSeconds],
      { error: `its agent was disconnected for more than ${lostSeconds} s` },
    );
    return changed.map((r) => ({ id: r.id, serverId: r.server_id }));
  }

  /**
   * Running runs not finished `timeout + graceSeconds` after they were spawned, whatever their agent
   * says: `timed_out` (the caller tells the agent to stop them).
   */
  async timeOutOverdue(graceSeconds: number): Promise<{ id: string; serverId: string }[]> {
    const changed = await this.change(
      'timed_out',
      `x.status = 'running' AND x.started_at < now() - make_interval(secs => $1::int + COALESCE(x.timeout_seconds,
         (SELECT s.timeout_seconds FROM script s WHERE s.id = x.script_id), 3600))`,
      [graceSeconds],
      { error: `no end was reported within its timeout plus ${graceSeconds} s; the agent is told to stop it` },
    );
    return changed.map((r) => ({ id: r.id, serverId: r.server_id }));
  }

  /**
   * Runs on these servers (whose agents are connected) that the agent reported finished but whose
   * output never arrived whole: nothing more of it came for `graceSeconds` since the report was
   * last held (a hello after a reconnect holds it again, and the agent then resends what is
   * missing at once). Only a buggy or hostile agent leaves a run here.
   */
  async giveUpIncomplete(serverIds: string[], graceSeconds: number): Promise<{ id: string; serverId: string }[]> {
    if (serverIds.length === 0) return [];
    const changed = await this.change(
      'lost',
      `x.server_id = ANY($1::uuid[]) AND x.status IN ${ACTIVE} AND x.finish_report IS NOT NULL
         AND x.finish_held_at < now() - make_interval(secs => $2::int)
         AND NOT EXISTS (SELECT 1 FROM execution_output o
                         WHERE o.execution_id = x.id AND o.created_at >= now() - make_interval(secs => $2::int))`,
      [serverIds, graceSeconds],
      { error: `the agent reported the end of this run, but not all of its output arrived (nothing more for ${graceSeconds} s)` },
    );
    return changed.map((r) => ({ id: r.id, serverId: r.server_id }));
  }

  // ---- retention -------------------------------------------------------------------------------

  /**
   * Ended runs whose output is older than their workspace's retention (the instance's, or the
   * workspace's own when shorter), oldest first. Runs that are not terminal are never taken.
   */
  async outputsPastRetention(instanceSeconds: number, limit: number): Promise<{ id: string; workspace_id: string }[]> {
    return rows(
      this.db,
      `SELECT x.id, x.workspace_id FROM execution x JOIN workspace w ON w.id = x.workspace_id
       WHERE x.output_expired_at IS NULL AND x.finished_at IS NOT NULL
         AND x.status = ANY('{${[...TERMINAL_STATUSES].join(',')}}'::text[])
         AND x.finished_at < now() - make_interval(secs => LEAST($1::int, COALESCE(w.output_retention_seconds, $1::int)))
       ORDER BY x.finished_at LIMIT $2`,
      [instanceSeconds, limit],
    );
  }

  /**
   * Deletes up to `maxRows` output rows of these ended runs (small statements: no long locks, no
   * table rewrite) and gives the bytes back to their workspaces' quota; runs that had no rows left
   * when the statement began are marked expired. Call again until it deletes nothing: that call
   * marks the rest.
   */
  async pruneOutput(executionIds: string[], maxRows: number): Promise<{ rows: number; bytes: number; expired: number }> {
    const [r] = await rows<{ rows: number; bytes: string; expired: number }>(
      this.db,
      `WITH x AS (
         SELECT id, workspace_id FROM execution
         WHERE id = ANY($1::uuid[]) AND output_expired_at IS NULL AND status = ANY('{${[...TERMINAL_STATUSES].join(',')}}'::text[])
       ), del AS (
         DELETE FROM execution_output o USING (
           SELECT p.execution_id, p.seq FROM execution_output p WHERE p.execution_id IN (SELECT id FROM x) LIMIT $2
         ) d WHERE o.execution_id = d.execution_id AND o.seq = d.seq
         RETURNING o.execution_id, octet_length(o.data) AS bytes
       ), freed AS (
         UPDATE workspace w SET output_bytes = greatest(w.output_bytes - f.bytes, 0)
         FROM (SELECT x.workspace_id, sum(del.bytes) AS bytes FROM del JOIN x ON x.id = del.execution_id GROUP BY x.workspace_id) f
         WHERE w.id = f.workspace_id
         RETURNING w.id
       ), done AS (
         UPDATE execution e SET output_expired_at = now() FROM x
         WHERE e.id = x.id AND NOT EXISTS (SELECT 1 FROM execution_output o WHERE o.execution_id = x.id)
         RETURNING e.id
       )
       SELECT (SELECT count(*) FROM del)::int AS rows, (SELECT coalesce(sum(bytes), 0) FROM del)::bigint AS bytes,
              (SELECT count(*) FROM done)::int AS expired, (SELECT count(*) FROM freed)::int AS freed`,
      [executionIds, maxRows],
    );
    return { rows: r?.rows ?? 0, bytes: Number(r?.bytes ?? 0), expired: r?.expired ?? 0 };
  }

  /**
   * Sets each workspace's output_bytes to what its runs hold now. The statements that store and
   * prune output, and deleteWithRuns, keep it exact; this repairs usage an earlier version left
   * behind (it gave nothing back for runs deleted with their script or server). Returns the
   * workspaces corrected.
   */
  async reconcileWorkspaceUsage(): Promise<number> {
    const fixed = await rows(
      this.db,
      `UPDATE workspace w SET output_bytes = u.total
       FROM (SELECT ws.id, coalesce(sum(x.output_bytes) FILTER (WHERE x.output_expired_at IS NULL), 0) AS total
             FROM workspace ws LEFT JOIN execution x ON x.workspace_id = ws.id GROUP BY ws.id) u
       WHERE w.id = u.id AND w.output_bytes <> u.total
       RETURNING w.id`,
    );
    return fixed.length;
  }

  // ---- reads -----------------------------------------------------------------------------------

  async scriptExists(workspaceId: string, scriptId: string): Promise<boolean> {
    const found = await rows(this.db, `SELECT 1 FROM script WHERE id = $1 AND workspace_id = $2`, [scriptId, workspaceId]);
    return found.length > 0;
  }

  async view(workspaceId: string, id: string): Promise<ExecutionRow | null> {
    const [row] = await rows<ExecutionRow>(this.db, `${VIEW_SELECT} WHERE e.workspace_id = $1 AND e.id = $2`, [workspaceId, id]);
    return row ?? null;
  }

  /** Newest first; `where` holds conditions on `e` with $n placeholders matching `params` (workspace first). */
  list(where: string[], params: unknown[], limit: number): Promise<ExecutionRow[]> {
    return rows<ExecutionRow>(
      this.db,
      `${VIEW_SELECT} WHERE ${where.join(' AND ')} ORDER BY e.queued_at DESC, e.id DESC LIMIT $${params.length + 1}`,
      [...params, limit],
    );
  }

  // ---- the one status writer -------------------------------------------------------------------

  /** Moves these executions to `to` where the table allows it; returns (and announces) the ones that changed. */
  transition(ids: string[], to: ExecutionStatus, patch: TransitionPatch = {}): Promise<ChangedRow[]> {
    return this.change(to, `x.id = ANY($1::uuid[])`, [ids], patch);
  }

  /**
   * `UPDATE execution x SET status = to, ... WHERE <guard from the table> AND (cond)`, as a named
   * prepared statement (the text depends only on `to`, `cond` and the patch's keys). Terminal
   * statuses set finished_at; `running` sets started_at; `queued` forgets the dispatch.
   */
  private async change<Extra extends object = object>(
    to: ExecutionStatus,
    cond: string,
    params: unknown[],
    patch: TransitionPatch = {},
    returning = '',
  ): Promise<(ChangedRow & Extra)[]> {
    const sets = [`status = '${to}'`];
    if (isTerminal(to)) sets.push('finished_at = now()');
    if (to === 'running') sets.push('started_at = COALESCE(x.started_at, now())');
    if (to === 'dispatched') sets.push('dispatched_at = now()');
    if (to === 'queued') sets.push('dispatched_at = NULL', 'accepted_at = NULL');
    const values = [...params];
    const set = (column: string, value: unknown) => {
      values.push(value);
      sets.push(`${column} = $${values.length}`);
    };
    if (patch.error !== undefined) set('error', patch.error);
    if (patch.exitCode !== undefined) set('exit_code', patch.exitCode);
    if (patch.signal !== undefined) set('signal', patch.signal);
    if (patch.outputTruncated !== undefined) set('output_truncated', patch.outputTruncated);
    if (patch.cancelRequested !== undefined) set('cancel_requested', patch.cancelRequested);
    const update = `UPDATE execution x SET ${sets.join(', ')} WHERE ${guard(to)} AND (${cond}) RETURNING ${RETURNED}${returning}`;
    if (!isTerminal(to)) {
      const changed = await preparedRows<ChangedRow & Extra>(this.db, update, values);
      this.emit(changed);
      return changed;
    }
    // A run that ended no longer needs its request, and its end may let the next run of a `queue`
    // webhook go: both in the same statement.
    values.push(this.config.deliveryDeadlineMs / 1000);
    const changed = await preparedRows<ChangedRow & Extra & Releases>(
      this.db,
      `WITH ended AS (${update}, x.webhook_id AS ended_webhook_id), gone AS (${FORGET_PAYLOADS('ended')}), ${releaseNext(`$${values.length}`)}
       SELECT ended.*, ${RELEASES} FROM ended`,
      values,
    );
    this.emit(changed, changed[0]?.released_servers);
    this.releaseAgain(changed[0]?.queue_ended);
    return changed;
  }

  /**
   * Releases the next run of `queue` webhooks once more, in a statement of its own after the one
   * that ended runs of them committed. Two statements ending runs of one webhook at once (a run
   * finishing while the next in line is cancelled) each see the other's run as still there, so
   * neither releases the one after; whichever commits last finds it here.
   */
  private releaseAgain(ended: string[] | null | undefined): void {
    if (!ended?.length) return;
    rows<{ server_id: string }>(
      this.db,
      `WITH ended AS (SELECT id, webhook_id AS ended_webhook_id FROM execution WHERE id = ANY($1::uuid[])), ${releaseNext('$2')}
       SELECT DISTINCT server_id FROM released`,
      [ended, this.config.deliveryDeadlineMs / 1000],
    ).then(
      (released) => this.emit([], released.map((r) => r.server_id)),
      (err: unknown) => this.logger.error({ err }, 'releasing the next queue run failed; the sweep dispatches it'),
    );
  }

  /** Announces committed status changes, then the servers whose next `queue` run may go now. */
  private emit(changed: ChangedRow[], released?: string[] | null): void {
    for (const r of changed) {
      this.logger.debug({ executionId: r.id, status: r.status }, 'execution status');
      this.events.status.next(toEvent(r));
    }
    for (const serverId of released ?? []) this.events.released.next(serverId);
  }
}

function toEvent(r: ChangedRow): StatusChanged {
  return { executionId: r.id, workspaceId: r.workspace_id, serverId: r.server_id, status: r.status, exitCode: r.exit_code };
}

function pgCode(e: unknown): string | undefined {
  return (e as { driverError?: { code?: string }; code?: string })?.driverError?.code ?? (e as { code?: string })?.code;
}

/** Deadlock or serialization failure: PostgreSQL rolled the statement back, so it may be retried. */
function isSerializationFailure(e: unknown): boolean {
  const code = pgCode(e);
  return code === '40P01' || code === '40001';
}
