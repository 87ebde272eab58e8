import { HttpStatus } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { type AppConfig, WORKSPACE_LIMIT_DEFAULTS } from '../config/app-config.js';
import type { ErrorAnswer } from './api-doc.js';
import { AppException } from './app-exception.js';

/** What a workspace holds a limited number of (instance settings DEVPILOT_MAX_*_PER_WORKSPACE). */
export type LimitedKind = 'servers' | 'scripts' | 'webhooks';

const TABLE: Record<LimitedKind, string> = { servers: 'server', scripts: 'script', webhooks: 'webhook' };
const SETTING: Record<LimitedKind, string> = {
  servers: 'DEVPILOT_MAX_SERVERS_PER_WORKSPACE',
  scripts: 'DEVPILOT_MAX_SCRIPTS_PER_WORKSPACE',
  webhooks: 'DEVPILOT_MAX_WEBHOOKS_PER_WORKSPACE',
};
const DEFAULT = WORKSPACE_LIMIT_DEFAULTS;

/** The 403 of a create route in the OpenAPI document: a viewer key, or a full workspace. */
export function forbiddenOrFull(kind: LimitedKind): ErrorAnswer {
  return {
    status: 403,
    code: 'QUOTA_EXCEEDED',
    message: quotaExceeded(kind, DEFAULT[kind]).message,
    description:
      `FORBIDDEN: a viewer key can read but not change anything. QUOTA_EXCEEDED: the workspace already holds ${SETTING[kind]} ` +
      `(default ${DEFAULT[kind]}) ${kind}; nothing was written`,
  };
}

/** 403 QUOTA_EXCEEDED, naming the limit and the setting that raises it. */
export function quotaExceeded(kind: LimitedKind, limit: number): AppException {
  return new AppException(
    HttpStatus.FORBIDDEN,
    'QUOTA_EXCEEDED',
    `This workspace already has ${limit} ${kind}, its limit (${SETTING[kind]}); delete one to make room`,
  );
}

/**
 * Refuses, inside the transaction that will insert the row, when the workspace is at its limit.
 * The workspace row is locked first (NO KEY UPDATE: foreign-key checks of other inserts are not
 * held up) so concurrent creates count one after another and none inserts on a stale count; the
 * lock lasts until the transaction ends.
 */
export async function reserveWorkspaceSlot(tx: EntityManager, config: AppConfig, workspaceId: string, kind: LimitedKind): Promise<void> {
  await tx.query('SELECT 1 FROM workspace WHERE id = $1 FOR NO KEY UPDATE', [workspaceId]);
  const limit = config.maxPerWorkspace[kind];
  const [row] = (await tx.query(`SELECT count(*)::int AS n FROM ${TABLE[kind]} WHERE workspace_id = $1`, [workspaceId])) as { n: number }[];
  if ((row?.n ?? 0) >= limit) throw quotaExceeded(kind, limit);
}
