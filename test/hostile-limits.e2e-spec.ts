import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { recordFigure } from './support/figures.js';
import { Api, type ApiResponse } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

/**
 * Issue 13, finding 11 (caps): per-workspace limits on servers, scripts and webhooks, set small by
 * the environment, hold under concurrent creates; a refusal is 403 QUOTA_EXCEEDED naming the
 * limit and writes nothing; a delete frees a slot. Script versions come a page at a time.
 */
const LIMITS = { servers: 3, scripts: 4, webhooks: 3 };
const BURST = 20;

let db: TestDatabase;
let cp: ControlPlane;
let admin: Api;
let tenant: Api;
let neighbour: Api;
let tenantWorkspace: string;
const figures: Record<string, unknown> = {};

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({
    databaseUrl: db.url,
    env: {
      DEVPILOT_MAX_SERVERS_PER_WORKSPACE: String(LIMITS.servers),
      DEVPILOT_MAX_SCRIPTS_PER_WORKSPACE: String(LIMITS.scripts),
      DEVPILOT_MAX_WEBHOOKS_PER_WORKSPACE: String(LIMITS.webhooks),
    },
  });
  admin = new Api(cp.url, cp.adminKey);
  const a = await admin.post('/api/v1/workspaces', { name: 'tenant' });
  const b = await admin.post('/api/v1/workspaces', { name: 'neighbour' });
  tenant = admin.as(a.body.apiKey);
  neighbour = admin.as(b.body.apiKey);
  tenantWorkspace = a.body.id;
});

afterAll(async () => {
  recordFigure('hostile-limits', figures);
  await cp?.stop();
  await db?.drop();
});

