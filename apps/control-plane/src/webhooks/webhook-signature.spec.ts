import { describe, expect, it } from '@jest/globals';
import { createHmac } from 'node:crypto';
import { checkSignature, signBody } from './webhook-signature.js';

const secret = 'a secret';
const body = Buffer.from('{"token":"abc","ref":"main"}');
const good = createHmac('sha256', secret).update(body).digest('hex');

describe('checkSignature', () => {
  it('accepts the hex HMAC-SHA256 of the raw bytes, bare or sha256=, any case', () => {
    expect(signBody(secret, body)).toBe(good);
    for (const h of [good, `sha256=${good}`, good.toUpperCase(), ` ${good} `]) expect(checkSignature(secret, body, h)).toBe('valid');
  });

  it('tells missing, malformed and mismatching apart (for the owner only)', () => {
    expect(checkSignature(secret, body, undefined)).toBe('missing');
    expect(checkSignature(secret, body, '')).toBe('missing');
    expect(checkSignature(secret, body, [good, good])).toBe('malformed');
    for (const h of [good.slice(1), `${good}0`, `${good.slice(1)}z`, `sha1=${good}`, `sha256:${good}`, good + good]) {
      expect(checkSignature(secret, body, h)).toBe('malformed');
    }
    expect(checkSignature('other', body, good)).toBe('mismatch');
    expect(checkSignature(secret, Buffer.from('{"ref":"main","token":"abc"}'), good)).toBe('mismatch');
    expect(checkSignature(secret, Buffer.concat([body, Buffer.from('\n')]), good)).toBe('mismatch');
  });
});
