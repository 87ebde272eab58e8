import type { ExecutionStatus, Interpreter, Trigger } from '@app/protocol/constants.js';

/**
 * Response shapes of the control plane's HTTP API (design.md, "HTTP API (v1)").
 * Fields marked optional are ones design.md does not name; the views tolerate their absence.
 */
export type Role = 'owner' | 'viewer';

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface Me {
  role: Role;
  workspace?: { id: string; name: string };
  workspaceId?: string;
  workspaceName?: string;
  apiKey?: { id?: string; name?: string };
  keyName?: string;
  isAdmin?: boolean;
}

export interface Server {
  id: string;
  name: string;
  status: 'online' | 'offline';
  lastSeenAt?: string | null;
  hostname?: string | null;
  platform?: string | null;
  agentVersion?: string | null;
  installCommand?: string;
  createdAt?: string;
}

/** POST /servers and POST /servers/:id/agent-token: the token is in this answer only. */
export interface ServerWithToken extends Server {
  agentToken: string;
  installCommand: string;
}

export interface Script {
  id: string;
  name: string;
  description?: string | null;
  interpreter: Interpreter;
  timeoutSeconds: number;
  maxOutputBytes: number;
  /** Current version number (design.md: "201 with version: 1"); `currentVersion` also accepted. */
  version?: number;
  currentVersion?: number;
  content?: string;
  /** Secrets its runs get as environment variables (versioned with the content). */
  secrets?: string[];
  createdAt?: string;
  updatedAt?: string;
}

/** A script secret as every route shows it: never its value. */
export interface Secret {
  id: string;
  name: string;
  /** Null: the whole workspace; else one server (its value wins). */
  serverId: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface ScriptVersion {
  version: number;
  content?: string;
  createdAt?: string;
}

export interface Webhook {
  id: string;
  name: string;
  scriptId: string;
  serverId: string;
  token: string;
  active: boolean;
  allowedIps: string[];
  hmacEnabled: boolean;
  callCount: number;
  lastCalledAt: string | null;
  createdAt: string;
  /** Ready-made snippets keyed by language; any string field is shown as a tab. */
  examples?: Record<string, unknown> | null;
  snippets?: Record<string, unknown> | null;
  curl?: string;
  url?: string;
}

export interface Delivery {
  id?: string;
  createdAt?: string;
  sourceIp?: string | null;
  statusCode?: number;
  code?: string | null;
  reason?: string | null;
  executionId?: string | null;
}

export interface Execution {
  id: string;
  scriptId: string;
  scriptVersion?: number;
  serverId: string;
  webhookId: string | null;
  trigger: Trigger;
  status: ExecutionStatus;
  exitCode: number | null;
  signal?: string | null;
  /** Why it ended the way it did, when that is not a plain exit (lost, timed out, cancelled, ...). */
  error?: string | null;
  queuedAt?: string | null;
  startedAt?: string | null;
  finishedAt?: string | null;
  durationMs?: number | null;
  outputBytes?: number;
  outputTruncated?: boolean;
  outputTruncatedBy?: 'script_limit' | 'workspace_quota' | null;
  /** When retention removed the output (the row stays). */
  outputExpiredAt?: string | null;
  /** Names are used when the API joins them in; otherwise looked up by id. */
  scriptName?: string;
  serverName?: string;
  webhookName?: string;
  createdAt?: string;
}

/** 202 answer of a manual run (the same body as the public trigger). */
export interface RunAccepted {
  executionId: string;
  status: ExecutionStatus;
  links?: Record<string, string>;
}

/** The key's workspace: retention in force, output stored and the quota. */
export interface WorkspaceSettings {
  id: string;
  name: string;
  outputRetention: string;
  deliveryRetention: string;
  instanceOutputRetention: string;
  instanceDeliveryRetention: string;
  outputBytes: number;
  outputQuotaBytes: number;
}
