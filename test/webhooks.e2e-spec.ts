import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { createWebhook, serverAndScript } from './support/webhook-fixtures.js';

/** Webhook management: create, read, change, delete; who may do what; the ready-to-paste examples. */
let db: TestDatabase;
let cp: ControlPlane;
let owner: Api;
let viewer: Api;
let other: Api;
let serverId: string;
let scriptId: string;
let otherServerId: string;
let otherScriptId: string;

const run = promisify(execFile);
const SECRET = 'correct horse battery staple';

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url });
  owner = new Api(cp.url, cp.adminKey);
  ({ serverId, scriptId } = await serverAndScript(owner, 'mgmt'));
  const key = await owner.post('/api/v1/api-keys', { name: 'watcher', role: 'viewer' });
  viewer = owner.as(key.body.key);
  const ws = await owner.post('/api/v1/workspaces', { name: 'someone-else' });
  expect(ws.status).toBe(201);
  other = owner.as(ws.body.apiKey);
  ({ serverId: otherServerId, scriptId: otherScriptId } = await serverAndScript(other, 'theirs'));
});

afterAll(async () => {
  await cp?.stop();
  await db?.drop();
});

describe('create', () => {
  it('answers 201 with a 64-hex token, stored encrypted and looked up by its hash', async () => {
    const r = await owner.post(`/api/v1/scripts/${scriptId}/webhooks`, { name: 'deploy', serverId });
    expect(r.status).toBe(201);
    expect(r.body).toEqual({
      id: expect.any(String),
      name: 'deploy',
      scriptId,
      serverId,
      token: expect.stringMatching(/^[0-9a-f]{64}$/),
      active: true,
      allowedIps: [],
      hmacEnabled: false,
      signatureScheme: 'devpilot',
      concurrency: 'parallel',
      cooldownSeconds: 0,
      passPayload: false,
      callCount: 0,
      lastCalledAt: null,
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
      examples: { curl: expect.stringContaining(r.body.token), node: expect.stringContaining(r.body.token), python: expect.stringContaining(r.body.token) },
    });
    const [row] = await db.query('SELECT token_encrypted, token_hash FROM webhook WHERE id = $1', [r.body.id]);
    expect(Buffer.from(row.token_hash).equals(createHash('sha256').update(r.body.token).digest())).toBe(true);
    const sealed = Buffer.from(row.token_encrypted);
    expect(sealed.includes(Buffer.from(r.body.token))).toBe(false);
    expect(sealed.includes(Buffer.from(r.body.token, 'hex'))).toBe(false);
    const again = await createWebhook(owner, scriptId, { serverId });
    expect(again.token).not.toBe(r.body.token);
  });

  it('keeps the HMAC secret encrypted and never returns it', async () => {
    const w = await createWebhook(owner, scriptId, { serverId, hmacSecret: SECRET });
    expect(w.hmacEnabled).toBe(true);
    expect(w).not.toHaveProperty('hmacSecret');
    const [row] = await db.query('SELECT hmac_secret_encrypted FROM webhook WHERE id = $1', [w.id]);
    expect(Buffer.from(row.hmac_secret_encrypted).includes(Buffer.from(SECRET))).toBe(false);
    for (const path of [`/api/v1/webhooks/${w.id}`, `/api/v1/scripts/${scriptId}/webhooks`]) {
      expect(JSON.stringify((await owner.get(path)).body)).not.toContain(SECRET);
    }
  });

  it('validates and normalizes allowed IPs; a bad entry is named', async () => {
    const w = await createWebhook(owner, scriptId, {
      serverId,
      allowedIps: ['10.1.2.3/8', '2001:DB8:0:0::1', ' 192.168.0.1 ', '192.168.0.1', '::ffff:203.0.113.4', '2001:db8::77/32'],
    });
    expect(w.allowedIps).toEqual(['10.0.0.0/8', '2001:db8::1', '192.168.0.1', '203.0.113.4', '2001:db8::/32']);
    for (const bad of ['not-an-ip', '10.0.0.0/33', '::1/129', '10', '1.2.3', '10.0.0.1/', '300.1.1.1', 'fe80::1%eth0', '10.0.0.0/8/8', '']) {
      const r = await owner.post(`/api/v1/scripts/${scriptId}/webhooks`, { name: 'x', serverId, allowedIps: ['127.0.0.1', bad] });
      expect({ bad, status: r.status, code: r.body.code }).toEqual({ bad, status: 400, code: 'VALIDATION_ERROR' });
      expect(r.body.message).toContain(`"${bad}"`);
    }
    const notStrings = await owner.post(`/api/v1/scripts/${scriptId}/webhooks`, { name: 'x', serverId, allowedIps: [42] });
    expect(notStrings.status).toBe(400);
  });

  it('refuses bad bodies with 400', async () => {
    for (const body of [{ serverId }, { name: 'x' }, { name: 'x', serverId: 'nope' }, { name: 'x', serverId, hmacSecret: '' }, { name: 'x', serverId, token: 'a'.repeat(64) }]) {
      const r = await owner.post(`/api/v1/scripts/${scriptId}/webhooks`, body);
      expect({ body, status: r.status, code: r.body.code }).toEqual({ body, status: 400, code: 'VALIDATION_ERROR' });
    }
  });

  it('needs a script and a server of the same workspace (else 404, as if missing)', async () => {
    const missing = '00000000-0000-4000-8000-000000000000';
    for (const [sid, srv, what] of [
      [missing, serverId, 'Script'],
      [scriptId, missing, 'Server'],
      [otherScriptId, serverId, 'Script'],
      [scriptId, otherServerId, 'Server'],
    ]) {
      const r = await owner.post(`/api/v1/scripts/${sid}/webhooks`, { name: 'x', serverId: srv });
      expect(r.status).toBe(404);
      expect(r.body).toEqual({ statusCode: 404, code: 'NOT_FOUND', message: `${what} not found` });
    }
  });
});

