import { describe, expect, it } from '@jest/globals';
import { createHmac } from 'node:crypto';
import { checkSignature, generateSecret, secretProblem, signBody, verifyScheme } from './webhook-signature.js';

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

describe('verifyScheme', () => {
  const now = 1_800_000_000;
  const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

  it('github: only sha256=<hex> in X-Hub-Signature-256', () => {
    const sig = `sha256=${hmac(secret, body.toString()).toString('hex')}`;
    expect(verifyScheme('github', secret, body, { 'x-hub-signature-256': sig }, now).check).toBe('valid');
    expect(verifyScheme('github', secret, body, { 'x-hub-signature-256': sig.slice(7) }, now).check).toBe('malformed');
    expect(verifyScheme('github', secret, body, { 'x-webhook-signature': sig }, now).check).toBe('missing');
  });

  it('slack and standard-webhooks: a timestamp 301 s away is stale, checked before the signature', () => {
    const slack = (ts: number) => ({ 'x-slack-request-timestamp': String(ts), 'x-slack-signature': `v0=${hmac(secret, `v0:${ts}:${body.toString()}`).toString('hex')}` });
    expect(verifyScheme('slack', secret, body, slack(now - 300), now).check).toBe('valid');
    expect(verifyScheme('slack', secret, body, slack(now - 301), now).check).toBe('stale');
    expect(verifyScheme('slack', secret, body, slack(now + 301), now).check).toBe('stale');
    expect(verifyScheme('slack', secret, body, { ...slack(now - 301), 'x-slack-signature': 'v0=00' }, now).check).toBe('stale');
    expect(verifyScheme('slack', secret, body, { 'x-slack-request-timestamp': 'soon', 'x-slack-signature': 'v0=00' }, now).check).toBe('malformed');

    const key = Buffer.alloc(32, 7);
    const whsec = `whsec_${key.toString('base64')}`;
    const std = (ts: number) => ({ 'webhook-id': 'msg_1', 'webhook-timestamp': String(ts), 'webhook-signature': `v1,${hmac(key, `msg_1.${ts}.${body.toString()}`).toString('base64')}` });
    expect(verifyScheme('standard-webhooks', whsec, body, std(now), now).check).toBe('valid');
    expect(verifyScheme('standard-webhooks', whsec, body, { ...std(now), 'webhook-signature': `v1,AAAA ${std(now)['webhook-signature']}` }, now).check).toBe('valid');
    expect(verifyScheme('standard-webhooks', whsec, body, { ...std(now), 'webhook-id': 'msg_2' }, now).check).toBe('mismatch');
    expect(verifyScheme('standard-webhooks', whsec, body, std(now - 400), now).check).toBe('stale');
    expect(verifyScheme('standard-webhooks', whsec, body, { ...std(now), 'webhook-signature': 'v2,abc' }, now).check).toBe('malformed');
  });

  it('gitlab: the secret itself, nothing else', () => {
    expect(verifyScheme('gitlab', secret, body, { 'x-gitlab-token': secret }, now).check).toBe('valid');
    expect(verifyScheme('gitlab', secret, body, { 'x-gitlab-token': `${secret} ` }, now).check).toBe('valid');
    expect(verifyScheme('gitlab', secret, body, { 'x-gitlab-token': 'a secre' }, now).check).toBe('mismatch');
    expect(verifyScheme('gitlab', secret, body, {}, now).check).toBe('missing');
  });

  it('generated secrets fit their scheme; a bad whsec_ secret is refused', () => {
    expect(secretProblem('standard-webhooks', generateSecret('standard-webhooks'))).toBeNull();
    expect(generateSecret('github')).toMatch(/^[0-9a-f]{64}$/);
    expect(secretProblem('standard-webhooks', 'whsec_short')).not.toBeNull();
    expect(secretProblem('standard-webhooks', 'not base64!')).not.toBeNull();
  });
});
