import { readFileSync } from 'node:fs';
import { MAX_PAYLOAD_BYTES } from '@app/protocol';
import path from 'node:path';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';

/** Thrown when the environment holds a value the control plane cannot start with. */
export class ConfigError extends Error {}

const emptyAsUnset = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const optionalString = z.preprocess(emptyAsUnset, z.string().optional());
const int = (def: number, min: number, max: number) =>
  z.preprocess(emptyAsUnset, z.coerce.number().int().min(min).max(max).default(def));
const bool = (def: boolean) =>
  z.preprocess(
    emptyAsUnset,
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
      .default(def ? 'true' : 'false')
      .transform((v) => v === 'true' || v === '1' || v === 'yes'),
  );

/**
 * A duration: `30d`, `12h`, `15m`, `90s`, or a bare number of days. Returns seconds, at least 1
 * and at most ten years.
 */
export function parseDuration(value: string): number | null {
  const m = /^\s*(\d{1,6})\s*([dhms]?)\s*$/i.exec(value);
  if (!m) return null;
  const n = Number(m[1]);
  const seconds = n * { d: 86_400, h: 3600, m: 60, s: 1, '': 86_400 }[m[2]!.toLowerCase() as 'd' | 'h' | 'm' | 's' | ''];
  return seconds >= 1 && seconds <= 10 * 365 * 86_400 ? seconds : null;
}

const duration = (def: string, name: string) =>
  z.preprocess(
    emptyAsUnset,
    z
      .string()
      .default(def)
      .transform((v, ctx) => {
        const s = parseDuration(v);
        if (s === null) ctx.addIssue({ code: 'custom', message: `${name} must be a duration such as 30d, 12h, 90s (a bare number means days)` });
        return s ?? 0;
      }),
  );

/** Servers, scripts and webhooks a workspace may hold unless DEVPILOT_MAX_*_PER_WORKSPACE says otherwise. */
export const WORKSPACE_LIMIT_DEFAULTS = { servers: 1000, scripts: 10_000, webhooks: 10_000 } as const;

const EnvSchema = z.object({
  PORT: int(3000, 0, 65535),
  HOST: z.preprocess(emptyAsUnset, z.string().default('0.0.0.0')),
  DEVPILOT_DATA_DIR: z.preprocess(emptyAsUnset, z.string().default('./data')),
  DATABASE_URL: z.preprocess(
    emptyAsUnset,
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
      .optional(),
  ),
  REDIS_URL: z.preprocess(
    emptyAsUnset,
    z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .optional(),
  ),
  DEVPILOT_ADMIN_API_KEY: z.preprocess(emptyAsUnset, z.string().min(32, 'must be at least 32 characters').max(512).optional()),
  DEVPILOT_MASTER_KEY: optionalString,
  DEVPILOT_PUBLIC_URL: z.preprocess(emptyAsUnset, z.url({ message: 'must be an http(s) URL' }).optional()),
  DEVPILOT_TRUST_PROXY: optionalString,
  DEVPILOT_ALLOWED_ORIGINS: optionalString,
  DEVPILOT_SERVE_SOURCE_MAPS: bool(false),
  DEVPILOT_LOCAL_AGENT: bool(false),
  DEVPILOT_LOG_LEVEL: z.preprocess(
    emptyAsUnset,
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ),
  // A webhook passing its request to the script sends the body in the start command: bounded alike.
  DEVPILOT_BODY_LIMIT_BYTES: int(1024 * 1024, 1024, MAX_PAYLOAD_BYTES),
  DEVPILOT_DELIVERY_DEADLINE_SECONDS: int(600, 1, 7 * 24 * 3600),
  DEVPILOT_SWEEP_INTERVAL_MS: int(5000, 100, 600_000),
  DEVPILOT_AGENT_ACK_TIMEOUT_MS: int(30_000, 100, 600_000),
  DEVPILOT_REPORT_GRACE_SECONDS: int(300, 1, 7 * 24 * 3600),
  DEVPILOT_AGENT_LOST_SECONDS: int(600, 1, 30 * 24 * 3600),
  DEVPILOT_RUN_TIMEOUT_GRACE_SECONDS: int(60, 1, 24 * 3600),
  DEVPILOT_RETENTION_OUTPUT_DAYS: duration('30d', 'DEVPILOT_RETENTION_OUTPUT_DAYS'),
  DEVPILOT_RETENTION_DELIVERIES_DAYS: duration('14d', 'DEVPILOT_RETENTION_DELIVERIES_DAYS'),
  DEVPILOT_PRUNE_INTERVAL_SECONDS: int(60, 1, 24 * 3600),
  DEVPILOT_WORKSPACE_OUTPUT_QUOTA_BYTES: z.preprocess(emptyAsUnset, z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(10 * 1024 ** 3)),
  DEVPILOT_METRICS_TOKEN: z.preprocess(emptyAsUnset, z.string().min(16, 'must be at least 16 characters').max(512).optional()),
  DEVPILOT_MAX_QUEUED_PER_SERVER: int(10_000, 1, 10_000_000),
  DEVPILOT_MAX_QUEUED_REQUEST_BYTES_PER_SERVER: int(256 * 1024 * 1024, 1024, 1024 ** 4),
  DEVPILOT_MAX_SERVERS_PER_WORKSPACE: int(WORKSPACE_LIMIT_DEFAULTS.servers, 1, 10_000_000),
  DEVPILOT_MAX_SCRIPTS_PER_WORKSPACE: int(WORKSPACE_LIMIT_DEFAULTS.scripts, 1, 10_000_000),
  DEVPILOT_MAX_WEBHOOKS_PER_WORKSPACE: int(WORKSPACE_LIMIT_DEFAULTS.webhooks, 1, 10_000_000),
  DEVPILOT_DB_POOL_SIZE: int(20, 1, 500),
  DEVPILOT_VIEWER_CONNECTIONS_PER_KEY: int(500, 1, 100_000),
  DEVPILOT_TRIGGER_FAILURE_LIMIT: z.preprocess(
    emptyAsUnset,
    z
      .string()
      .regex(/^[1-9]\d{0,5}(\/[1-9]\d{0,4})?$/, 'must be <failures> or <failures>/<seconds>, e.g. 30/60')
      .default('30/60'),
  ),
});

