import { HttpStatus, Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { IncomingHttpHeaders } from 'node:http';
import { DataSource } from 'typeorm';
import { isDatabaseUnavailable } from '../common/all-exceptions.filter.js';
import { AppException, type ErrorCode, RetryLaterException } from '../common/app-exception.js';
import { SecretsService } from '../common/secrets.service.js';
import { sha256 } from '../common/tokens.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import type { CreatedRow } from '../executions/execution.repository.js';
import { preparedRows } from '../executions/sql.js';
import { type Accepted, ExecutionsService } from '../executions/executions.service.js';
import { DeliveryLog, type DeliveryRecord } from './delivery-log.service.js';
import { AllowlistCache, canonicalAddress } from './ip-allowlist.js';
import type { Pool } from 'pg';
import { TriggerFailureLimiter } from './trigger-failure-limiter.js';
import { checkSignature, SIGNATURE_HEADER } from './webhook-signature.js';
import { HMAC_PURPOSE } from './webhooks.service.js';
import { triggerAcceptSeconds, triggerCalls } from '../metrics/trigger-metrics.js';

/** One call of the public trigger, as the HTTP layer received it. */
export interface TriggerCall {
  /** The parsed JSON body; undefined when the body was not JSON. */
  body: unknown;
  /** The bytes as received (what a signature covers); undefined for an empty or non-JSON body. */
  rawBody: Buffer | undefined;
  /** The caller's address: the socket's, or from X-Forwarded-For when sent by a trusted proxy. */
  ip: string | undefined;
  headers: IncomingHttpHeaders;
}

/** 429: carries how long the caller should wait (the Retry-After header). */
export class RateLimitedException extends RetryLaterException {
  constructor(retryAfterSeconds: number, what = 'invalid tokens from this address') {
    super(HttpStatus.TOO_MANY_REQUESTS, 'RATE_LIMITED', `Too many ${what}; retry in ${retryAfterSeconds} s`, retryAfterSeconds);
  }
}

/** The webhook columns the trigger needs, read in one indexed lookup by token hash. */
interface Match {
  id: string;
  workspace_id: string;
  script_id: string;
  server_id: string;
  active: boolean;
  allowed_ips: string[];
  hmac_secret_encrypted: Buffer | null;
}

const TOKEN_SHAPE = /^[0-9a-f]{64}$/;
const INVALID_TOKEN = 'Invalid or inactive webhook token';
const SECRET_CACHE_MAX = 10_000;
const MATCH_CACHE_MAX = 10_000;

/**
 * The public trigger, checked in docs/architecture.md's order: body and token (400), an active webhook
 * with that token (404), the caller's address (403), the HMAC signature (401); then, in one
 * transaction, the execution, the delivery row and the atomic call counter (202). Every answer
 * is recorded in the delivery log; tokens, signatures and secrets are never logged.
 */
@Injectable()
export class WebhookTriggerService {
  private readonly failures: TriggerFailureLimiter;
  private readonly signatureFailures: TriggerFailureLimiter;
  private readonly allowlists = new AllowlistCache();
  /** Webhooks by token hash (hex), as last looked up; the accept statement verifies what matters. */
  private readonly matches = new Map<string, Match>();
  /** Unsealed HMAC secrets by webhook id. A secret never changes (rotating means a new webhook). */
  private readonly hmacSecrets = new Map<string, string>();

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @InjectDataSource() private readonly db: DataSource,
    private readonly secrets: SecretsService,
    private readonly executions: ExecutionsService,
    private readonly deliveries: DeliveryLog,
  ) {
    // Counted in PostgreSQL, so a caller spreading its guesses over the nodes is counted once.
    const pool = (db.driver as unknown as { master: Pool }).master;
    const { points, windowSeconds } = config.triggerFailureLimit;
    this.failures = new TriggerFailureLimiter(points, windowSeconds, { pool, keyPrefix: 'token' });
    this.signatureFailures = new TriggerFailureLimiter(points, windowSeconds, { pool, keyPrefix: 'signature' });
  }

  /** One call, counted by its result code; the accepted ones' latency observed. */
  async trigger(call: TriggerCall): Promise<Accepted> {
    const started = process.hrtime.bigint();
    try {
      const accepted = await this.check(call);
      triggerCalls.inc({ code: 'ACCEPTED' });
      triggerAcceptSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
      return accepted;
    } catch (e) {
      triggerCalls.inc({ code: e instanceof AppException ? e.code : isDatabaseUnavailable(e) ? 'DATABASE_UNAVAILABLE' : 'INTERNAL_ERROR' });
      throw e;
    }
  }

  private async check(call: TriggerCall): Promise<Accepted> {
    const sourceIp = canonicalAddress(call.ip) ?? call.ip ?? 'unknown';
    const userAgent = typeof call.headers['user-agent'] === 'string' ? call.headers['user-agent'] : null;
    const record = (webhook: Match | null, statusCode: number, code: DeliveryRecord['code'], reason: string, executionId: string | null = null) =>
      ({ webhookId: webhook?.id ?? null, workspaceId: webhook?.workspace_id ?? null, sourceIp, statusCode, code, reason, executionId, userAgent }) satisfies DeliveryRecord;
    const reject = (webhook: Match | null, status: HttpStatus, code: ErrorCode, message: string, reason: string) => {
      this.deliveries.record(record(webhook, status, code, reason));
      return new AppException(status, code, message);
    };

    const token = readToken(call.body, call.headers['content-type']);
    if (typeof token !== 'string') throw reject(null, HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', token.message, token.reason);

    const tokenHash = TOKEN_SHAPE.test(token) ? sha256(token) : null;
    const key = tokenHash?.toString('hex');
    // A webhook seen before skips the lookup: the accept statement itself checks that it is still
    // active with the same allowed IPs. Anything else (paused, changed, deleted, any check that
    // fails here) goes the long way below, from a fresh lookup.
    const cached = key === undefined ? undefined : this.matches.get(key);
    let accepted: { webhook: Match; execution: CreatedRow } | null = null;
    if (cached?.active && !this.denial(cached, call, sourceIp)) {
      const execution = await this.acceptRecorded(cached, sourceIp, userAgent, record);
      if (execution) accepted = { webhook: cached, execution };
    }
    // The long way: a fresh lookup and every check. If the webhook changes between the lookup and
    // the accept statement (paused, allowed IPs edited), look it up and check once more.
    if (key !== undefined && !accepted) this.matches.delete(key);
    for (let attempt = 1; !accepted; attempt++) {
      const webhook = tokenHash ? await this.lookup(tokenHash) : null;
      if (!webhook?.active) {
        // Only refused tokens count, and only they are refused for it: a valid token from the
        // same address (a shared NAT, a SaaS egress) is never locked out by someone's guessing.
        const wait = await this.failures.blockedFor(sourceIp);
        if (wait > 0) {
          this.deliveries.record(record(null, HttpStatus.TOO_MANY_REQUESTS, 'RATE_LIMITED', 'too many invalid tokens from this address'));
          throw new RateLimitedException(wait);
        }
        await this.failures.failed(sourceIp);
        const reason = webhook ? 'webhook is paused' : 'unknown or deleted token';
        throw reject(webhook, HttpStatus.NOT_FOUND, 'INVALID_TOKEN', INVALID_TOKEN, reason);
      }

      const denied = this.denial(webhook, call, sourceIp);
      if (denied?.code === 'INVALID_SIGNATURE') {
        // Per address and webhook: someone holding the token cannot lock the real sender out.
        const key = `${sourceIp}|${webhook.id}`;
        const wait = await this.signatureFailures.blockedFor(key);
        if (wait > 0) {
          this.deliveries.record(record(webhook, HttpStatus.TOO_MANY_REQUESTS, 'RATE_LIMITED', 'too many invalid signatures from this address'));
          throw new RateLimitedException(wait, 'invalid signatures from this address for this webhook');
        }
        await this.signatureFailures.failed(key);
      }
      if (denied) throw reject(webhook, denied.status, denied.code, denied.message, denied.reason);

      const execution = await this.acceptRecorded(webhook, sourceIp, userAgent, record);
      if (execution) {
        if (this.matches.size >= MATCH_CACHE_MAX) this.matches.clear();
        if (key !== undefined) this.matches.set(key, webhook);
        accepted = { webhook, execution };
      } else if (attempt >= 2) {
        throw reject(webhook, HttpStatus.NOT_FOUND, 'INVALID_TOKEN', INVALID_TOKEN, 'webhook was paused, changed or deleted during the call');
      }
    }
    const { webhook, execution } = accepted;
    this.deliveries.committed(webhook.id);
    return this.executions.accepted(execution);
  }

  /** Steps 3 and 4: why an active webhook refuses this call (its address, then its signature), or null. */
  private denial(webhook: Match, call: TriggerCall, sourceIp: string): { status: HttpStatus; code: ErrorCode; message: string; reason: string } | null {
    if (webhook.allowed_ips.length && !this.allowlists.get(webhook.allowed_ips).allows(call.ip)) {
      return { status: HttpStatus.FORBIDDEN, code: 'IP_NOT_ALLOWED', message: 'IP not allowed', reason: `${sourceIp} is not in the allowed IPs` };
    }
    if (!webhook.hmac_secret_encrypted) return null;
    const check = checkSignature(this.hmacSecret(webhook), call.rawBody ?? Buffer.alloc(0), call.headers[SIGNATURE_HEADER]);
    if (check === 'valid') return null;
    const reason = { missing: 'X-Webhook-Signature is missing', malformed: 'X-Webhook-Signature is not 64 hex characters', mismatch: 'signature does not match the body' }[check];
    return { status: HttpStatus.UNAUTHORIZED, code: 'INVALID_SIGNATURE', message: 'Invalid HMAC signature', reason };
  }

  /**
   * The execution, the atomic call counter and the delivery row, in one statement (see
   * ExecutionsService.create); null when the webhook no longer matches (paused, allowed IPs
   * changed, or it, its script or its server deleted meanwhile). A database failure is recorded
   * in the delivery log and thrown.
   */
  private async acceptRecorded(
    webhook: Match,
    sourceIp: string,
    userAgent: string | null,
    record: (webhook: Match, statusCode: number, code: DeliveryRecord['code'], reason: string) => DeliveryRecord,
  ): Promise<CreatedRow | null> {
    try {
      return await this.executions.create(
        { trigger: 'webhook', webhookId: webhook.id, allowedIps: webhook.allowed_ips, sourceIp, userAgent },
        webhook.server_id,
      );
    } catch (e) {
      if (e instanceof AppException) {
        this.deliveries.record(record(webhook, e.getStatus(), e.code, 'the server has too many runs waiting'));
        throw e;
      }
      const unavailable = isDatabaseUnavailable(e);
      this.deliveries.record(record(webhook, unavailable ? 503 : 500, unavailable ? 'DATABASE_UNAVAILABLE' : 'INTERNAL_ERROR', 'could not record the execution'));
      throw e;
    }
  }

  private async lookup(tokenHash: Buffer): Promise<Match | null> {
    const [match] = await preparedRows<Match>(
      this.db,
      `SELECT id, workspace_id, script_id, server_id, active, allowed_ips, hmac_secret_encrypted
         FROM webhook WHERE token_hash = $1`,
      [tokenHash],
    );
    return match ?? null;
  }

  private hmacSecret(webhook: Match): string {
    let secret = this.hmacSecrets.get(webhook.id);
    if (secret === undefined) {
      secret = this.secrets.open(webhook.hmac_secret_encrypted!, HMAC_PURPOSE);
      if (this.hmacSecrets.size >= SECRET_CACHE_MAX) this.hmacSecrets.clear();
      this.hmacSecrets.set(webhook.id, secret);
    }
    return secret;
  }
}

/** Step 1: the token, or what the caller is told (and what the owner's delivery log says). */
export function readToken(body: unknown, contentType: string | undefined): string | { message: string; reason: string } {
  const required = 'token is required';
  if (body === undefined) {
    return contentType && !/^application\/json\b/i.test(contentType.trim())
      ? { message: `${required}: send a JSON body with Content-Type: application/json`, reason: 'body is not JSON (wrong Content-Type)' }
      : { message: required, reason: 'empty body' };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { message: required, reason: 'JSON body is not an object' };
  const token = (body as { token?: unknown }).token;
  if (token === undefined || token === null) return { message: required, reason: 'no token in the body' };
  if (typeof token !== 'string') return { message: required, reason: 'token is not a string' };
  if (token === '') return { message: required, reason: 'token is empty' };
  return token;
}
