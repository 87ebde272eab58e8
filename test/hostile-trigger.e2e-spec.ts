// The public trigger against hostile callers, beyond trigger.e2e-spec's random bodies: real
// Content-Encodings (gzip, deflate, br, and lies about them), charsets, sizes around the limit,
// compression bombs, huge headers; and no measurable timing difference between an unknown token
// and the token of a paused or deleted webhook.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { recordFigure } from './support/figures.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { createWebhook, hmacHex, serverAndScript, TRIGGER_PATH } from './support/webhook-fixtures.js';

let db: TestDatabase;
let cp: ControlPlane;
let owner: Api;
let serverId: string;
let scriptId: string;
let plain: { id: string; token: string };
let signed: { id: string; token: string };
const SECRET = `fuzz-${randomBytes(8).toString('hex')}`;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** Exactly these bytes and headers, over a kept-alive connection (node:http: fetch would refuse some headers). */
function post(body: Buffer, headers: Record<string, string | number>): Promise<{ status: number; body: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(
      { host: '127.0.0.1', port: cp.port, path: TRIGGER_PATH, method: 'POST', agent, headers: { 'content-length': body.length, ...headers } },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8'), ms: performance.now() - t0 }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const encode = (enc: string, b: Buffer): Buffer =>
  enc === 'gzip' ? zlib.gzipSync(b) : enc === 'deflate' ? zlib.deflateSync(b) : enc === 'br' ? zlib.brotliCompressSync(b) : b;

beforeAll(async () => {
  db = await createTestDatabase();
  // The failure limit is raised: this file sends many unknown tokens from one address on purpose.
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_TRIGGER_FAILURE_LIMIT: '100000/1' } });
  owner = new Api(cp.url, cp.adminKey);
  ({ serverId, scriptId } = await serverAndScript(owner, 'fuzz'));
  plain = await createWebhook(owner, scriptId, { serverId });
  signed = await createWebhook(owner, scriptId, { serverId, hmacSecret: SECRET });
});

afterAll(async () => {
  agent.destroy();
  await cp?.stop();
  await db?.drop();
});

