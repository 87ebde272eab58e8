import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { callTrigger, createWebhook, hmacHex, serverAndScript, triggerWith } from './support/webhook-fixtures.js';

/**
 * The public trigger against the real app process and a real PostgreSQL. The app listens on `::`
 * (both stacks), so the test can call it from 127.0.0.1 (seen as ::ffff:127.0.0.1) and from ::1.
 */
let db: TestDatabase;
let cp: ControlPlane;
let owner: Api;
let v4: string;
let v6: string;
let serverId: string;
let scriptId: string;
/** Every token and secret this file used: none may appear in the control plane's output. */
const secretsSeen: string[] = [];

const SECRET = `s3cret-${randomBytes(12).toString('hex')}`;

async function webhook(body: { allowedIps?: string[]; hmacSecret?: string; name?: string } = {}) {
  const w = await createWebhook(owner, scriptId, { serverId, ...body });
  secretsSeen.push(w.token);
  return w;
}
const jsonHeaders = { 'content-type': 'application/json' };
const callCount = async (id: string) => (await owner.get(`/api/v1/webhooks/${id}`)).body.callCount as number;

beforeAll(async () => {
  db = await createTestDatabase();
  // At debug, so the trigger's own request lines (debug since the delivery log is the record) are there to search.
  cp = await startControlPlane({ databaseUrl: db.url, env: { HOST: '::', DEVPILOT_LOG_LEVEL: 'debug' } });
  owner = new Api(cp.url, cp.adminKey);
  v4 = `http://127.0.0.1:${cp.port}`;
  v6 = `http://[::1]:${cp.port}`;
  ({ serverId, scriptId } = await serverAndScript(owner, 'trigger'));
  secretsSeen.push(SECRET);
});

afterAll(async () => {
  await cp?.stop();
  await db?.drop();
});

describe('1. body and token: 400 VALIDATION_ERROR', () => {
  it('missing token', async () => {
    const r = await callTrigger(v4, '{}', jsonHeaders);
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ statusCode: 400, code: 'VALIDATION_ERROR', message: 'token is required' });
  });

  it('no body at all', async () => {
    const r = await callTrigger(v4, undefined);
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('VALIDATION_ERROR');
  });

  it('malformed JSON is 400, not 500', async () => {
    for (const body of ['{"token": ', '{token: "x"}', 'null garbage', '\u0000']) {
      const r = await callTrigger(v4, body, jsonHeaders);
      expect(r.status).toBe(400);
      expect(r.body.code).toBe('VALIDATION_ERROR');
    }
  });

  it('wrong content type, even with a real token in the body', async () => {
    const w = await webhook();
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const r = await callTrigger(v4, JSON.stringify({ token: w.token }), { 'content-type': type });
      expect(r.status).toBe(400);
      expect(r.body.code).toBe('VALIDATION_ERROR');
      expect(r.body.message).toMatch(/^token is required/);
    }
    expect(await callCount(w.id)).toBe(0);
  });

  it('non-string, empty or null token; array and scalar bodies', async () => {
    for (const body of [{ token: 123 }, { token: ['a'] }, { token: { a: 1 } }, { token: true }, { token: null }, { token: '' }, [{ token: 'a' }], 'token']) {
      const r = await callTrigger(v4, JSON.stringify(body), jsonHeaders);
      expect({ body, status: r.status, code: r.body.code }).toEqual({ body, status: 400, code: 'VALIDATION_ERROR' });
    }
  });

  it('extra fields next to the token are accepted and ignored', async () => {
    const w = await webhook();
    const r = await callTrigger(v4, JSON.stringify({ token: w.token, ref: 'main', nested: { a: [1, 2] } }), jsonHeaders);
    expect(r.status).toBe(202);
  });
});

