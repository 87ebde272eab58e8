import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export const SIGNATURE_HEADER = 'x-webhook-signature';

/** How a caller proves it holds the webhook's secret: ours, or the sender's own convention. */
export const SIGNATURE_SCHEMES = ['devpilot', 'github', 'gitlab', 'standard-webhooks', 'slack'] as const;
export type SignatureScheme = (typeof SIGNATURE_SCHEMES)[number];

/** Timestamped schemes refuse a timestamp further than this from now (replays of captured calls). */
export const TIMESTAMP_TOLERANCE_SECONDS = 300;

export type SignatureCheck = 'valid' | 'missing' | 'malformed' | 'mismatch' | 'stale';

/** The outcome, and for a refusal the reason the owner reads in the delivery log (never the values). */
export interface SchemeCheck {
  check: SignatureCheck;
  reason: string;
}

const SIGNATURE = /^(?:sha256=)?([0-9a-fA-F]{64})$/;
const GITHUB_SIGNATURE = /^sha256=([0-9a-fA-F]{64})$/;
const SLACK_SIGNATURE = /^v0=([0-9a-fA-F]{64})$/;
const TIMESTAMP = /^\d{1,12}$/;
const STANDARD_SECRET = /^(?:whsec_)?([A-Za-z0-9+/]+={0,2})$/;
/** Standard Webhooks secrets are 24 to 64 random bytes; fewer would be a weak key. */
const STANDARD_SECRET_MIN_BYTES = 16;

/** The hex HMAC-SHA256 of the raw body under the secret: what a caller sends in X-Webhook-Signature. */
export function signBody(secret: string, rawBody: Buffer | string): string {
  return createHmac('sha256', secret).update(rawBody).digest('hex');
}

/**
 * Checks an X-Webhook-Signature value against the raw request bytes. Accepts the 64 hex
 * characters alone or prefixed `sha256=` (as GitHub sends), in either case. The comparison is
 * constant time over two 32-byte digests; the reason is for the owner's delivery log only.
 */
export function checkSignature(secret: string, rawBody: Buffer, header: string | string[] | undefined): SignatureCheck {
  return hexHmac(SIGNATURE, createHmac('sha256', secret).update(rawBody).digest(), header);
}

/**
 * The check of one scheme against the raw bytes and the headers. Timestamps are checked before
 * any signature (401 STALE_SIGNATURE rather than INVALID_SIGNATURE for an old capture).
 */
