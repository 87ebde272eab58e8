import type { components } from './schema.js';

/**
 * Response shapes of the control plane's HTTP API, from its OpenAPI document (schema.d.ts is
 * generated: `npm run docs:openapi`).
 */
type Schemas = components['schemas'];

export type Page<T> = { items: T[]; nextCursor: Schemas['ServerPageDto']['nextCursor'] };
export type Me = Schemas['MeDto'];
export type Role = Me['role'];
export type Server = Schemas['ServerViewDto'];
/** POST /servers and POST /servers/:id/agent-token: the token is in this answer only. */
export type ServerWithToken = Schemas['ServerWithTokenDto'];
export type Script = Schemas['ScriptViewDto'];
/** A version in the list (its size), or one version with its content. */
export type ScriptVersion = Schemas['ScriptVersionSummaryDto'] & Partial<Schemas['ScriptVersionDto']>;
export type Webhook = Schemas['WebhookViewDto'];
export type WebhookExamples = Schemas['WebhookExamplesDto'];
export type Delivery = Schemas['DeliveryViewDto'];
export type Execution = Schemas['ExecutionViewDto'];
/** A row of the executions list: from the feed's `execution.created` until the full row is fetched. */
export type ExecutionRow = Pick<Execution, 'id' | 'scriptId' | 'serverId' | 'webhookId' | 'trigger' | 'status' | 'exitCode' | 'queuedAt'> & Partial<Execution>;
/** 202 answer of a run, manual or by webhook. */
export type RunAccepted = Schemas['AcceptedDto'];
/** A script secret as every route shows it: never its value. */
export type Secret = Schemas['SecretViewDto'];
/** The key's workspace: retention in force, output stored and the quota. */
export type WorkspaceSettings = Schemas['WorkspaceSettingsDto'];
