import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-webhook-signature';

export type SignatureCheck = 'valid' | 'missing' | 'malformed' | 'mismatch';

const SIGNATURE = /^(?:sha256=)?([0-9a-fA-F]{64})$/;

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
  if (header === undefined || header === '') return 'missing';
  if (typeof header !== 'string') return 'malformed';
  const match = SIGNATURE.exec(header.trim());
  if (!match) return 'malformed';
  const given = Buffer.from(match[1]!, 'hex');
  const expected = createHmac('sha256', secret).update(rawBody).digest();
  return given.length === expected.length && timingSafeEqual(given, expected) ? 'valid' : 'mismatch';
}