export interface AppConfig {
  port: number;
  host: string;
  /** Absolute path. */
  dataDir: string;
  /** Null: start the embedded PostgreSQL under dataDir. */
  databaseUrl: string | null;
  /** Set: the nodes talk through Redis (socket.io adapter, trigger limiter); else through PostgreSQL. */
  redisUrl: string | null;
  adminApiKey: string | null;
  /** 32 bytes, or null to use (or create) the key file in dataDir. */
  masterKey: Buffer | null;
  publicUrl: string;
  /** Addresses/CIDRs whose X-Forwarded-For is believed; empty: the socket address is the caller. */
  trustProxy: string[];
  /** Browser origins whose pages may open the `/dashboard` socket: the public URL's, the request's own host, and these. */
  allowedOrigins: string[];
  /** Serve the dashboard's source maps (*.map); off by default, so its sources are not public. */
  serveSourceMaps: boolean;
  localAgent: boolean;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  bodyLimitBytes: number;
  deliveryDeadlineMs: number;
  /** How often the dispatcher sweeps: expires queued executions, retries dispatch, refreshes agent last-seen. */
  sweepIntervalMs: number;
  /** How long an agent has to answer execution.start / execution.cancel; an unanswered start is resent after twice that. */
  agentAckTimeoutMs: number;
  /**
   * How long a run that its (connected) agent reported finished waits for missing output before
   * it is given up on as `lost`: a buggy or hostile agent cannot keep it running for ever.
   */
  reportGraceSeconds: number;
  /** A run whose agent has been disconnected this long is `lost` (the agent is told to stop it if it returns). */
  agentLostSeconds: number;
  /** A run not finished `timeoutSeconds` plus this long after it was spawned ends `timed_out`, whatever its agent says. */
  runTimeoutGraceSeconds: number;
  /** Instance retention of execution output and of delivery records, in seconds (a workspace may shorten its own). */
  outputRetentionSeconds: number;
  deliveryRetentionSeconds: number;
  /** How often the pruning job runs (on one node at a time). */
  pruneIntervalSeconds: number;
  /** Stored output bytes per workspace; a run crossing it is truncated (`workspace_quota`). */
  workspaceOutputQuotaBytes: number;
  /** Bearer token of GET /metrics; null: /metrics is off. */
  metricsToken: string | null;
  /** Runs waiting for one server beyond which new calls answer 503 OVERLOADED (a bounded backlog). */
  maxQueuedPerServer: number;
  /** Bytes of kept requests (pass_payload) of the runs waiting for one server beyond which such calls answer 503 OVERLOADED. */
  maxQueuedRequestBytesPerServer: number;
  /** Servers, scripts and webhooks one workspace may hold; creating past them is 403 QUOTA_EXCEEDED. */
  maxPerWorkspace: { servers: number; scripts: number; webhooks: number };
  dbPoolSize: number;
  /** Dashboard connections one API key may hold at once (each browser tab is one). */
  viewerConnectionsPerKey: number;
  /** Invalid webhook tokens one address may send per window before it gets 429 for a window. */
  triggerFailureLimit: { points: number; windowSeconds: number };
}

export const APP_CONFIG = Symbol('APP_CONFIG');

