import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { callTrigger, createWebhook, hmacHex, serverAndScript, triggerWith } from './support/webhook-fixtures.js';

/**
 * The trigger behind a trusted proxy (127.0.0.1 is the proxy: its X-Forwarded-For is believed,
 * ::1 is not) and the 429 for an address that keeps sending bad tokens (lowered to 5 per minute).
 */
let db: TestDatabase;
let cp: ControlPlane;
let owner: Api;
let proxy: string;
let direct: string;
let serverId: string;
let scriptId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({
    databaseUrl: db.url,
    env: { HOST: '::', DEVPILOT_TRUST_PROXY: '127.0.0.1', DEVPILOT_TRIGGER_FAILURE_LIMIT: '5/60' },
  });
  owner = new Api(cp.url, cp.adminKey);
  proxy = `http://127.0.0.1:${cp.port}`;
  direct = `http://[::1]:${cp.port}`;
  ({ serverId, scriptId } = await serverAndScript(owner, 'limits'));
});

afterAll(async () => {
  await cp?.stop();
  await db?.drop();
});

const unknownToken = () => randomBytes(32).toString('hex');

describe('a trusted proxy', () => {
  it("makes X-Forwarded-For the caller's address, for the allowlist and the delivery log", async () => {
    const w = await createWebhook(owner, scriptId, { serverId, allowedIps: ['203.0.113.0/24'] });
    expect((await triggerWith(proxy, w.token, { 'x-forwarded-for': '203.0.113.9' })).status).toBe(202);
    // The proxy itself is not in the list.
    expect((await triggerWith(proxy, w.token)).status).toBe(403);
    // The right-most untrusted address counts: a client cannot prepend its way in.
    expect((await triggerWith(proxy, w.token, { 'x-forwarded-for': '203.0.113.9, 198.51.100.7' })).status).toBe(403);
    const d = await owner.get(`/api/v1/webhooks/${w.id}/deliveries`);
    expect(d.body.items.map((x: any) => [x.statusCode, x.sourceIp])).toEqual([
      [403, '198.51.100.7'],
      [403, '127.0.0.1'],
      [202, '203.0.113.9'],
    ]);
  });

  it('an untrusted peer still cannot forge X-Forwarded-For', async () => {
    const w = await createWebhook(owner, scriptId, { serverId, allowedIps: ['203.0.113.0/24'] });
    expect((await triggerWith(direct, w.token, { 'x-forwarded-for': '203.0.113.9' })).status).toBe(403);
  });
});

describe('429 for an address that keeps sending bad tokens', () => {
  it('refuses the address its further bad tokens, with Retry-After, and never a valid token from it or another address', async () => {
    const w = await createWebhook(owner, scriptId, { serverId });
    const attacker = { 'x-forwarded-for': '198.51.100.66' };
    // Valid calls never count towards the limit.
    for (let i = 0; i < 8; i++) expect((await triggerWith(proxy, w.token, attacker)).status).toBe(202);
    for (let i = 0; i < 5; i++) expect((await triggerWith(proxy, unknownToken(), attacker)).status).toBe(404);
    const limited = await triggerWith(proxy, unknownToken(), attacker);
    expect(limited.status).toBe(429);
    expect(limited.body.code).toBe('RATE_LIMITED');
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // A valid token from the same address (a shared NAT, an alerting provider's egress) still gets in.
    expect((await triggerWith(proxy, w.token, attacker)).status).toBe(202);
    expect((await triggerWith(proxy, unknownToken(), attacker)).status).toBe(429);
    // Someone else is not limited at all.
    expect((await triggerWith(proxy, w.token, { 'x-forwarded-for': '198.51.100.67' })).status).toBe(202);
    expect((await triggerWith(direct, w.token)).status).toBe(202);
    expect((await owner.get(`/api/v1/webhooks/${w.id}`)).body.callCount).toBe(11);
  });

  it('limits bad signatures per address and webhook: the holder of a token cannot lock the real sender out', async () => {
    const secret = 'limits-secret-0123456789';
    const w = await createWebhook(owner, scriptId, { serverId, hmacSecret: secret });
    const body = JSON.stringify({ token: w.token });
    const signed = (sig: string, from: string) =>
      callTrigger(proxy, body, { 'content-type': 'application/json', 'x-webhook-signature': sig, 'x-forwarded-for': from });
    const forger = '198.51.100.90';
    for (let i = 0; i < 5; i++) expect((await signed('0'.repeat(64), forger)).status).toBe(401);
    const limited = await signed('0'.repeat(64), forger);
    expect([limited.status, limited.body.code]).toEqual([429, 'RATE_LIMITED']);
    // The real sender, elsewhere, and even a valid signature from the forger's address, pass.
    expect((await signed(hmacHex(secret, body), '198.51.100.91')).status).toBe(202);
    expect((await signed(hmacHex(secret, body), forger)).status).toBe(202);
    // Another webhook from the same address is not limited by this one's failures.
    const other = await createWebhook(owner, scriptId, { serverId, hmacSecret: secret });
    const otherBody = JSON.stringify({ token: other.token });
    expect((await callTrigger(proxy, otherBody, { 'content-type': 'application/json', 'x-webhook-signature': '0'.repeat(64), 'x-forwarded-for': forger })).status).toBe(401);
  });

  it('counts IPv6 callers per /64', async () => {
    for (let i = 0; i < 5; i++) {
      expect((await triggerWith(proxy, unknownToken(), { 'x-forwarded-for': `2001:db8:1:2::${i + 1}` })).status).toBe(404);
    }
    expect((await triggerWith(proxy, unknownToken(), { 'x-forwarded-for': '2001:db8:1:2:ffff::9' })).status).toBe(429);
    expect((await triggerWith(proxy, unknownToken(), { 'x-forwarded-for': '2001:db8:1:3::1' })).status).toBe(404);
  });
});