describe('2. token: 404 INVALID_TOKEN', () => {
  const invalid = { statusCode: 404, code: 'INVALID_TOKEN', message: 'Invalid or inactive webhook token' };

  it('unknown token, of the right shape or not', async () => {
    for (const token of [randomBytes(32).toString('hex'), 'x'.repeat(64), 'short', 'A'.repeat(5000)]) {
      const r = await triggerWith(v4, token);
      expect(r.status).toBe(404);
      expect(r.body).toEqual(invalid);
    }
  });

  it('a deleted webhook stops working at once', async () => {
    const w = await webhook();
    expect((await triggerWith(v4, w.token)).status).toBe(202);
    expect((await owner.delete(`/api/v1/webhooks/${w.id}`)).status).toBe(204);
    const r = await triggerWith(v4, w.token);
    expect(r.status).toBe(404);
    expect(r.body).toEqual(invalid);
  });

  it('paused answers 404 like unknown; re-enabled works again', async () => {
    const w = await webhook();
    expect((await owner.patch(`/api/v1/webhooks/${w.id}`, { active: false })).body.active).toBe(false);
    const paused = await triggerWith(v4, w.token);
    expect(paused.status).toBe(404);
    expect(paused.body).toEqual(invalid);
    expect((await owner.patch(`/api/v1/webhooks/${w.id}`, { active: true })).body.active).toBe(true);
    expect((await triggerWith(v4, w.token)).status).toBe(202);
    expect(await callCount(w.id)).toBe(1);
  });

  it('a webhook that just accepted a call is checked again: pause, allowed IPs and re-enable apply to the very next call', async () => {
    const w = await webhook({ allowedIps: ['127.0.0.0/8'] });
    expect((await triggerWith(v4, w.token)).status).toBe(202);
    // The control plane remembers this webhook now; every change below must still apply at once.
    expect((await owner.patch(`/api/v1/webhooks/${w.id}`, { active: false })).status).toBe(200);
    expect((await triggerWith(v4, w.token)).status).toBe(404);
    expect((await owner.patch(`/api/v1/webhooks/${w.id}`, { active: true })).status).toBe(200);
    expect((await triggerWith(v4, w.token)).status).toBe(202);
    expect((await owner.patch(`/api/v1/webhooks/${w.id}`, { allowedIps: ['10.0.0.0/8'] })).status).toBe(200);
    expect((await triggerWith(v4, w.token)).status).toBe(403);
    expect((await owner.patch(`/api/v1/webhooks/${w.id}`, { allowedIps: ['127.0.0.1'] })).status).toBe(200);
    expect((await triggerWith(v4, w.token)).status).toBe(202);
    expect((await triggerWith(v6, w.token)).status).toBe(403);
    expect(await callCount(w.id)).toBe(3);
    const reasons = (await owner.get(`/api/v1/webhooks/${w.id}/deliveries?limit=10`)).body.items.map((d: { code: string }) => d.code);
    expect(reasons).toEqual(['IP_NOT_ALLOWED', 'ACCEPTED', 'IP_NOT_ALLOWED', 'ACCEPTED', 'INVALID_TOKEN', 'ACCEPTED']);
  });
});

