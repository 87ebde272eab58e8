import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { Api } from './support/http.js';
import { waitFor } from './support/processes.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

let db: TestDatabase;
let cp: ControlPlane;
let admin: Api; // owner of workspace A, instance admin
let viewer: Api; // viewer of workspace A
let other: Api; // owner of workspace B
let anon: Api;

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url });
  admin = new Api(cp.url, cp.adminKey);
  anon = new Api(cp.url);
  const v = await admin.post('/api/v1/api-keys', { name: 'reader', role: 'viewer' });
  expect(v.status).toBe(201);
  viewer = admin.as(v.body.key);
  const ws = await admin.post('/api/v1/workspaces', { name: 'team-b' });
  expect(ws.status).toBe(201);
  other = admin.as(ws.body.apiKey);
});

afterAll(async () => {
  await cp?.stop();
  await db?.drop();
});

const expectError = (r: { status: number; body: any }, status: number, code: string) => {
  expect({ status: r.status, code: r.body?.code }).toEqual({ status, code });
  expect(typeof r.body.message).toBe('string');
  expect(r.body.statusCode).toBe(status);
};

describe('authentication and roles', () => {
  it('refuses a missing key and a wrong key with 401 UNAUTHORIZED', async () => {
    expectError(await anon.get('/api/v1/me'), 401, 'UNAUTHORIZED');
    expectError(await anon.as('dp_not-a-real-key').get('/api/v1/servers'), 401, 'UNAUTHORIZED');
    expectError(await anon.request('GET', '/api/v1/scripts', undefined, { authorization: 'Basic abc' }), 401, 'UNAUTHORIZED');
  });

  it('tells each key its own workspace and role', async () => {
    const a = await admin.get('/api/v1/me');
    const v = await viewer.get('/api/v1/me');
    const b = await other.get('/api/v1/me');
    expect(v.body).toMatchObject({ role: 'viewer', isAdmin: false, workspace: { id: a.body.workspace.id } });
    expect(b.body).toMatchObject({ role: 'owner', isAdmin: false, workspace: { name: 'team-b' } });
    expect(b.body.workspace.id).not.toBe(a.body.workspace.id);
  });

  it('lets only the instance admin create workspaces', async () => {
    expectError(await other.post('/api/v1/workspaces', { name: 'c' }), 403, 'FORBIDDEN');
    expectError(await viewer.post('/api/v1/workspaces', { name: 'c' }), 403, 'FORBIDDEN');
    expectError(await admin.post('/api/v1/workspaces', {}), 400, 'VALIDATION_ERROR');
  });

  it('manages API keys: list without secrets, get, delete; a deleted key stops working', async () => {
    const created = await admin.post('/api/v1/api-keys', { name: 'temp', role: 'owner' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'temp', role: 'owner' });
    expect(created.body.key).toMatch(/^dp_[A-Za-z0-9_-]{43}$/);
    const temp = admin.as(created.body.key);
    expect((await temp.get('/api/v1/me')).status).toBe(200);

    const list = await admin.get('/api/v1/api-keys');
    expect(list.status).toBe(200);
    expect(list.body.items.map((k: any) => k.name)).toEqual(expect.arrayContaining(['admin', 'reader', 'temp']));
    expect(JSON.stringify(list.body)).not.toContain(created.body.key);
    expect((await other.get('/api/v1/api-keys')).body.items.map((k: any) => k.name)).not.toContain('temp');

    expect((await admin.get(`/api/v1/api-keys/${created.body.id}`)).body.prefix).toBe(created.body.key.slice(0, 8));
    expectError(await other.get(`/api/v1/api-keys/${created.body.id}`), 404, 'NOT_FOUND');
    expectError(await other.delete(`/api/v1/api-keys/${created.body.id}`), 404, 'NOT_FOUND');
    expectError(await viewer.delete(`/api/v1/api-keys/${created.body.id}`), 403, 'FORBIDDEN');
    expectError(await temp.delete(`/api/v1/api-keys/${created.body.id}`), 409, 'CONFLICT');
    expect((await admin.delete(`/api/v1/api-keys/${created.body.id}`)).status).toBe(204);
    expectError(await temp.get('/api/v1/me'), 401, 'UNAUTHORIZED');
  });

  it('refuses bad API key input', async () => {
    expectError(await admin.post('/api/v1/api-keys', { name: 'x', role: 'root' }), 400, 'VALIDATION_ERROR');
    expectError(await admin.post('/api/v1/api-keys', { name: 'x', role: 'viewer', extra: 1 }), 400, 'VALIDATION_ERROR');
    expectError(await viewer.post('/api/v1/api-keys', { name: 'x', role: 'viewer' }), 403, 'FORBIDDEN');
    const adminKeyId = (await admin.get('/api/v1/me')).body.keyId;
    const second = await admin.post('/api/v1/api-keys', { name: 'second owner', role: 'owner' });
    expectError(await admin.as(second.body.key).delete(`/api/v1/api-keys/${adminKeyId}`), 409, 'CONFLICT');
  });
});

