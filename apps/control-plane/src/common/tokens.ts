import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** SHA-256 of a secret: what the database keeps and looks secrets up by. */
export function sha256(value: string | Buffer): Buffer {
  return createHash('sha256').update(value).digest();
}

/** An API key: `dp_` + 43 URL-safe characters (32 random bytes). */
export const newApiKey = () => `dp_${randomBytes(32).toString('base64url')}`;
/** An agent token: `dpa_` + 43 URL-safe characters (32 random bytes). */
export const newAgentToken = () => `dpa_${randomBytes(32).toString('base64url')}`;
/** A webhook token: 64 hex characters (32 random bytes). */
export const newWebhookToken = () => randomBytes(32).toString('hex');

/** Constant-time comparison of two strings of any length. */
export function safeEqual(a: string | Buffer, b: string | Buffer): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}