describe('encodings, charsets and sizes', () => {
  it('compressed bodies work; a lie about the encoding, an unknown one or a bad charset is a 4xx with a code', async () => {
    const json = Buffer.from(JSON.stringify({ token: plain.token }));
    for (const enc of ['gzip', 'deflate', 'br', 'identity']) {
      const r = await post(encode(enc, json), { 'content-type': 'application/json', 'content-encoding': enc });
      expect({ enc, status: r.status }).toEqual({ enc, status: 202 });
    }
    // JSON in UTF-16, said so: read as such.
    const utf16 = await post(Buffer.from(JSON.stringify({ token: plain.token }), 'utf16le'), { 'content-type': 'application/json; charset=utf-16le' });
    expect(utf16.status).toBe(202);
    const cases: [string, Buffer, Record<string, string>, number][] = [
      ['gzip claimed, plain sent', json, { 'content-encoding': 'gzip' }, 400],
      ['deflate claimed, gzip sent', zlib.gzipSync(json), { 'content-encoding': 'deflate' }, 400],
      ['truncated gzip', zlib.gzipSync(json).subarray(0, 20), { 'content-encoding': 'gzip' }, 400],
      ['unknown encoding', json, { 'content-encoding': 'zstd-ish' }, 415],
      ['two encodings', zlib.gzipSync(zlib.gzipSync(json)), { 'content-encoding': 'gzip, gzip' }, 415],
      ['latin1 charset', json, { 'content-type': 'application/json; charset=latin1' }, 415],
      ['invalid utf-8', Buffer.from([0x7b, 0x22, 0x74, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), {}, 400],
    ];
    for (const [what, body, headers, status] of cases) {
      const r = await post(body, { 'content-type': 'application/json', ...headers });
      expect({ what, status: r.status }).toEqual({ what, status });
      expect(JSON.parse(r.body)).toEqual({ statusCode: status, code: expect.stringMatching(/^[A-Z_]+$/), message: expect.any(String) });
    }
  });

  it('sizes: just under the limit is read, just over is 413, and a gzip bomb is 413 without inflating it all', async () => {
    const limit = 1024 * 1024;
    const padded = (n: number) => {
      const head = `{"token":"${plain.token}","pad":"`;
      return Buffer.from(head + 'x'.repeat(n - head.length - 2) + '"}');
    };
    expect((await post(padded(limit), { 'content-type': 'application/json' })).status).toBe(202);
    expect((await post(padded(limit + 1), { 'content-type': 'application/json' })).status).toBe(413);
    // 256 MiB in about 250 KiB of gzip: the limit applies to what it inflates to, and it stops there.
    const bomb = zlib.gzipSync(Buffer.concat([Buffer.from(`{"token":"${plain.token}","pad":"`), Buffer.alloc(256 * 1024 * 1024, 0x30)]), { level: 9 });
    const rssBefore = rss();
    const r = await post(bomb, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect(r.status).toBe(413);
    expect(rss() - rssBefore).toBeLessThan(128);
    expect((await fetch(`${cp.url}/health`)).status).toBe(200);
  });

  it('headers: huge, many, duplicated or odd headers never get a 5xx', async () => {
    const body = Buffer.from(JSON.stringify({ token: signed.token }));
    const sig = hmacHex(SECRET, body);
    const cases: Record<string, string>[] = [
      { 'x-webhook-signature': 'a'.repeat(8000) },
      { 'x-webhook-signature': `${sig}`, 'x-forwarded-for': Array.from({ length: 200 }, (_, i) => `10.0.${i % 256}.1`).join(', ') },
      Object.fromEntries(Array.from({ length: 90 }, (_, i) => [`x-junk-${i}`, 'v'.repeat(50)])),
      { 'user-agent': '\u00ff'.repeat(200), 'x-webhook-signature': sig },
      { 'content-type': 'application/json; charset=utf-8; boundary=x; a=b', 'x-webhook-signature': sig },
    ];
    // Each gets an answer (a reset connection fails the test), and none is a 5xx.
    for (const [i, headers] of cases.entries()) {
      const r = await post(body, { 'content-type': 'application/json', ...headers });
      expect({ i, status: r.status < 500 ? 'below 500' : r.status }).toEqual({ i, status: 'below 500' });
    }
    // Over Node's header limit: an actual 431 from the HTTP server itself, and it keeps serving.
    const r = await post(body, { 'content-type': 'application/json', 'x-big': 'y'.repeat(40_000) });
    expect(r.status).toBe(431);
    expect((await post(body, { 'content-type': 'application/json', 'x-webhook-signature': sig })).status).toBe(202);
  });

  it('property: random encodings, charsets, bodies and sizes never get a 5xx', async () => {
    const token = fc.oneof(fc.constant(plain.token), fc.constant(signed.token), fc.string({ maxLength: 80 }), fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 }));
    const json = fc.oneof(
      token.map((t) => JSON.stringify({ token: t })),
      token.map((t) => JSON.stringify({ token: t })),
      fc.tuple(token, fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 })).map(([t, extra]) => JSON.stringify({ ...extra, token: t })),
      fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 200 }),
      fc.nat({ max: 200_000 }).map((n) => `{"token":"${plain.token}","pad":"${'p'.repeat(n)}"}`),
    );
    const bytes = fc.oneof(json.map((s) => Buffer.from(s)), fc.uint8Array({ maxLength: 4096 }).map((a) => Buffer.from(a)));
    const enc = fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-gzip', '');
    const claimed = fc.oneof(enc, fc.constantFrom('gzip, br', 'GZIP', 'compress', '\t'));
    // Weighted towards what a server reads, so the accepted and rejected paths get their share.
    const charset = fc.oneof(
      { arbitrary: fc.constantFrom('', '; charset=utf-8', '; charset=UTF-8'), weight: 4 },
      { arbitrary: fc.constantFrom('; charset=utf-16', '; charset=utf-32', '; charset=iso-8859-1', '; charset=bogus', '; charset='), weight: 1 },
    );
    const type = fc.oneof(
      { arbitrary: fc.constant('application/json'), weight: 4 },
      { arbitrary: fc.constantFrom('text/plain', 'application/octet-stream', 'application/vnd.x+json', '*/*'), weight: 1 },
    );
    const statuses: Record<number, number> = {};
    await fc.assert(
      // Mostly honest about the encoding (else nearly everything is a 400 for a lie).
      fc.asyncProperty(bytes, enc, claimed, fc.integer({ min: 0, max: 9 }), type, charset, fc.boolean(), async (b, actual, lie, honesty, t, cs, sign) => {
        const payload = encode(actual, b);
        const said = honesty < 7 ? actual : lie;
        const headers: Record<string, string> = { 'content-type': `${t}${cs}` };
        if (said) headers['content-encoding'] = said;
        if (sign) headers['x-webhook-signature'] = hmacHex(SECRET, b);
        const r = await post(payload, headers);
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        if (r.status >= 500) return false;
        if (r.status === 202) return typeof JSON.parse(r.body).executionId === 'string';
        const e = JSON.parse(r.body) as { statusCode: number; code: string };
        return e.statusCode === r.status && /^[A-Z_]+$/.test(e.code);
      }),
      { numRuns: 400 },
    );
    expect(cp.proc.running).toBe(true);
    expect(cp.proc.logs).not.toContain('unexpected error');
    recordFigure('trigger-fuzz', { runs: 400, statuses });
  }, 120_000);
});