describe('3. allowed IPs: 403 IP_NOT_ALLOWED', () => {
  const notAllowed = { statusCode: 403, code: 'IP_NOT_ALLOWED', message: 'IP not allowed' };

  it('IPv4 CIDR: 127.0.0.0/8 lets 127.0.0.1 in, 10.0.0.0/8 does not', async () => {
    const inside = await webhook({ allowedIps: ['127.0.0.0/8'] });
    expect((await triggerWith(v4, inside.token)).status).toBe(202);
    const fromV6 = await triggerWith(v6, inside.token);
    expect(fromV6.status).toBe(403);
    const outside = await webhook({ allowedIps: ['10.0.0.0/8', '192.168.1.7'] });
    const r = await triggerWith(v4, outside.token);
    expect(r.status).toBe(403);
    expect(r.body).toEqual(notAllowed);
    expect(await callCount(outside.id)).toBe(0);
  });

  it('IPv6 CIDR: ::/127 lets ::1 in, 2001:db8::/32 does not', async () => {
    const inside = await webhook({ allowedIps: ['0:0:0:0:0:0:0:0/127'] });
    expect(inside.allowedIps).toEqual(['::/127']);
    expect((await triggerWith(v6, inside.token)).status).toBe(202);
    expect((await triggerWith(v4, inside.token)).status).toBe(403);
    const single = await webhook({ allowedIps: ['::1'] });
    expect((await triggerWith(v6, single.token)).status).toBe(202);
    const outside = await webhook({ allowedIps: ['2001:db8::/32'] });
    const r = await triggerWith(v6, outside.token);
    expect(r.status).toBe(403);
    expect(r.body).toEqual(notAllowed);
  });

  it('IPv4-mapped IPv6 matches its IPv4 form, whichever way it is written', async () => {
    // The socket is dual-stack: a call from 127.0.0.1 arrives as ::ffff:127.0.0.1.
    const plain = await webhook({ allowedIps: ['127.0.0.1'] });
    expect((await triggerWith(v4, plain.token)).status).toBe(202);
    const mapped = await webhook({ allowedIps: ['::ffff:127.0.0.1', '::ffff:10.0.0.0/104'] });
    expect(mapped.allowedIps).toEqual(['127.0.0.1', '10.0.0.0/8']);
    expect((await triggerWith(v4, mapped.token)).status).toBe(202);
    const deliveries = await owner.get(`/api/v1/webhooks/${plain.id}/deliveries`);
    expect(deliveries.body.items[0].sourceIp).toBe('127.0.0.1');
  });

  it('a forged X-Forwarded-For from an untrusted peer changes nothing', async () => {
    const w = await webhook({ allowedIps: ['203.0.113.0/24'] });
    for (const xff of ['203.0.113.5', '203.0.113.5, 127.0.0.1', '127.0.0.1, 203.0.113.5']) {
      const r = await triggerWith(v4, w.token, { 'x-forwarded-for': xff, 'x-real-ip': '203.0.113.5', forwarded: 'for=203.0.113.5' });
      expect(r.status).toBe(403);
    }
    // And the other way round: the socket address still counts when the header names another.
    const local = await webhook({ allowedIps: ['127.0.0.1'] });
    expect((await triggerWith(v4, local.token, { 'x-forwarded-for': '198.51.100.1' })).status).toBe(202);
    const d = await owner.get(`/api/v1/webhooks/${local.id}/deliveries`);
    expect(d.body.items[0].sourceIp).toBe('127.0.0.1');
  });

  it('the address is checked before the signature', async () => {
    const w = await webhook({ allowedIps: ['10.0.0.0/8'], hmacSecret: SECRET });
    const body = JSON.stringify({ token: w.token });
    const r = await callTrigger(v4, body, { ...jsonHeaders, 'x-webhook-signature': hmacHex(SECRET, body) });
    expect(r.status).toBe(403);
  });
});

describe('4. HMAC signature: 401 INVALID_SIGNATURE', () => {
  const invalidSig = { statusCode: 401, code: 'INVALID_SIGNATURE', message: 'Invalid HMAC signature' };
  let w: Awaited<ReturnType<typeof webhook>>;
  beforeAll(async () => {
    w = await webhook({ hmacSecret: SECRET });
  });
  const sign = (body: string) => hmacHex(SECRET, body);

  it('the signature of the exact bytes is accepted (bare hex, sha256= prefix, upper case)', async () => {
    const body = JSON.stringify({ token: w.token, ref: 'main' });
    for (const sig of [sign(body), `sha256=${sign(body)}`, sign(body).toUpperCase()]) {
      const r = await callTrigger(v4, body, { ...jsonHeaders, 'x-webhook-signature': sig });
      expect(r.status).toBe(202);
    }
    // Whitespace and key order as the caller sent them: the bytes, not a re-serialised object.
    const spaced = `{\n  "ref" : "main",\n  "token" : "${w.token}"\n}\n`;
    expect((await callTrigger(v4, spaced, { ...jsonHeaders, 'x-webhook-signature': sign(spaced) })).status).toBe(202);
  });

  it('a signature over re-ordered or re-serialised JSON is rejected', async () => {
    const sent = `{"ref":"main","token":"${w.token}"}`;
    const reordered = JSON.stringify({ token: w.token, ref: 'main' });
    const reserialised = JSON.stringify(JSON.parse(`{ "token" : "${w.token}" }`));
    for (const [body, signed] of [
      [sent, reordered],
      [`{ "token" : "${w.token}" }`, reserialised],
    ] as const) {
      const r = await callTrigger(v4, body, { ...jsonHeaders, 'x-webhook-signature': sign(signed) });
      expect(r.status).toBe(401);
      expect(r.body).toEqual(invalidSig);
    }
  });

  it('missing, wrong-length, malformed and wrong signatures all look the same', async () => {
    const body = JSON.stringify({ token: w.token });
    const good = sign(body);
    for (const header of [
      undefined,
      '',
      good.slice(0, 63),
      good.slice(0, 62),
      `${good}00`,
      good + good,
      `sha1=${good}`,
      `${good.slice(0, 63)}g`,
      hmacHex('another secret', body),
      `${good}, ${good}`,
    ]) {
      const headers: Record<string, string> = { ...jsonHeaders };
      if (header !== undefined) headers['x-webhook-signature'] = header;
      const r = await callTrigger(v4, body, headers);
      expect({ header, status: r.status, body: r.body }).toEqual({ header, status: 401, body: invalidSig });
    }
    expect(await callCount(w.id)).toBe(4); // only the accepted calls of the test before
  });
});

