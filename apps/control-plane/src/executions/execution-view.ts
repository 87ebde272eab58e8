import type { ExecutionStatus, Trigger } from '@app/protocol';
import { HttpStatus } from '@nestjs/common';
import { AppException } from '../common/app-exception.js';
import { isCursorTime, isUuid, type Page } from '../common/pagination.js';

/** An execution as the API shows it (ExecutionViewDto in the OpenAPI document), with the names the dashboard lists. */
export interface ExecutionView {
  id: string;
  scriptId: string;
  scriptName: string;
  scriptVersion: number;
  serverId: string;
  serverName: string;
  webhookId: string | null;
  webhookName: string | null;
  trigger: Trigger;
  status: ExecutionStatus;
  exitCode: number | null;
  signal: string | null;
  error: string | null;
  queuedAt: Date;
  dispatchedAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  deliverBy: Date;
  durationMs: number | null;
  outputBytes: number;
  outputTruncated: boolean;
  /** Why the output was cut: the script's maxOutputBytes or the workspace's storage quota. */
  outputTruncatedBy: 'script_limit' | 'workspace_quota' | null;
  /** When retention removed the output (the output routes then answer 410 OUTPUT_EXPIRED). */
  outputExpiredAt: Date | null;
  cancelRequested: boolean;
}

export interface ExecutionRow {
  id: string;
  script_id: string;
  script_name: string;
  script_version: number;
  server_id: string;
  server_name: string;
  webhook_id: string | null;
  webhook_name: string | null;
  trigger: Trigger;
  status: ExecutionStatus;
  exit_code: number | null;
  signal: string | null;
  error: string | null;
  queued_at: Date;
  /** queued_at with its microseconds, for the cursor (a JS Date keeps only milliseconds). */
  queued_key: string;
  dispatched_at: Date | null;
  started_at: Date | null;
  finished_at: Date | null;
  deliver_by: Date;
  output_bytes: string;
  output_truncated: boolean;
  output_truncated_by: 'script_limit' | 'workspace_quota' | null;
  output_expired_at: Date | null;
  cancel_requested: boolean;
}

export const VIEW_SELECT = `
  SELECT e.id, e.script_id, s.name AS script_name, e.script_version, e.server_id, sv.name AS server_name,
         e.webhook_id, w.name AS webhook_name, e.trigger, e.status, e.exit_code, e.signal, e.error,
         e.queued_at, to_char(e.queued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS queued_key,
         e.dispatched_at, e.started_at, e.finished_at, e.deliver_by, e.output_bytes, e.output_truncated, e.output_truncated_by,
         e.output_expired_at, e.cancel_requested
  FROM execution e
  JOIN script s ON s.id = e.script_id
  JOIN server sv ON sv.id = e.server_id
  LEFT JOIN webhook w ON w.id = e.webhook_id`;

export function toView(r: ExecutionRow): ExecutionView {
  return {
    id: r.id,
    scriptId: r.script_id,
    scriptName: r.script_name,
    scriptVersion: r.script_version,
    serverId: r.server_id,
    serverName: r.server_name,
    webhookId: r.webhook_id,
    webhookName: r.webhook_name,
    trigger: r.trigger,
    status: r.status,
    exitCode: r.exit_code,
    signal: r.signal,
    error: r.error,
    queuedAt: r.queued_at,
    dispatchedAt: r.dispatched_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    deliverBy: r.deliver_by,
    durationMs: r.started_at && r.finished_at ? r.finished_at.getTime() - r.started_at.getTime() : null,
    outputBytes: Number(r.output_bytes),
    outputTruncated: r.output_truncated,
    outputTruncatedBy: r.output_truncated_by,
    outputExpiredAt: r.output_expired_at,
    cancelRequested: r.cancel_requested,
  };
}

/** Newest first over (queued_at, id), with queued_at to the microsecond. */
export function toPageOfExecutions(found: ExecutionRow[], limit: number): Page<ExecutionView> {
  const more = found.length > limit;
  const items = more ? found.slice(0, limit) : found;
  const last = items[items.length - 1];
  return {
    items: items.map(toView),
    nextCursor: more && last ? Buffer.from(JSON.stringify([last.queued_key, last.id])).toString('base64url') : null,
  };
}

export function decodeExecutionCursor(value: string | undefined): { at: string; id: string } | null {
  if (!value) return null;
  try {
    const [at, id] = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as [unknown, unknown];
    if (typeof at !== 'string' || !/\.\d{6}Z$/.test(at) || !isCursorTime(at)) throw new Error('bad time');
    const d = new Date(at);
    if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 19) !== at.slice(0, 19)) throw new Error('no such time'); // 30 February
    if (!isUuid(id)) throw new Error('bad id');
    return { at, id };
  } catch {
    throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', 'cursor is not valid');
  }
}