describe('read', () => {
  it('lists a script’s webhooks newest first with their tokens, a page at a time', async () => {
    const { scriptId: sid } = await serverAndScript(owner, 'listing');
    const made = [];
    for (const name of ['a', 'b', 'c']) made.push(await createWebhook(owner, sid, { name, serverId }));
    const all = await owner.get(`/api/v1/scripts/${sid}/webhooks`);
    expect(all.status).toBe(200);
    expect(all.body.items.map((w: any) => [w.name, w.token])).toEqual(made.reverse().map((w) => [w.name, w.token]));
    expect(all.body.nextCursor).toBeNull();
    const p1 = await owner.get(`/api/v1/scripts/${sid}/webhooks?limit=2`);
    const p2 = await owner.get(`/api/v1/scripts/${sid}/webhooks?limit=2&cursor=${p1.body.nextCursor}`);
    expect([...p1.body.items, ...p2.body.items].map((w: any) => w.id)).toEqual(all.body.items.map((w: any) => w.id));
    const one = await owner.get(`/api/v1/webhooks/${made[0]!.id}`);
    expect(one.body.token).toBe(made[0]!.token);
  });

  it('a viewer reads webhooks and deliveries, without the token, and may not change anything', async () => {
    const w = await createWebhook(owner, scriptId, { serverId, name: 'viewed' });
    const got = await viewer.get(`/api/v1/webhooks/${w.id}`);
    expect(got.status).toBe(200);
    expect(got.body.token).toBeNull();
    expect(JSON.stringify(got.body)).not.toContain(w.token);
    expect(got.body.examples.curl).toContain('$WEBHOOK_TOKEN');
    expect((await viewer.get(`/api/v1/scripts/${scriptId}/webhooks`)).status).toBe(200);
    expect((await viewer.get(`/api/v1/webhooks/${w.id}/deliveries`)).status).toBe(200);
    const create = await viewer.post(`/api/v1/scripts/${scriptId}/webhooks`, { name: 'nope', serverId });
    expect(create.status).toBe(403);
    expect(create.body.code).toBe('FORBIDDEN');
    expect((await viewer.patch(`/api/v1/webhooks/${w.id}`, { active: false })).status).toBe(403);
    expect((await viewer.delete(`/api/v1/webhooks/${w.id}`)).status).toBe(403);
    expect((await owner.get(`/api/v1/webhooks/${w.id}`)).body.active).toBe(true);
  });

  it('another workspace’s webhook is 404 everywhere', async () => {
    const w = await createWebhook(owner, scriptId, { serverId });
    const notFound = { statusCode: 404, code: 'NOT_FOUND', message: 'Webhook not found' };
    for (const r of [
      await other.get(`/api/v1/webhooks/${w.id}`),
      await other.patch(`/api/v1/webhooks/${w.id}`, { active: false }),
      await other.delete(`/api/v1/webhooks/${w.id}`),
      await other.get(`/api/v1/webhooks/${w.id}/deliveries`),
    ]) {
      expect(r.status).toBe(404);
      expect(r.body).toEqual(notFound);
    }
    expect((await other.get(`/api/v1/scripts/${scriptId}/webhooks`)).status).toBe(404);
    expect((await other.post(`/api/v1/scripts/${scriptId}/webhooks`, { name: 'x', serverId: otherServerId })).status).toBe(404);
    expect((await owner.get(`/api/v1/webhooks/${w.id}`)).body.active).toBe(true);
  });

  it('ids are UUIDs', async () => {
    expect((await owner.get('/api/v1/webhooks/123')).status).toBe(400);
    expect((await owner.get('/api/v1/webhooks/00000000-0000-4000-8000-000000000000')).status).toBe(404);
  });
});