describe('5. accepted: 202, an execution, the counter', () => {
  it('answers {executionId, status, links} and records a webhook execution of the current version', async () => {
    const w = await webhook();
    expect((await owner.patch(`/api/v1/scripts/${scriptId}`, { content: 'echo version two' })).status).toBe(200);
    const before = new Date();
    const r = await triggerWith(v4, w.token);
    expect(r.status).toBe(202);
    expect(r.body).toEqual({
      executionId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      status: 'queued',
      links: {
        execution: `/api/v1/executions/${r.body.executionId}`,
        output: `/api/v1/executions/${r.body.executionId}/output`,
        events: `/api/v1/executions/${r.body.executionId}/events`,
      },
    });
    const [row] = await db.query('SELECT * FROM execution WHERE id = $1', [r.body.executionId]);
    expect(row).toMatchObject({ trigger: 'webhook', webhook_id: w.id, script_id: scriptId, server_id: serverId, script_version: 2 });
    const got = (await owner.get(`/api/v1/webhooks/${w.id}`)).body;
    expect(got.callCount).toBe(1);
    expect(new Date(got.lastCalledAt).getTime()).toBeGreaterThanOrEqual(before.getTime() - 5_000);
  });

  it('500 concurrent valid calls raise callCount by exactly 500 and create 500 executions', async () => {
    const w = await webhook({ name: 'concurrent' });
    const results = await Promise.all(Array.from({ length: 500 }, () => triggerWith(v4, w.token)));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 202)).toHaveLength(500);
    expect(new Set(results.map((r) => r.body.executionId)).size).toBe(500);
    expect(await callCount(w.id)).toBe(500);
    const [{ n }] = await db.query<{ n: string }>(`SELECT count(*) AS n FROM execution WHERE webhook_id = $1 AND trigger = 'webhook'`, [w.id]);
    expect(Number(n)).toBe(500);
    // The delivery log keeps a bounded number per webhook (200, pruned every 50 new rows).
    const page = await owner.get(`/api/v1/webhooks/${w.id}/deliveries?limit=200`);
    expect(page.body.items).toHaveLength(200);
    const [{ kept }] = await db.query<{ kept: string }>('SELECT count(*) AS kept FROM webhook_delivery WHERE webhook_id = $1', [w.id]);
    expect(Number(kept)).toBeGreaterThanOrEqual(200);
    expect(Number(kept)).toBeLessThan(250);
  });

  it('413 over the body limit', async () => {
    const w = await webhook();
    const r = await callTrigger(v4, JSON.stringify({ token: w.token, pad: 'x'.repeat(1024 * 1024 + 10) }), jsonHeaders);
    expect(r.status).toBe(413);
    expect(r.body.code).toBe('PAYLOAD_TOO_LARGE');
    expect(await callCount(w.id)).toBe(0);
  });
});

