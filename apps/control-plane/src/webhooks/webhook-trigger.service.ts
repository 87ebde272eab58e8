import { MAX_JSON_DEPTH } from '@app/protocol';
import { HttpStatus, Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { IncomingHttpHeaders } from 'node:http';
import { DataSource } from 'typeorm';
import { isDatabaseUnavailable } from '../common/all-exceptions.filter.js';
import { AppException, type ErrorCode, RetryLaterException } from '../common/app-exception.js';
import { SecretsService } from '../common/secrets.service.js';
import { sha256 } from '../common/tokens.js';
import { jsonTooDeep } from '../common/json-depth.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import type { CreatedRow, RememberedDelivery, SealedPayload, Skipped, WebhookPolicy } from '../executions/execution.repository.js';
import { PAYLOAD_PURPOSE } from '../executions/run-commands.js';
import { preparedRows } from '../executions/sql.js';
import { type Accepted, ExecutionsService } from '../executions/executions.service.js';
import { ExecutionWaiter, type Finished } from '../executions/execution-waiter.js';
import { DeliveryLog, type DeliveryRecord } from './delivery-log.service.js';
import { AllowlistCache, canonicalAddress } from './ip-allowlist.js';
import type { Pool } from 'pg';
import { TriggerFailureLimiter } from './trigger-failure-limiter.js';
import { type SignatureScheme, verifyScheme } from './webhook-signature.js';
import { HMAC_PURPOSE } from './webhooks.service.js';
import { triggerAcceptSeconds, triggerCalls } from '../metrics/trigger-metrics.js';

/** One call of the public trigger, as the HTTP layer received it. */
export interface TriggerCall {
  /** The token from the path form (`/script_execute/{token}`), if that route was called. */
  pathToken?: string;
  /** The bytes as received, whatever their type (what a signature covers); undefined for an empty body. */
  rawBody: Buffer | undefined;
  /** The caller's address: the socket's, or from X-Forwarded-For when sent by a trusted proxy. */
  ip: string | undefined;
  headers: IncomingHttpHeaders;
  /** `?wait=N` as given (the other way to ask to wait, beside `Prefer: wait=N`). */
  waitQuery?: unknown;
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
  signature_scheme: SignatureScheme;
  concurrency: WebhookPolicy['concurrency'];
  cooldown_seconds: number;
  pass_payload: boolean;
}

/** A call answered 200 rather than 202: a delivery seen before, or Slack's URL check. */
export type Duplicate = Accepted & { duplicate: true };
/** A call the webhook's policy answered without running anything (a 2xx, so senders do not retry). */
export interface SkippedAnswer {
  status: 'skipped';
  reason: Skipped['reason'];
  executionId: string;
}

export type TriggerAnswer =
  | { status: 202; body: Accepted; workspaceId?: string }
  | { status: 200; body: Duplicate | SkippedAnswer | { challenge: string } }
  | { status: 200; body: Finished; waited: number };

/** The longest a caller may wait for its run (seconds). */
export const MAX_WAIT_SECONDS = 60;

/** Delivery ids longer than this are refused (400): no sender's own id comes near it. */
const MAX_DELIVERY_ID = 255;

const TOKEN_SHAPE = /^[0-9a-f]{64}$/;
const INVALID_TOKEN = 'Invalid or inactive webhook token';
const SECRET_CACHE_MAX = 10_000;
const MATCH_CACHE_MAX = 10_000;

/**
 * The public trigger, checked in docs/architecture.md's order: body and token (400), an active webhook
 * with that token (404), the caller's address (403), the signature of the webhook's scheme (401);
 * then, in one statement, the remembered delivery id (200 duplicate when seen before), the
 * execution, the delivery row and the atomic call counter (202). Every answer
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
    private readonly waiter: ExecutionWaiter,
  ) {
    // Counted in PostgreSQL, so a caller spreading its guesses over the nodes is counted once.
    const pool = (db.driver as unknown as { master: Pool }).master;
    const { points, windowSeconds } = config.triggerFailureLimit;
    this.failures = new TriggerFailureLimiter(points, windowSeconds, { pool, keyPrefix: 'token' });
    this.signatureFailures = new TriggerFailureLimiter(points, windowSeconds, { pool, keyPrefix: 'signature' });
  }

  /** One call, counted by its result code; the accepted ones' latency observed. */
  async trigger(call: TriggerCall): Promise<TriggerAnswer> {
    const started = process.hrtime.bigint();
    const waitSeconds = waitPreference(call.headers.prefer, call.waitQuery);
    // Listening starts before the accept, so a run that ends at once is not missed.
    const wait = waitSeconds === null ? null : this.waiter.begin();
    try {
      const answer = await this.check(call);
      if (answer.status === 202) {
        triggerCalls.inc({ code: 'ACCEPTED' });
        triggerAcceptSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
        if (wait && waitSeconds !== null && answer.workspaceId) {
          const finished = await wait.until(answer.workspaceId, answer.body.executionId, waitSeconds * 1000);
          if (finished) return { status: 200, body: finished, waited: waitSeconds };
          return { status: 202, body: answer.body };
        }
      } else {
        triggerCalls.inc({ code: 'challenge' in answer.body ? 'URL_VERIFICATION' : 'duplicate' in answer.body ? 'DUPLICATE' : 'SKIPPED' });
      }
      wait?.cancel();
      return answer;
    } catch (e) {
      wait?.cancel();
      triggerCalls.inc({ code: e instanceof AppException ? e.code : isDatabaseUnavailable(e) ? 'DATABASE_UNAVAILABLE' : 'INTERNAL_ERROR' });
      throw e;
    }
  }

  private async check(call: TriggerCall): Promise<TriggerAnswer> {
    const sourceIp = canonicalAddress(call.ip) ?? call.ip ?? 'unknown';
    const userAgent = typeof call.headers['user-agent'] === 'string' ? call.headers['user-agent'] : null;
    const record = (webhook: Match | null, statusCode: number, code: DeliveryRecord['code'], reason: string, executionId: string | null = null) =>
      ({ webhookId: webhook?.id ?? null, workspaceId: webhook?.workspace_id ?? null, sourceIp, statusCode, code, reason, executionId, userAgent }) satisfies DeliveryRecord;
    const reject = (webhook: Match | null, status: HttpStatus, code: ErrorCode, message: string, reason: string) => {
      this.deliveries.record(record(webhook, status, code, reason));
      return new AppException(status, code, message);
    };

    const token = tokenOf(call);
    if (typeof token !== 'string') throw reject(null, HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', token.message, token.reason);

    const tokenHash = TOKEN_SHAPE.test(token) ? sha256(token) : null;
    const key = tokenHash?.toString('hex');
    // A webhook seen before skips the lookup: the accept statement itself checks that it is still
    // active with the same allowed IPs. Anything else (paused, changed, deleted, any check that
    // fails here) goes the long way below, from a fresh lookup.
    const cached = key === undefined ? undefined : this.matches.get(key);
    let accepted: { webhook: Match; execution: CreatedRow } | null = null;
    if (cached?.active && !this.denial(cached, call, sourceIp)) {
      const early = this.beforeAccept(cached, call, record);
      if (early) return early;
      const execution = await this.acceptRecorded(cached, call, sourceIp, userAgent, record);
      if (execution && 'duplicate' in execution) return this.duplicate(cached, execution.duplicate, record);
      if (execution && 'skipped' in execution) return this.skipped(cached, execution.skipped, record);
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
      if (denied?.code === 'INVALID_SIGNATURE' || denied?.code === 'STALE_SIGNATURE') {
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

      const early = this.beforeAccept(webhook, call, record);
      if (early) return early;
      const execution = await this.acceptRecorded(webhook, call, sourceIp, userAgent, record);
      if (execution && 'duplicate' in execution) return this.duplicate(webhook, execution.duplicate, record);
      if (execution && 'skipped' in execution) return this.skipped(webhook, execution.skipped, record);
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
    return { status: 202, body: this.executions.accepted(execution), workspaceId: execution.workspace_id };
  }

  /**
   * After the checks, before anything is written: a delivery id too long to remember (400), and
   * Slack's one-off URL verification, answered with its challenge and never run.
   */
  private beforeAccept(webhook: Match, call: TriggerCall, record: (webhook: Match, statusCode: number, code: DeliveryRecord['code'], reason: string) => DeliveryRecord): TriggerAnswer | null {
    const id = deliveryIdOf(webhook.signature_scheme, call.headers);
    if (id !== null && id.length > MAX_DELIVERY_ID) {
      this.deliveries.record(record(webhook, HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', 'delivery id too long'));
      throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', `The delivery id (Idempotency-Key) is longer than ${MAX_DELIVERY_ID} characters`);
    }
    if (webhook.signature_scheme !== 'slack') return null;
    const challenge = slackChallenge(call);
    if (challenge === null) return null;
    this.deliveries.record(record(webhook, HttpStatus.OK, 'URL_VERIFICATION', 'Slack URL verification answered'));
    return { status: 200, body: { challenge } };
  }

  private skipped(
    webhook: Match,
    skipped: Skipped,
    record: (webhook: Match, statusCode: number, code: DeliveryRecord['code'], reason: string, executionId: string | null) => DeliveryRecord,
  ): TriggerAnswer {
    const why = skipped.reason === 'COOLDOWN' ? 'within the cooldown of the last accepted run' : 'a run of this webhook is already queued or running';
    this.deliveries.record(record(webhook, HttpStatus.OK, 'SKIPPED', `skipped: ${why}`, skipped.executionId));
    return { status: 200, body: { status: 'skipped', reason: skipped.reason, executionId: skipped.executionId } };
  }

  private duplicate(
    webhook: Match,
    first: { id: string; status: Accepted['status'] },
    record: (webhook: Match, statusCode: number, code: DeliveryRecord['code'], reason: string, executionId: string | null) => DeliveryRecord,
  ): TriggerAnswer {
    this.deliveries.record(record(webhook, HttpStatus.OK, 'DUPLICATE', 'delivery seen before: nothing run', first.id));
    return { status: 200, body: { ...this.executions.accepted(first), duplicate: true } };
  }

  /** Steps 3 and 4: why an active webhook refuses this call (its address, then its signature), or null. */
  private denial(webhook: Match, call: TriggerCall, sourceIp: string): { status: HttpStatus; code: ErrorCode; message: string; reason: string } | null {
    if (webhook.allowed_ips.length && !this.allowlists.get(webhook.allowed_ips).allows(call.ip)) {
      return { status: HttpStatus.FORBIDDEN, code: 'IP_NOT_ALLOWED', message: 'IP not allowed', reason: `${sourceIp} is not in the allowed IPs` };
    }
    if (!webhook.hmac_secret_encrypted) return null;
    const { check, reason } = verifyScheme(webhook.signature_scheme, this.hmacSecret(webhook), call.rawBody ?? Buffer.alloc(0), call.headers, Date.now() / 1000);
    if (check === 'valid') return null;
    if (check === 'stale') return { status: HttpStatus.UNAUTHORIZED, code: 'STALE_SIGNATURE', message: 'Signature timestamp outside the tolerance', reason };
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
    call: TriggerCall,
    sourceIp: string,
    userAgent: string | null,
    record: (webhook: Match, statusCode: number, code: DeliveryRecord['code'], reason: string) => DeliveryRecord,
  ): Promise<CreatedRow | { duplicate: RememberedDelivery } | { skipped: Skipped } | null> {
    try {
      const deliveryId = deliveryIdOf(webhook.signature_scheme, call.headers);
      const payload = webhook.pass_payload ? this.sealedPayload(call, deliveryId) : null;
      return await this.executions.create(
        {
          trigger: 'webhook',
          webhookId: webhook.id,
          allowedIps: webhook.allowed_ips,
          sourceIp,
          userAgent,
          deliveryId,
          policy: { concurrency: webhook.concurrency, cooldownSeconds: webhook.cooldown_seconds },
          passPayload: webhook.pass_payload,
          payload,
        },
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
      `SELECT id, workspace_id, script_id, server_id, active, allowed_ips, hmac_secret_encrypted, signature_scheme,
              concurrency, cooldown_seconds, pass_payload
         FROM webhook WHERE token_hash = $1`,
      [tokenHash],
    );
    return match ?? null;
  }

  /** The request as its run will get it, the body sealed under the master key while it waits. */
  private sealedPayload(call: TriggerCall, deliveryId: string | null): SealedPayload {
    const header = (name: string) => {
      const v = call.headers[name];
      return typeof v === 'string' ? v.trim() : '';
    };
    return {
      bodySealed: this.secrets.sealBytes(call.rawBody ?? Buffer.alloc(0), PAYLOAD_PURPOSE),
      event: (header('x-github-event') || header('x-gitlab-event')).slice(0, 256),
      deliveryId: deliveryId ?? '',
      contentType: header('content-type').slice(0, 1024),
    };
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

/**
 * How long the caller asks to wait for its run: `Prefer: wait=N` (RFC 7240, among other
 * preferences) or `?wait=N`; null when it does not ask. Longer than 60 s is cut to 60 s;
 * anything that is not a whole number of at least 1 is ignored, as RFC 7240 lets a server do.
 */
export function waitPreference(prefer: string | string[] | undefined, query: unknown): number | null {
  const header = Array.isArray(prefer) ? prefer.join(',') : prefer;
  const fromHeader = header === undefined ? undefined : /(?:^|[,;\s])wait\s*=\s*"?(\d{1,6})"?(?=\s*(?:[,;]|$))/i.exec(header)?.[1];
  const raw = fromHeader ?? (typeof query === 'string' && /^\d{1,6}$/.test(query) ? query : undefined);
  if (raw === undefined) return null;
  const n = Number(raw);
  return n < 1 ? null : Math.min(n, MAX_WAIT_SECONDS);
}

const JSON_TYPE = /^application\/json\b/i;

/**
 * Step 1, every place a token may be: the path, `X-Webhook-Token`, `Authorization: Bearer`, and
 * only when none of these is given, the `token` field of a JSON body (then the body must be JSON;
 * otherwise it may be anything). Never the query string: proxies log it. Two different tokens
 * in one call are refused rather than one of them picked.
 */
export function tokenOf(call: Pick<TriggerCall, 'pathToken' | 'rawBody' | 'headers'>): string | { message: string; reason: string } {
  const given = new Set<string>();
  if (call.pathToken) given.add(call.pathToken);
  const header = call.headers['x-webhook-token'];
  if (typeof header === 'string' && header.trim() !== '') given.add(header.trim());
  const auth = call.headers.authorization;
  const bearer = typeof auth === 'string' ? /^Bearer[ \t]+(\S+)\s*$/i.exec(auth) : null;
  if (bearer) given.add(bearer[1]!);
  if (given.size > 1) return { message: 'Two different tokens in one call (path, X-Webhook-Token, Authorization)', reason: 'two different tokens' };
  if (given.size === 1) return [...given][0]!;
  const type = call.headers['content-type'];
  const raw = call.rawBody;
  if (!raw?.length || !type || !JSON_TYPE.test(type.trim())) return readToken(undefined, type);
  // Nesting is what makes parsing expensive: refused before it is parsed, as on every other route.
  if (jsonTooDeep(raw, MAX_JSON_DEPTH)) return { message: 'JSON body nested too deep', reason: 'JSON nested too deep' };
  let body: unknown;
  try {
    // In the charset it says (UTF-8 unless UTF-16 is named; others were refused with 415); invalid bytes are malformed.
    const utf16 = /;\s*charset\s*=\s*"?utf-16/i.test(type);
    body = JSON.parse(new TextDecoder(utf16 ? 'utf-16le' : 'utf-8', { fatal: true }).decode(raw));
  } catch {
    return { message: 'Malformed JSON body', reason: 'malformed JSON' };
  }
  return readToken(body, type);
}

/**
 * The sender's id of this delivery: the scheme's own when it has one (signed, for Standard
 * Webhooks), else `Idempotency-Key`; null when there is none (nothing is remembered then).
 */
export function deliveryIdOf(scheme: SignatureScheme, headers: IncomingHttpHeaders): string | null {
  const h = (name: string) => {
    const v = headers[name];
    return typeof v === 'string' && v.trim() !== '' ? v.trim() : null;
  };
  let own: string | null = null;
  if (scheme === 'standard-webhooks') own = h('webhook-id');
  else if (scheme === 'github') own = h('x-github-delivery');
  else if (scheme === 'gitlab') own = h('x-gitlab-event-uuid');
  else if (scheme === 'slack') {
    const ts = h('x-slack-request-timestamp');
    const sig = h('x-slack-signature');
    // Slack sends no id: a retry carries the same timestamp and signature.
    own = ts && sig ? `${ts}:${sig}` : null;
  }
  return own ?? h('idempotency-key');
}

/** Slack's `url_verification` event (JSON): its challenge, or null for any other request. */
function slackChallenge(call: TriggerCall): string | null {
  const type = call.headers['content-type'];
  if (!call.rawBody?.length || !type || !JSON_TYPE.test(type.trim())) return null;
  try {
    const body = JSON.parse(call.rawBody.toString('utf8')) as { type?: unknown; challenge?: unknown } | null;
    return body?.type === 'url_verification' && typeof body.challenge === 'string' ? body.challenge : null;
  } catch {
    return null;
  }
}

/** The body's token, or what the caller is told (and what the owner's delivery log says). */
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