describe('change and delete', () => {
  it('PATCH naming token or hmacSecret is IMMUTABLE_FIELD, before any other check', async () => {
    const w = await createWebhook(owner, scriptId, { serverId, hmacSecret: SECRET });
    for (const body of [{ token: 'a'.repeat(64) }, { hmacSecret: 'new' }, { token: null }, { name: 'ok', hmacSecret: 'x', bogus: 1 }, { token: 'x', hmacSecret: 'y' }]) {
      const r = await owner.patch(`/api/v1/webhooks/${w.id}`, body);
      expect(r.status).toBe(400);
      expect(r.body.code).toBe('IMMUTABLE_FIELD');
      expect(r.body.message).toMatch(/create a new webhook to rotate/);
    }
    const after = await owner.get(`/api/v1/webhooks/${w.id}`);
    expect(after.body.token).toBe(w.token);
    expect(after.body.name).toBe(w.name);
  });

  it('changes name, active and allowed IPs; refuses anything else', async () => {
    const w = await createWebhook(owner, scriptId, { serverId });
    const r = await owner.patch(`/api/v1/webhooks/${w.id}`, { name: 'renamed', active: false, allowedIps: ['198.51.100.0/24'] });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: w.id, name: 'renamed', active: false, allowedIps: ['198.51.100.0/24'], token: w.token });
    expect((await owner.patch(`/api/v1/webhooks/${w.id}`, { allowedIps: [] })).body.allowedIps).toEqual([]);
    for (const body of [{ active: 'yes' }, { active: null }, { name: '' }, { allowedIps: ['nope'] }, { scriptId }, { callCount: 7 }]) {
      const bad = await owner.patch(`/api/v1/webhooks/${w.id}`, body);
      expect({ body, status: bad.status, code: bad.body.code }).toEqual({ body, status: 400, code: 'VALIDATION_ERROR' });
    }
    expect((await owner.get(`/api/v1/webhooks/${w.id}`)).body).toMatchObject({ name: 'renamed', active: false, allowedIps: [], callCount: 0 });
  });

  it('DELETE is 204, then 404', async () => {
    const w = await createWebhook(owner, scriptId, { serverId });
    expect((await owner.delete(`/api/v1/webhooks/${w.id}`)).status).toBe(204);
    expect((await owner.get(`/api/v1/webhooks/${w.id}`)).status).toBe(404);
    expect((await owner.delete(`/api/v1/webhooks/${w.id}`)).status).toBe(404);
  });
});