describe('the delivery log', () => {
  it('shows accepted and rejected calls, newest first, with reasons', async () => {
    const w = await webhook({ hmacSecret: SECRET });
    const body = JSON.stringify({ token: w.token });
    const ok = await callTrigger(v4, body, { ...jsonHeaders, 'x-webhook-signature': hmacHex(SECRET, body), 'user-agent': 'ci-bot/1.0' });
    expect(ok.status).toBe(202);
    expect((await callTrigger(v4, body, { ...jsonHeaders, 'x-webhook-signature': 'f'.repeat(64) })).status).toBe(401);
    expect((await callTrigger(v4, body, jsonHeaders)).status).toBe(401);
    await owner.patch(`/api/v1/webhooks/${w.id}`, { active: false });
    expect((await callTrigger(v4, body, jsonHeaders)).status).toBe(404);

    const r = await owner.get(`/api/v1/webhooks/${w.id}/deliveries`);
    expect(r.status).toBe(200);
    expect(r.body.nextCursor).toBeNull();
    expect(r.body.items.map((d: any) => [d.statusCode, d.code, d.reason])).toEqual([
      [404, 'INVALID_TOKEN', 'webhook is paused'],
      [401, 'INVALID_SIGNATURE', 'X-Webhook-Signature is missing'],
      [401, 'INVALID_SIGNATURE', 'signature does not match the body'],
      [202, 'ACCEPTED', 'accepted'],
    ]);
    const accepted = r.body.items[3];
    expect(accepted).toMatchObject({ sourceIp: '127.0.0.1', executionId: ok.body.executionId, userAgent: 'ci-bot/1.0' });
    expect(r.body.items[0].executionId).toBeNull();
    // Pages: newest first, the cursor continues where the page ended.
    const first = await owner.get(`/api/v1/webhooks/${w.id}/deliveries?limit=3`);
    const second = await owner.get(`/api/v1/webhooks/${w.id}/deliveries?limit=3&cursor=${first.body.nextCursor}`);
    expect([...first.body.items, ...second.body.items].map((d: any) => d.id)).toEqual(r.body.items.map((d: any) => d.id));
  });

  it('records calls that matched no webhook without a webhook', async () => {
    await triggerWith(v4, randomBytes(32).toString('hex'));
    await callTrigger(v4, '{}', jsonHeaders);
    // The log is written in the background: poll the table until both show up.
    const deadline = Date.now() + 10_000;
    let codes: string[] = [];
    while (Date.now() < deadline) {
      codes = (await db.query<{ code: string }>('SELECT code FROM webhook_delivery WHERE webhook_id IS NULL')).map((r) => r.code);
      if (codes.includes('INVALID_TOKEN') && codes.includes('VALIDATION_ERROR')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(codes).toEqual(expect.arrayContaining(['INVALID_TOKEN', 'VALIDATION_ERROR']));
  });
});

describe('robustness', () => {
  it('random bodies, headers and content types never get a 5xx and never crash it', async () => {
    const hex64 = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), minLength: 64, maxLength: 64 });
    const plain = await webhook();
    const signed = await webhook({ hmacSecret: SECRET, allowedIps: ['127.0.0.1', '::1'] });
    const token = fc.oneof(
      fc.constant(plain.token),
      fc.constant(signed.token),
      fc.string(),
      hex64,
      fc.anything(),
    );
    const body = fc.oneof(
      token.map((t) => JSON.stringify({ token: t })),
      fc.tuple(token, fc.dictionary(fc.string(), fc.jsonValue())).map(([t, extra]) => JSON.stringify({ ...extra, token: t })),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.uint8Array({ maxLength: 2048 }),
      fc.constant(undefined),
    );
    const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 120 });
    const headers = fc.record(
      {
        'content-type': fc.oneof(
          fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/json; charset=latin1', 'text/plain', 'application/x-www-form-urlencoded', 'application/vnd.api+json', ''),
          printable,
        ),
        'x-webhook-signature': fc.oneof(hex64, printable),
        'x-forwarded-for': fc.oneof(fc.ipV4(), fc.ipV6(), printable),
        'content-encoding': fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'bogus'),
        'user-agent': printable,
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(body, headers, fc.boolean(), async (b, h, overV6) => {
        const r = await callTrigger(overV6 ? v6 : v4, typeof b === 'string' || b === undefined ? b : Buffer.from(b), h);
        if (r.status >= 500) return false;
        return r.status === 202 ? typeof r.body.executionId === 'string' : typeof r.body?.code === 'string' && r.body.statusCode === r.status;
      }),
      { numRuns: 300 },
    );
    expect(cp.proc.running).toBe(true);
    expect((await fetch(`${cp.url}/health`)).status).toBe(200);
    // Still answers a good call.
    expect((await triggerWith(v4, plain.token)).status).toBe(202);
  });

  it('tokens, secrets and signatures never appear in its output', async () => {
    const w = await webhook({ hmacSecret: SECRET });
    const body = JSON.stringify({ token: w.token });
    const sig = hmacHex(SECRET, body);
    expect((await callTrigger(v4, body, { ...jsonHeaders, 'x-webhook-signature': sig })).status).toBe(202);
    const logs = cp.proc.logs;
    expect(logs).toContain('script_execute'); // the request log is there at all
    for (const secret of [...secretsSeen, sig]) expect(logs).not.toContain(secret);
  });
});
