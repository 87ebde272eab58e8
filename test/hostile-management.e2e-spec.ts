import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

/**
 * Hostile input on the management API: wrong types, huge strings, SQL metacharacters, unicode,
 * unknown fields, other workspaces' ids. Every answer is a 4xx with a code and nothing is written.
 */
let db: TestDatabase;
let cp: ControlPlane;
let owner: Api;
let intruder: Api;
let serverId: string;
let scriptId: string;

/** What a refused request must not change (api_key.last_used_at legitimately moves). */
const TABLES: Record<string, string> = {
  workspace: '*',
  api_key: 'id, name, role, key_hash, is_admin',
  server: '*',
  script: '*',
  script_version: '*',
  webhook: '*',
  execution: '*',
};
const snapshot = async () =>
  Object.fromEntries(
    await Promise.all(
      Object.entries(TABLES).map(async ([t, cols]) => [
        t,
        (await db.query(`SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) AS h FROM (SELECT ${cols} FROM ${t}) x`))[0]!.h,
      ]),
    ),
  );

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url });
  owner = new Api(cp.url, cp.adminKey);
  intruder = owner.as((await owner.post('/api/v1/workspaces', { name: 'intruders' })).body.apiKey);
  serverId = (await owner.post('/api/v1/servers', { name: 'target' })).body.id;
  scriptId = (await owner.post('/api/v1/scripts', { name: 'target', content: 'echo hi' })).body.id;
});

afterAll(async () => {
  await cp?.stop();
  await db?.drop();
});

const nasty = fc.oneof(
  fc.constantFrom(
    "'; DROP TABLE script; --",
    '" OR 1=1 --',
    '\u0000',
    '\u202e\u0301\ud83d\ude00',
    '../../etc/passwd',
    '${jndi:ldap://x}',
    '<script>alert(1)</script>',
    'x'.repeat(5000),
  ),
  fc.string({ unit: 'binary', maxLength: 300 }),
);
const wrongType = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);

/** A body the route must refuse: wrong types, bad names or an unknown field. */
function invalidBody(fields: Record<string, fc.Arbitrary<unknown>>) {
  const keys = Object.keys(fields);
  return fc.oneof(
    // one known field with a wrong type
    fc.record({ key: fc.constantFrom(...keys), value: wrongType }).map(({ key, value }) => ({ ...validOf(fields), [key]: value })),
    // a valid body plus a field nobody asked for
    fc.record({ extra: fc.string({ minLength: 1, maxLength: 20 }).filter((k) => !keys.includes(k) && k !== '__proto__'), value: nasty }).map(
      ({ extra, value }) => ({ ...validOf(fields), [extra]: value }),
    ),
  );
}
const validOf = (fields: Record<string, fc.Arbitrary<unknown>>) => Object.fromEntries(Object.keys(fields).map((k) => [k, VALID[k]]));
const VALID: Record<string, unknown> = { name: 'ok', content: 'echo ok', role: 'viewer' };

