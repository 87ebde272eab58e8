import { createHmac } from 'node:crypto';

export const hmacHex = (secret, body) => createHmac('sha256', secret).update(body).digest('hex');

/** The body and headers of a valid signed trigger call (the signature covers these exact bytes). */
export function signedCall(token, secret) {
  const body = JSON.stringify({ token });
  return { body, headers: { 'content-type': 'application/json', 'x-webhook-signature': hmacHex(secret, body) } };
}