describe('the examples', () => {
  it('run as pasted: curl; with HMAC curl + openssl, Node and Python', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-examples-'));
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, WEBHOOK_SECRET: SECRET };
    const plain = await createWebhook(owner, scriptId, { serverId });
    expect(plain.examples.curl).toContain(`${cp.url}/api/v1/webhooks/script_execute`);
    const out1 = await run('bash', ['-c', plain.examples.curl], { env });
    expect(JSON.parse(out1.stdout).executionId).toEqual(expect.any(String));
    await writeFile(path.join(dir, 'plain.mjs'), plain.examples.node);
    expect((await run(process.execPath, [path.join(dir, 'plain.mjs')], { env })).stdout).toMatch(/^202 /);
    await writeFile(path.join(dir, 'plain.py'), plain.examples.python);
    expect((await run('python3', [path.join(dir, 'plain.py')], { env })).stdout).toMatch(/^202 /);

    const signed = await createWebhook(owner, scriptId, { serverId, hmacSecret: SECRET });
    expect(Object.keys(signed.examples).sort()).toEqual(['curl', 'node', 'python']);
    for (const snippet of Object.values(signed.examples) as string[]) expect(snippet).not.toContain(SECRET);
    const outs = [(await run('bash', ['-c', signed.examples.curl], { env })).stdout];
    await writeFile(path.join(dir, 'trigger.mjs'), signed.examples.node);
    outs.push((await run(process.execPath, [path.join(dir, 'trigger.mjs')], { env })).stdout);
    await writeFile(path.join(dir, 'trigger.py'), signed.examples.python);
    outs.push((await run('python3', [path.join(dir, 'trigger.py')], { env })).stdout);
    expect(outs[0]).toMatch(/"executionId"/);
    expect(outs[1]).toMatch(/^202 /);
    expect(outs[2]).toMatch(/^202 /);
    expect((await owner.get(`/api/v1/webhooks/${signed.id}`)).body.callCount).toBe(3);
    // Without the secret, the same snippet is refused.
    const unsigned = await run('bash', ['-c', signed.examples.curl], { env: { ...env, WEBHOOK_SECRET: 'wrong' } });
    expect(JSON.parse(unsigned.stdout).code).toBe('INVALID_SIGNATURE');
  });

  it.each(['github', 'gitlab', 'standard-webhooks', 'slack'])('%s: the three snippets sign as the sender does and run as pasted', async (scheme) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-examples-'));
    const given = scheme === 'slack' ? { hmacSecret: SECRET } : {};
    const w = await createWebhook(owner, scriptId, { serverId, signatureScheme: scheme, ...given });
    const secret = scheme === 'slack' ? SECRET : (w.hmacSecret as string);
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, WEBHOOK_SECRET: secret };
    expect(w.examples.curl).toContain(`/api/v1/webhooks/script_execute/${w.token}`);
    for (const snippet of Object.values(w.examples) as string[]) expect(snippet).not.toContain(secret);
    expect(JSON.parse((await run('bash', ['-c', w.examples.curl], { env })).stdout).executionId).toEqual(expect.any(String));
    await writeFile(path.join(dir, 'trigger.mjs'), w.examples.node);
    expect((await run(process.execPath, [path.join(dir, 'trigger.mjs')], { env })).stdout).toMatch(/^202 /);
    await writeFile(path.join(dir, 'trigger.py'), w.examples.python);
    expect((await run('python3', [path.join(dir, 'trigger.py')], { env })).stdout).toMatch(/^202 /);
    const refused = await run('bash', ['-c', w.examples.curl], { env: { ...env, WEBHOOK_SECRET: scheme === 'standard-webhooks' ? `whsec_${Buffer.alloc(32, 1).toString('base64')}` : 'wrong' } });
    expect(JSON.parse(refused.stdout).code).toBe('INVALID_SIGNATURE');
    expect((await owner.get(`/api/v1/webhooks/${w.id}`)).body.callCount).toBe(3);
  });
});