/** Parses the environment once; a wrong value throws a ConfigError naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const port = e.PORT;
  return {
    port,
    host: e.HOST,
    dataDir: path.resolve(e.DEVPILOT_DATA_DIR),
    databaseUrl: e.DATABASE_URL ?? null,
    redisUrl: e.REDIS_URL ?? null,
    adminApiKey: e.DEVPILOT_ADMIN_API_KEY ?? null,
    masterKey: e.DEVPILOT_MASTER_KEY ? parseMasterKey(e.DEVPILOT_MASTER_KEY, 'DEVPILOT_MASTER_KEY') : null,
    publicUrl: (e.DEVPILOT_PUBLIC_URL ?? `http://localhost:${port}`).replace(/\/+$/, ''),
    trustProxy: parseTrustProxy(e.DEVPILOT_TRUST_PROXY),
    serveSourceMaps: e.DEVPILOT_SERVE_SOURCE_MAPS,
    allowedOrigins: parseOrigins(e.DEVPILOT_PUBLIC_URL ?? `http://localhost:${port}`, e.DEVPILOT_ALLOWED_ORIGINS),
    localAgent: e.DEVPILOT_LOCAL_AGENT,
    logLevel: e.DEVPILOT_LOG_LEVEL,
    bodyLimitBytes: e.DEVPILOT_BODY_LIMIT_BYTES,
    deliveryDeadlineMs: e.DEVPILOT_DELIVERY_DEADLINE_SECONDS * 1000,
    sweepIntervalMs: e.DEVPILOT_SWEEP_INTERVAL_MS,
    agentAckTimeoutMs: e.DEVPILOT_AGENT_ACK_TIMEOUT_MS,
    reportGraceSeconds: e.DEVPILOT_REPORT_GRACE_SECONDS,
    agentLostSeconds: e.DEVPILOT_AGENT_LOST_SECONDS,
    runTimeoutGraceSeconds: e.DEVPILOT_RUN_TIMEOUT_GRACE_SECONDS,
    outputRetentionSeconds: e.DEVPILOT_RETENTION_OUTPUT_DAYS,
    deliveryRetentionSeconds: e.DEVPILOT_RETENTION_DELIVERIES_DAYS,
    pruneIntervalSeconds: e.DEVPILOT_PRUNE_INTERVAL_SECONDS,
    workspaceOutputQuotaBytes: e.DEVPILOT_WORKSPACE_OUTPUT_QUOTA_BYTES,
    metricsToken: e.DEVPILOT_METRICS_TOKEN ?? null,
    maxQueuedPerServer: e.DEVPILOT_MAX_QUEUED_PER_SERVER,
    maxQueuedRequestBytesPerServer: e.DEVPILOT_MAX_QUEUED_REQUEST_BYTES_PER_SERVER,
    maxPerWorkspace: {
      servers: e.DEVPILOT_MAX_SERVERS_PER_WORKSPACE,
      scripts: e.DEVPILOT_MAX_SCRIPTS_PER_WORKSPACE,
      webhooks: e.DEVPILOT_MAX_WEBHOOKS_PER_WORKSPACE,
    },
    dbPoolSize: e.DEVPILOT_DB_POOL_SIZE,
    viewerConnectionsPerKey: e.DEVPILOT_VIEWER_CONNECTIONS_PER_KEY,
    triggerFailureLimit: parseFailureLimit(e.DEVPILOT_TRIGGER_FAILURE_LIMIT),
  };
}

/** 32 bytes given as 64 hex characters or base64 (standard or URL-safe). */
export function parseMasterKey(value: string, source: string): Buffer {
  const v = value.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(v) ? Buffer.from(v, 'hex') : Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key.length !== 32) {
    throw new ConfigError(`Invalid configuration:\n  ${source}: must be 32 bytes, as 64 hex characters or base64`);
  }
  return key;
}

export function readMasterKeyFile(file: string): Buffer {
  return parseMasterKey(readFileSync(file, 'utf8'), file);
}

/** The public URL's origin and the extra ones (comma-separated URLs), each as `scheme://host[:port]`. */
function parseOrigins(publicUrl: string, extra: string | undefined): string[] {
  const origins = [new URL(publicUrl).origin];
  for (const entry of (extra ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      throw new ConfigError(`Invalid configuration:\n  DEVPILOT_ALLOWED_ORIGINS: ${JSON.stringify(entry)} is not a URL such as https://ops.example.com`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigError(`Invalid configuration:\n  DEVPILOT_ALLOWED_ORIGINS: ${JSON.stringify(entry)} must be http(s)`);
    }
    origins.push(url.origin);
  }
  return origins;
}

function parseTrustProxy(value: string | undefined): string[] {
  if (!value) return [];
  const entries = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const entry of entries) {
    if (['loopback', 'linklocal', 'uniquelocal'].includes(entry)) continue;
    const ok = entry.includes('/') ? isCidr(entry) : ipaddr.isValid(entry);
    if (!ok) {
      throw new ConfigError(
        `Invalid configuration:\n  DEVPILOT_TRUST_PROXY: "${entry}" is not an IP address, a CIDR range, or one of loopback, linklocal, uniquelocal`,
      );
    }
  }
  return entries;
}

function isCidr(value: string): boolean {
  try {
    ipaddr.parseCIDR(value);
    return true;
  } catch {
    return false;
  }
}

function parseFailureLimit(value: string): { points: number; windowSeconds: number } {
  const [points, seconds] = value.split('/');
  return { points: Number(points), windowSeconds: seconds ? Number(seconds) : 60 };
}