describe('servers', () => {
  it('creates a server with a token shown once, lists, gets, renames, rotates and deletes it', async () => {
    const c = await admin.post('/api/v1/servers', { name: 'web-1' });
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({ name: 'web-1', status: 'offline' });
    expect(c.body.agentToken).toMatch(/^dpa_/);
    expect(c.body.installCommand).toContain(c.body.agentToken);
    const id = c.body.id;

    const got = await admin.get(`/api/v1/servers/${id}`);
    expect(got.body).toMatchObject({ id, name: 'web-1', status: 'offline', lastSeenAt: null });
    expect(got.body.agentToken).toBeUndefined();
    expect(JSON.stringify(got.body)).not.toContain(c.body.agentToken);
    expect((await viewer.get(`/api/v1/servers/${id}`)).status).toBe(200);
    expect((await admin.get('/api/v1/servers')).body.items.map((s: any) => s.id)).toContain(id);

    const renamed = await admin.patch(`/api/v1/servers/${id}`, { name: 'web-01' });
    expect(renamed.status).toBe(200);
    expect(renamed.body.name).toBe('web-01');

    const rotated = await admin.post(`/api/v1/servers/${id}/agent-token`);
    expect(rotated.status).toBe(201);
    expect(rotated.body.agentToken).toMatch(/^dpa_/);
    expect(rotated.body.agentToken).not.toBe(c.body.agentToken);
    const hashes = await db.query<{ agent_token_hash: Buffer }>('SELECT agent_token_hash FROM server WHERE id = $1', [id]);
    expect(hashes[0]!.agent_token_hash.toString('utf8')).not.toContain('dpa_');

    expect((await admin.delete(`/api/v1/servers/${id}`)).status).toBe(204);
    expectError(await admin.get(`/api/v1/servers/${id}`), 404, 'NOT_FOUND');
  });

  it('keeps servers inside their workspace and refuses viewers and bad input', async () => {
    const { body: s } = await admin.post('/api/v1/servers', { name: 'db-1' });
    expectError(await other.get(`/api/v1/servers/${s.id}`), 404, 'NOT_FOUND');
    expectError(await other.patch(`/api/v1/servers/${s.id}`, { name: 'stolen' }), 404, 'NOT_FOUND');
    expectError(await other.delete(`/api/v1/servers/${s.id}`), 404, 'NOT_FOUND');
    expectError(await other.post(`/api/v1/servers/${s.id}/agent-token`), 404, 'NOT_FOUND');
    expect((await other.get('/api/v1/servers')).body.items).toEqual([]);

    expectError(await viewer.post('/api/v1/servers', { name: 'v' }), 403, 'FORBIDDEN');
    expectError(await viewer.patch(`/api/v1/servers/${s.id}`, { name: 'v' }), 403, 'FORBIDDEN');
    expectError(await viewer.delete(`/api/v1/servers/${s.id}`), 403, 'FORBIDDEN');
    expectError(await viewer.post(`/api/v1/servers/${s.id}/agent-token`), 403, 'FORBIDDEN');
    expectError(await anon.post('/api/v1/servers', { name: 'v' }), 401, 'UNAUTHORIZED');

    expectError(await admin.post('/api/v1/servers', {}), 400, 'VALIDATION_ERROR');
    expectError(await admin.post('/api/v1/servers', { name: 42 }), 400, 'VALIDATION_ERROR');
    expectError(await admin.post('/api/v1/servers', { name: '' }), 400, 'VALIDATION_ERROR');
    expectError(await admin.post('/api/v1/servers', { name: 'x'.repeat(101) }), 400, 'VALIDATION_ERROR');
    expectError(await admin.post('/api/v1/servers', { name: 'a\u0000b' }), 400, 'VALIDATION_ERROR');
    expectError(await admin.post('/api/v1/servers', { name: 'ok', admin: true }), 400, 'VALIDATION_ERROR');
    expectError(await admin.post('/api/v1/servers', '{"name": '), 400, 'VALIDATION_ERROR');
    expectError(await admin.post('/api/v1/servers', { name: 'db-1' }), 409, 'CONFLICT');
    expectError(await admin.get('/api/v1/servers/not-a-uuid'), 400, 'VALIDATION_ERROR');
    expectError(await admin.get("/api/v1/servers/1'%20OR%201=1--"), 400, 'VALIDATION_ERROR');
    expectError(await admin.get('/api/v1/servers?limit=0'), 400, 'VALIDATION_ERROR');
    expectError(await admin.get('/api/v1/servers?cursor=garbage'), 400, 'VALIDATION_ERROR');
  });

  it('pages through servers with a cursor, newest first', async () => {
    const { body: ws } = await admin.post('/api/v1/workspaces', { name: 'paging' });
    const owner = admin.as(ws.apiKey);
    for (let i = 0; i < 5; i++) expect((await owner.post('/api/v1/servers', { name: `s${i}` })).status).toBe(201);
    const p1 = await owner.get('/api/v1/servers?limit=2');
    const p2 = await owner.get(`/api/v1/servers?limit=2&cursor=${p1.body.nextCursor}`);
    const p3 = await owner.get(`/api/v1/servers?limit=2&cursor=${p2.body.nextCursor}`);
    const names = [...p1.body.items, ...p2.body.items, ...p3.body.items].map((s: any) => s.name);
    expect(names).toEqual(['s4', 's3', 's2', 's1', 's0']);
    expect(p3.body.nextCursor).toBeNull();
  });

  it('pages through rows created within the same millisecond without skipping any', async () => {
    const { body: ws } = await admin.post('/api/v1/workspaces', { name: 'same-ms' });
    const owner = admin.as(ws.apiKey);
    const me = await owner.get('/api/v1/me');
    // One statement: every row gets the same now(), so microseconds cannot order them.
    await db.query(
      `INSERT INTO script (workspace_id, name) SELECT $1, 'bulk-' || g FROM generate_series(1, 7) g`,
      [me.body.workspace.id],
    );
    const seen: string[] = [];
    let cursor = '';
    for (let page = 0; page < 10; page++) {
      const r = await owner.get(`/api/v1/scripts?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...r.body.items.map((s: any) => s.name));
      if (!r.body.nextCursor) break;
      cursor = r.body.nextCursor;
    }
    expect(seen.sort()).toEqual(['bulk-1', 'bulk-2', 'bulk-3', 'bulk-4', 'bulk-5', 'bulk-6', 'bulk-7']);
  });
});

describe('scripts and versions', () => {
  it('creates version 1 with defaults, and each content change makes the next version', async () => {
    const c = await admin.post('/api/v1/scripts', { name: 'deploy', content: 'echo one\n' });
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({ name: 'deploy', version: 1, interpreter: 'bash', timeoutSeconds: 300, maxOutputBytes: 67108864, content: 'echo one\n' });
    const id = c.body.id;

    const u1 = await admin.patch(`/api/v1/scripts/${id}`, { content: 'echo two\n', description: 'ships it' });
    expect(u1.body).toMatchObject({ version: 2, content: 'echo two\n', description: 'ships it' });
    const same = await admin.patch(`/api/v1/scripts/${id}`, { content: 'echo two\n', timeoutSeconds: 60 });
    expect(same.body).toMatchObject({ version: 2, timeoutSeconds: 60 });
    const u2 = await admin.patch(`/api/v1/scripts/${id}`, { content: 'print(3)\n', interpreter: 'python3' });
    expect(u2.body).toMatchObject({ version: 3, interpreter: 'python3' });

    const versions = await viewer.get(`/api/v1/scripts/${id}/versions`);
    expect(versions.status).toBe(200);
    expect(versions.body.items.map((v: any) => v.version)).toEqual([3, 2, 1]);
    const v1 = await viewer.get(`/api/v1/scripts/${id}/versions/1`);
    expect(v1.body).toMatchObject({ version: 1, content: 'echo one\n' });
    expectError(await admin.get(`/api/v1/scripts/${id}/versions/9`), 404, 'NOT_FOUND');
    expectError(await admin.get(`/api/v1/scripts/${id}/versions/abc`), 400, 'VALIDATION_ERROR');
    expect((await admin.get(`/api/v1/scripts/${id}`)).body).toMatchObject({ version: 3, content: 'print(3)\n' });
    expect((await admin.get('/api/v1/scripts')).body.items.map((s: any) => s.id)).toContain(id);
  });

  it('keeps concurrent edits as distinct consecutive versions', async () => {
    const { body: s } = await admin.post('/api/v1/scripts', { name: 'race', content: '0' });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => admin.patch(`/api/v1/scripts/${s.id}`, { content: `v${i}` })));
    expect(results.every((r) => r.status === 200)).toBe(true);
    const versions = (await admin.get(`/api/v1/scripts/${s.id}/versions`)).body.items.map((v: any) => v.version);
    expect(versions).toEqual([11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
  });

  it('refuses bad script input with VALIDATION_ERROR and writes nothing', async () => {
    const before = await db.query('SELECT count(*)::int AS n FROM script');
    const bad = [
      {},
      { name: 'x' },
      { name: 'x', content: 5 },
      { name: 'x', content: 'a', interpreter: 'perl' },
      { name: 'x', content: 'a', timeoutSeconds: 0 },
      { name: 'x', content: 'a', timeoutSeconds: 3601 },
      { name: 'x', content: 'a', timeoutSeconds: '60' },
      { name: 'x', content: 'a', maxOutputBytes: -1 },
      { name: 'x', content: 'a', maxOutputBytes: 1.5 },
      { name: 'x', content: 'a', currentVersion: 7 },
      { name: 'x', content: 'a'.repeat(1024 * 1024 + 1) },
      [],
    ];
    for (const body of bad) {
      const r = await admin.post('/api/v1/scripts', body);
      expect([r.status, r.body.code, JSON.stringify(body).slice(0, 60)]).toEqual([r.status === 413 ? 413 : 400, r.status === 413 ? 'PAYLOAD_TOO_LARGE' : 'VALIDATION_ERROR', JSON.stringify(body).slice(0, 60)]);
    }
    expect(await db.query('SELECT count(*)::int AS n FROM script')).toEqual(before);
  });

  it('keeps scripts inside their workspace and refuses viewers', async () => {
    const { body: s } = await admin.post('/api/v1/scripts', { name: 'private', content: 'echo secret' });
    expectError(await other.get(`/api/v1/scripts/${s.id}`), 404, 'NOT_FOUND');
    expectError(await other.get(`/api/v1/scripts/${s.id}/versions`), 404, 'NOT_FOUND');
    expectError(await other.get(`/api/v1/scripts/${s.id}/versions/1`), 404, 'NOT_FOUND');
    expectError(await other.patch(`/api/v1/scripts/${s.id}`, { content: 'rm -rf /' }), 404, 'NOT_FOUND');
    expectError(await other.delete(`/api/v1/scripts/${s.id}`), 404, 'NOT_FOUND');
    expect((await other.get('/api/v1/scripts')).body.items.map((x: any) => x.id)).not.toContain(s.id);
    expectError(await viewer.post('/api/v1/scripts', { name: 'v', content: 'x' }), 403, 'FORBIDDEN');
    expectError(await viewer.patch(`/api/v1/scripts/${s.id}`, { content: 'x' }), 403, 'FORBIDDEN');
    expectError(await viewer.delete(`/api/v1/scripts/${s.id}`), 403, 'FORBIDDEN');
    expect((await admin.get(`/api/v1/scripts/${s.id}`)).body.content).toBe('echo secret');
    expect((await admin.delete(`/api/v1/scripts/${s.id}`)).status).toBe(204);
    expectError(await admin.get(`/api/v1/scripts/${s.id}`), 404, 'NOT_FOUND');
  });
});

describe('the API surface', () => {
  it('publishes an OpenAPI document generated from the DTOs, and its page', async () => {
    const doc = await anon.get('/api/docs/openapi.json');
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/api/v1/servers', '/api/v1/scripts/{id}/versions']));
    expect(doc.body.components.schemas.CreateScriptDto.properties.interpreter.enum).toEqual(['bash', 'sh', 'python3', 'node']);
    // The committed document (built without a database, the dashboard's types come from it) is the one served.
    expect(doc.body).toEqual(JSON.parse(await readFile('docs/openapi.json', 'utf8')));
    const page = await fetch(`${cp.url}/api/docs`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('swagger');
  });

  it('answers unknown API routes with a JSON 404 and carries a request id', async () => {
    const r = await admin.get('/api/v1/nope');
    expectError(r, 404, 'NOT_FOUND');
    expect(r.headers.get('x-request-id')).toMatch(/.+/);
    const mine = await admin.request('GET', '/api/v1/me', undefined, { 'x-request-id': 'trace-me-123' });
    expect(mine.headers.get('x-request-id')).toBe('trace-me-123');
    await waitFor('the request id in the log', () => cp.proc.logs.includes('trace-me-123'));
  });

  it('never writes an API key into its logs', async () => {
    expect(cp.proc.logs).not.toContain(cp.adminKey);
  });
});