describe('hostile input on the management API', () => {
  it('refuses wrong types and unknown fields on every write route with 400 and writes nothing', async () => {
    const routes: { method: 'POST' | 'PATCH'; path: string; fields: Record<string, fc.Arbitrary<unknown>> }[] = [
      { method: 'POST', path: '/api/v1/servers', fields: { name: nasty } },
      { method: 'PATCH', path: `/api/v1/servers/${serverId}`, fields: { name: nasty } },
      { method: 'POST', path: '/api/v1/scripts', fields: { name: nasty, content: nasty } },
      { method: 'PATCH', path: `/api/v1/scripts/${scriptId}`, fields: { name: nasty } },
      { method: 'POST', path: '/api/v1/api-keys', fields: { name: nasty, role: nasty } },
      { method: 'POST', path: '/api/v1/workspaces', fields: { name: nasty } },
    ];
    const before = await snapshot();
    for (const route of routes) {
      await fc.assert(
        fc.asyncProperty(invalidBody(route.fields), async (body) => {
          const r = await owner.request<any>(route.method, route.path, body);
          expect([r.status, r.body?.code]).toEqual([400, 'VALIDATION_ERROR']);
        }),
        { numRuns: 40 },
      );
    }
    expect(await snapshot()).toEqual(before);
  });

  it('stores unicode and SQL metacharacters as plain text, byte for byte', async () => {
    await fc.assert(
      // Names refuse bidi overrides (hostile-handshake "names"); the content keeps one, byte for byte.
      fc.asyncProperty(fc.constantFrom("'; DROP TABLE script; --", 'Ünïcödé ✓ 🚀', 'ℌ𝔢𝔩𝔩𝔬', '%s%n'), async (name) => {
        const r = await owner.post('/api/v1/scripts', { name, content: `${name}\tand\u001bcontrol\u202eevil` });
        expect(r.status).toBe(201);
        const got = await owner.get(`/api/v1/scripts/${r.body.id}`);
        expect([got.body.name, got.body.content]).toEqual([name, `${name}\tand\u001bcontrol\u202eevil`]);
      }),
      { numRuns: 4 },
    );
    expect((await db.query('SELECT count(*)::int AS n FROM script'))[0]!.n).toBeGreaterThan(1);
  });

  it('answers ids that are not UUIDs with 400 and other workspaces ids with 404, on every route', async () => {
    const before = await snapshot();
    const paths = [
      (id: string) => ['GET', `/api/v1/servers/${id}`],
      (id: string) => ['PATCH', `/api/v1/servers/${id}`, { name: 'x' }],
      (id: string) => ['DELETE', `/api/v1/servers/${id}`],
      (id: string) => ['POST', `/api/v1/servers/${id}/agent-token`],
      (id: string) => ['GET', `/api/v1/scripts/${id}`],
      (id: string) => ['PATCH', `/api/v1/scripts/${id}`, { content: 'rm -rf /' }],
      (id: string) => ['DELETE', `/api/v1/scripts/${id}`],
      (id: string) => ['GET', `/api/v1/scripts/${id}/versions`],
      (id: string) => ['GET', `/api/v1/scripts/${id}/versions/1`],
    ] as const;
    const cases = [
      [serverId, 404, 'NOT_FOUND'],
      [scriptId, 404, 'NOT_FOUND'],
      ["1' OR '1'='1", 400, 'VALIDATION_ERROR'],
      ['\u0000', 400, 'VALIDATION_ERROR'],
    ] as const;
    for (const make of paths) {
      for (const [id, status, code] of cases) {
        const [method, path, body] = make(encodeURIComponent(id)) as unknown as readonly [string, string, unknown?];
        const r = await intruder.request<any>(method, path, body);
        expect([method, path, r.status, r.body?.code]).toEqual([method, path, status, code]);
      }
    }
    expect(await snapshot()).toEqual(before);
  });

  it('refuses NUL characters and nulls with a code instead of failing in the database', async () => {
    const before = await snapshot();
    for (const [method, path, body] of [
      ['POST', '/api/v1/scripts', { name: 'nul', content: 'echo a\u0000b' }],
      ['PATCH', `/api/v1/scripts/${scriptId}`, { description: '\u0000' }],
      ['PATCH', `/api/v1/scripts/${scriptId}`, { name: null }],
      ['PATCH', `/api/v1/scripts/${scriptId}`, { content: null }],
      ['PATCH', `/api/v1/servers/${serverId}`, { name: null }],
      ['POST', '/api/v1/api-keys', { name: 'k', role: null }],
    ] as const) {
      const r = await owner.request<any>(method, path, body);
      expect([path, JSON.stringify(body), r.status, r.body.code]).toEqual([path, JSON.stringify(body), 400, 'VALIDATION_ERROR']);
    }
    expect(await snapshot()).toEqual(before);
  });

  it('answers prototype names and out-of-range numbers in path parameters with 400 or 404, never 500, without a key', async () => {
    const anonymous = new Api(cp.url);
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
      const r = await anonymous.get(`/agent/${name}`);
      expect([name, r.status, r.body.code]).toEqual([name, 404, 'NOT_FOUND']);
    }
    for (const version of ['2147483648', '99999999999999999999', '0', '-1', '1.5', 'x']) {
      const r = await owner.get(`/api/v1/scripts/${scriptId}/versions/${version}`);
      expect([version, r.status, r.body.code]).toEqual([version, 400, 'VALIDATION_ERROR']);
    }
    expect((await owner.get(`/api/v1/scripts/${scriptId}/versions/2147483647`)).status).toBe(404);
  });

  it('answers hostile cursors with 400, never 500', async () => {
    const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const cursors = [
      enc(['2024-01-01T00:00:00.000Z', '0'.repeat(36)]),
      enc(['2024-01-01T00:00:00.000Z', '-'.repeat(36)]),
      enc(['-100000-01-01T00:00:00.000Z', '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11']),
      enc(['2024-13-45T99:99:99.000000Z', '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11']),
      enc(['2024-02-30T00:00:00.000000Z', '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11']),
      enc({ at: 1 }),
      enc([2147483648]),
      enc([0]),
      enc([1.5]),
      enc(['1']),
      'not base64 !',
    ];
    const lists = ['/api/v1/servers', '/api/v1/scripts', '/api/v1/executions', `/api/v1/scripts/${scriptId}/webhooks`, `/api/v1/scripts/${scriptId}/versions`];
    for (const path of lists) {
      for (const c of cursors) {
        const r = await owner.get<any>(`${path}?cursor=${encodeURIComponent(c)}`);
        expect([path, c, r.status, r.body.code]).toEqual([path, c, 400, 'VALIDATION_ERROR']);
      }
    }
  });

  it('refuses huge strings with a code, and bodies over the limit with 413', async () => {
    const r1 = await owner.post('/api/v1/servers', { name: 'n'.repeat(100_000) });
    expect([r1.status, r1.body.code]).toEqual([400, 'VALIDATION_ERROR']);
    const r2 = await owner.post('/api/v1/scripts', { name: 'big', content: 'x'.repeat(2 * 1024 * 1024) });
    expect([r2.status, r2.body.code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    const r3 = await owner.request('POST', '/api/v1/servers', '{"name":' + '['.repeat(5000) + ']'.repeat(5000) + '}');
    expect(r3.status).toBe(400);
    expect((await new Api(cp.url).get('/health')).status).toBe(200);
  });
});