export function verifyScheme(scheme: SignatureScheme, secret: string, rawBody: Buffer, headers: IncomingHttpHeaders, nowSeconds: number): SchemeCheck {
  switch (scheme) {
    case 'devpilot': {
      const check = checkSignature(secret, rawBody, headers[SIGNATURE_HEADER]);
      return { check, reason: describe(check, 'X-Webhook-Signature', 'X-Webhook-Signature is not 64 hex characters') };
    }
    case 'github': {
      const check = hexHmac(GITHUB_SIGNATURE, createHmac('sha256', secret).update(rawBody).digest(), headers['x-hub-signature-256']);
      return { check, reason: describe(check, 'X-Hub-Signature-256', 'X-Hub-Signature-256 is not sha256=<64 hex>') };
    }
    case 'gitlab': {
      const given = single(headers['x-gitlab-token']);
      if (given === undefined) return { check: 'missing', reason: 'X-Gitlab-Token is missing' };
      // Digests of both, so the comparison takes the same time whatever the lengths.
      const same = timingSafeEqual(createHash('sha256').update(given).digest(), createHash('sha256').update(secret).digest());
      return same ? { check: 'valid', reason: '' } : { check: 'mismatch', reason: 'X-Gitlab-Token does not match the secret' };
    }
    case 'slack': {
      const ts = single(headers['x-slack-request-timestamp']);
      const stale = timestampCheck(ts, 'X-Slack-Request-Timestamp', nowSeconds);
      if (stale) return stale;
      const expected = createHmac('sha256', secret).update(`v0:${ts}:`).update(rawBody).digest();
      const check = hexHmac(SLACK_SIGNATURE, expected, headers['x-slack-signature']);
      return { check, reason: describe(check, 'X-Slack-Signature', 'X-Slack-Signature is not v0=<64 hex>') };
    }
    case 'standard-webhooks': {
      const id = single(headers['webhook-id']);
      const ts = single(headers['webhook-timestamp']);
      if (id === undefined) return { check: 'missing', reason: 'webhook-id is missing' };
      const stale = timestampCheck(ts, 'webhook-timestamp', nowSeconds);
      if (stale) return stale;
      const header = single(headers['webhook-signature']);
      if (header === undefined) return { check: 'missing', reason: 'webhook-signature is missing' };
      const key = standardWebhooksKey(secret);
      const expected = createHmac('sha256', key).update(`${id}.${ts}.`).update(rawBody).digest();
      // Several signatures may be sent (a sender rotating its secret): any valid v1 one passes.
      let seen = false;
      for (const part of header.split(' ')) {
        const [version, value] = part.split(',', 2);
        if (version !== 'v1' || !value) continue;
        const given = Buffer.from(value, 'base64');
        seen = true;
        if (given.length === expected.length && timingSafeEqual(given, expected)) return { check: 'valid', reason: '' };
      }
      return seen
        ? { check: 'mismatch', reason: 'no v1 signature in webhook-signature matches the body' }
        : { check: 'malformed', reason: 'webhook-signature holds no v1,<base64> signature' };
    }
  }
}

/** A new secret for a scheme that needs one when the owner gave none (shown once). */
export function generateSecret(scheme: Exclude<SignatureScheme, 'devpilot' | 'slack'>): string {
  return scheme === 'standard-webhooks' ? `whsec_${randomBytes(32).toString('base64')}` : randomBytes(32).toString('hex');
}

/** Why an owner-given secret cannot work with the scheme, or null. */
export function secretProblem(scheme: SignatureScheme, secret: string): string | null {
  if (scheme !== 'standard-webhooks') return null;
  const m = STANDARD_SECRET.exec(secret);
  if (!m || Buffer.from(m[1]!, 'base64').length < STANDARD_SECRET_MIN_BYTES) {
    return `a standard-webhooks secret is whsec_ followed by the base64 of at least ${STANDARD_SECRET_MIN_BYTES} bytes`;
  }
  return null;
}

/** The HMAC key of a `whsec_` secret: its base64 part, decoded. */
function standardWebhooksKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
}

function hexHmac(shape: RegExp, expected: Buffer, header: string | string[] | undefined): SignatureCheck {
  if (header === undefined || header === '') return 'missing';
  if (typeof header !== 'string') return 'malformed';
  const match = shape.exec(header.trim());
  if (!match) return 'malformed';
  const given = Buffer.from(match[1]!, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected) ? 'valid' : 'mismatch';
}

function timestampCheck(ts: string | undefined, name: string, nowSeconds: number): SchemeCheck | null {
  if (ts === undefined) return { check: 'missing', reason: `${name} is missing` };
  if (!TIMESTAMP.test(ts)) return { check: 'malformed', reason: `${name} is not a Unix time in seconds` };
  if (Math.abs(nowSeconds - Number(ts)) > TIMESTAMP_TOLERANCE_SECONDS) {
    return { check: 'stale', reason: `${name} is more than ${TIMESTAMP_TOLERANCE_SECONDS} s from now` };
  }
  return null;
}

function single(v: string | string[] | undefined): string | undefined {
  if (typeof v !== 'string') return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}

function describe(check: SignatureCheck, header: string, malformed: string): string {
  return { valid: '', missing: `${header} is missing`, malformed, mismatch: 'signature does not match the body', stale: '' }[check];
}