/** The control plane's resident memory, MiB. */
function rss(): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${cp.proc.child.pid}/status`, 'utf8'))![1]) / 1024;
}

describe('timing', () => {
  /**
   * Not a speed check: whether unknown tokens and tokens of paused or deleted webhooks can be told
   * apart by their answer time. Calls are interleaved in random order (so drift and noise hit
   * every kind alike) on one kept-alive connection; the medians are compared against a bound
   * relative to the spread. A real difference shows in every attempt; noise rarely in three.
   */
  it('an unknown token, a paused webhook’s and a deleted webhook’s take the same time', async () => {
    const paused = await createWebhook(owner, scriptId, { serverId });
    expect((await owner.patch(`/api/v1/webhooks/${paused.id}`, { active: false })).status).toBe(200);
    const deleted = await createWebhook(owner, scriptId, { serverId });
    expect((await owner.delete(`/api/v1/webhooks/${deleted.id}`)).status).toBe(204);
    const kinds = {
      unknown: () => randomBytes(32).toString('hex'),
      paused: () => paused.token,
      deleted: () => deleted.token,
    };
    const call = async (t: string) => {
      const r = await post(Buffer.from(JSON.stringify({ token: t })), { 'content-type': 'application/json' });
      expect(r.status).toBe(404);
      return r.ms;
    };
    for (let i = 0; i < 60; i++) await call(kinds.unknown()); // warm up
    const attempts: { medians: Record<string, number>; iqr: number; bound: number; worst: number }[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const samples: Record<string, number[]> = { unknown: [], paused: [], deleted: [] };
      for (let round = 0; round < 250; round++) {
        for (const kind of shuffle(Object.keys(kinds) as (keyof typeof kinds)[])) samples[kind]!.push(await call(kinds[kind]()));
      }
      const medians = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, quantile(v, 0.5)]));
      const iqr = quantile(samples.unknown!, 0.75) - quantile(samples.unknown!, 0.25);
      // A difference worth a timing attack would be a database round trip or more (~0.3 ms here);
      // the bound is half the spread, and never below 0.25 ms.
      const bound = Math.max(0.25, iqr / 2);
      const worst = Math.max(Math.abs(medians.paused! - medians.unknown!), Math.abs(medians.deleted! - medians.unknown!));
      attempts.push({ medians, iqr, bound, worst });
      if (worst < bound) break;
    }
    recordFigure('trigger-timing', { samplesPerKindPerAttempt: 250, attempts });
    const last = attempts[attempts.length - 1]!;
    expect({ worst: last.worst, below: last.worst < last.bound, attempts }).toMatchObject({ below: true });
  }, 120_000);
});

function shuffle<T>(a: T[]): T[] {
  const b = [...a];
  for (let i = b.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [b[i], b[j]] = [b[j]!, b[i]!];
  }
  return b;
}

function quantile(values: number[], q: number): number {
  const s = [...values].sort((x, y) => x - y);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (pos - lo);
}