const count = async (table: string, workspaceId: string) =>
  Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE workspace_id = $1`, [workspaceId]))[0]!.n);

/** Sends BURST creates at once and sorts the answers; every one must be a 201 or the quota refusal. */
async function burst(create: (i: number) => Promise<ApiResponse<any>>, setting: string, limit: number) {
  const answers = await Promise.all(Array.from({ length: BURST }, (_, i) => create(i)));
  const created = answers.filter((r) => r.status === 201);
  const refused = answers.filter((r) => r.status !== 201);
  for (const r of refused) {
    expect([r.status, r.body.code]).toEqual([403, 'QUOTA_EXCEEDED']);
    expect(r.body.message).toContain(setting);
    expect(r.body.message).toContain(String(limit));
  }
  return { created, refused };
}

describe('per-workspace limits', () => {
  it('servers: concurrent creates never pass the limit; refusals write nothing; a delete frees one slot', async () => {
    const { created, refused } = await burst((i) => tenant.post('/api/v1/servers', { name: `srv-${i}` }), 'DEVPILOT_MAX_SERVERS_PER_WORKSPACE', LIMITS.servers);
    expect(created.length).toBe(LIMITS.servers);
    expect(await count('server', tenantWorkspace)).toBe(LIMITS.servers);
    figures.servers = { limit: LIMITS.servers, concurrent: BURST, created: created.length, refused: refused.length };

    // Another workspace is not counted against this one.
    expect((await neighbour.post('/api/v1/servers', { name: 'srv-0' })).status).toBe(201);

    expect((await tenant.delete(`/api/v1/servers/${created[0]!.body.id}`)).status).toBe(204);
    const again = await Promise.all([0, 1, 2].map((i) => tenant.post('/api/v1/servers', { name: `after-delete-${i}` })));
    expect(again.map((r) => r.status).sort()).toEqual([201, 403, 403]);
    expect(await count('server', tenantWorkspace)).toBe(LIMITS.servers);
  });

  it('scripts: concurrent creates never pass the limit, and no version is left without its script', async () => {
    const { created, refused } = await burst(
      (i) => tenant.post('/api/v1/scripts', { name: `script-${i}`, content: 'echo hi' }),
      'DEVPILOT_MAX_SCRIPTS_PER_WORKSPACE',
      LIMITS.scripts,
    );
    expect(created.length).toBe(LIMITS.scripts);
    expect(await count('script', tenantWorkspace)).toBe(LIMITS.scripts);
    const versions = await db.query<{ n: string }>('SELECT count(*) AS n FROM script_version v JOIN script s ON s.id = v.script_id WHERE s.workspace_id = $1', [tenantWorkspace]);
    expect(Number(versions[0]!.n)).toBe(LIMITS.scripts);
    figures.scripts = { limit: LIMITS.scripts, concurrent: BURST, created: created.length, refused: refused.length };

    expect((await tenant.delete(`/api/v1/scripts/${created[0]!.body.id}`)).status).toBe(204);
    expect((await tenant.post('/api/v1/scripts', { name: 'after-delete', content: 'echo hi' })).status).toBe(201);
    expect((await tenant.post('/api/v1/scripts', { name: 'one-too-many', content: 'echo hi' })).status).toBe(403);
  });

  it('webhooks: counted over all the workspace\'s scripts, concurrent creates never pass the limit', async () => {
    const servers = (await tenant.get('/api/v1/servers')).body.items as { id: string }[];
    const scripts = (await tenant.get('/api/v1/scripts')).body.items as { id: string }[];
    const { created, refused } = await burst(
      (i) => tenant.post(`/api/v1/scripts/${scripts[i % 2]!.id}/webhooks`, { name: `hook-${i}`, serverId: servers[0]!.id }),
      'DEVPILOT_MAX_WEBHOOKS_PER_WORKSPACE',
      LIMITS.webhooks,
    );
    expect(created.length).toBe(LIMITS.webhooks);
    expect(await count('webhook', tenantWorkspace)).toBe(LIMITS.webhooks);
    figures.webhooks = { limit: LIMITS.webhooks, concurrent: BURST, created: created.length, refused: refused.length };

    expect((await tenant.delete(`/api/v1/webhooks/${created[0]!.body.id}`)).status).toBe(204);
    const hook = { name: 'after-delete', serverId: servers[0]!.id };
    expect((await tenant.post(`/api/v1/scripts/${scripts[0]!.id}/webhooks`, hook)).status).toBe(201);
    const over = await tenant.post(`/api/v1/scripts/${scripts[0]!.id}/webhooks`, { ...hook, name: 'one-too-many' });
    expect([over.status, over.body.code]).toEqual([403, 'QUOTA_EXCEEDED']);
  });
});

describe('script versions, a page at a time', () => {
  const VERSIONS = 120;
  let scriptId: string;

  beforeAll(async () => {
    scriptId = (await neighbour.post('/api/v1/scripts', { name: 'many-versions', content: 'echo 1' })).body.id;
    for (let v = 2; v <= VERSIONS; v++) {
      expect((await neighbour.patch(`/api/v1/scripts/${scriptId}`, { content: `echo ${v}` })).status).toBe(200);
    }
  });

  it('answers pages of the default size, newest first, until nextCursor is null, with every version once', async () => {
    const seen: number[] = [];
    const sizes: number[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
      const page: ApiResponse<any> = await neighbour.get(`/api/v1/scripts/${scriptId}/versions${query}`);
      expect(page.status).toBe(200);
      sizes.push(page.body.items.length);
      seen.push(...page.body.items.map((v: { version: number }) => v.version));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(sizes).toEqual([50, 50, 20]);
    expect(seen).toEqual(Array.from({ length: VERSIONS }, (_, i) => VERSIONS - i));
    figures.versions = { versions: VERSIONS, pageSizes: sizes };
  });

  it('takes limit like every list (1 to 200), and a cursor stays with its own script', async () => {
    const first = await neighbour.get(`/api/v1/scripts/${scriptId}/versions?limit=3`);
    expect(first.body.items.map((v: { version: number }) => v.version)).toEqual([120, 119, 118]);
    const next = await neighbour.get(`/api/v1/scripts/${scriptId}/versions?limit=3&cursor=${first.body.nextCursor}`);
    expect(next.body.items.map((v: { version: number }) => v.version)).toEqual([117, 116, 115]);
    expect((await neighbour.get(`/api/v1/scripts/${scriptId}/versions?limit=200`)).body.items).toHaveLength(120);
    for (const limit of ['0', '201', 'x', '1.5']) {
      const r = await neighbour.get(`/api/v1/scripts/${scriptId}/versions?limit=${limit}`);
      expect([limit, r.status, r.body.code]).toEqual([limit, 400, 'VALIDATION_ERROR']);
    }
    // Another workspace's script stays invisible, cursor or not.
    const other = await tenant.get(`/api/v1/scripts/${scriptId}/versions?cursor=${first.body.nextCursor}`);
    expect([other.status, other.body.code]).toEqual([404, 'NOT_FOUND']);
  });
});
