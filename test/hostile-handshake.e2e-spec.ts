// Nothing heavy before authentication (issue 13, finding 2). Anonymous callers send what an
// attacker would: socket.io packets of nested arrays without any credential, a deeply nested JSON
// body over HTTP. Connections without a valid credential are refused on the upgrade request,
// before any packet is read; nesting past the limit is refused before JSON.parse; the dashboard's
// engine takes only small messages; browsers connect with one-time tickets from allowed origins.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AgentEvents, DASHBOARD_IO_PATH, MAX_VIEWER_MESSAGE_BYTES } from '@app/protocol';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createServer } from './support/executions.js';
import { recordFigure } from './support/figures.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { ProtocolAgent } from './support/protocol-agent.js';
import { upgradeRefusal } from './support/upgrade.js';
import { ViewerClient } from './support/viewer.js';
import { createWebhook, serverAndScript, triggerWith } from './support/webhook-fixtures.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
let other: { api: Api; hookToken: string };

const rssMiB = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${cp.proc.child.pid}/status`, 'utf8'))![1]) / 1024;
const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** A socket.io event packet of arrays nested `depth` deep, about `bytes` long (what the attacker sent). */
function nestedPacket(nsp: string, bytes: number): string {
  const depth = Math.floor(bytes / 2);
  return `42${nsp},["x",${'['.repeat(depth)}${']'.repeat(depth)}]`;
}

/**
 * Opens a raw WebSocket on an engine path without credentials and, if it opens, sends the nested
 * packet. Resolves 'refused' when the upgrade was refused (nothing was read), 'sent' otherwise.
 */
function anonymousFlood(path: string, nsp: string, bytes: number): Promise<'refused' | 'sent'> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${cp.url.replace('http', 'ws')}${path}?EIO=4&transport=websocket`, { maxPayload: 16 * 1024 * 1024 });
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      ws.terminate();
      resolve('refused');
    });
    ws.on('error', () => resolve('refused'));
    ws.on('open', () => {
      ws.send(`40${nsp},`);
      ws.send(nestedPacket(nsp, bytes), () => setTimeout(() => ws.terminate(), 200));
      ws.on('close', () => resolve('sent'));
    });
  });
}

/** Every probe answers: /health/live, and another workspace's trigger. */
async function probe(): Promise<{ live: number; trigger: number }> {
  const live = (await fetch(`${cp.url}/health/live`)).status;
  const trigger = (await triggerWith(cp.url, other.hookToken)).status;
  return { live, trigger };
}

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_ALLOWED_ORIGINS: 'https://ops.example.com' } });
  api = new Api(cp.url, cp.adminKey);
  const ws = await api.post('/api/v1/workspaces', { name: 'bystander' });
  expect(ws.status).toBe(201);
  const otherApi = new Api(cp.url, ws.body.apiKey);
  const { serverId, scriptId } = await serverAndScript(otherApi, 'bystander');
  const hook = await createWebhook(otherApi, scriptId, { serverId });
  other = { api: otherApi, hookToken: hook.token };
}, 120_000);

afterAll(async () => {
  if (process.env.SHOW_CP_LOGS) process.stdout.write(cp?.proc.logs.slice(-30000) ?? '');
  await cp?.stop();
  await db?.drop();
});

describe('anonymous callers', () => {
  it('nested-array packets without credentials are refused before they are read; every probe answers', async () => {
    const FLOODS = 16;
    const BYTES = 7.6 * 1024 * 1024;
    const outcomes: string[] = [];
    const probes: { live: number; trigger: number }[] = [];
    const rssBefore = rssMiB();
    // Two at a time, alternately at the viewers' and the agents' engine, as the attacker did.
    for (let i = 0; i < FLOODS; i += 2) {
      const pair = [anonymousFlood(DASHBOARD_IO_PATH, '/dashboard', BYTES), anonymousFlood('/socket.io/', '/agent', BYTES)];
      probes.push(await probe());
      outcomes.push(...(await Promise.all(pair)));
    }
    probes.push(await probe());
    expect(outcomes).toEqual(Array.from({ length: FLOODS }, () => 'refused'));
    expect(probes.every((p) => p.live === 200 && p.trigger === 202)).toBe(true);
    expect(cp.proc.running).toBe(true);
    recordFigure('hostile-handshake-anonymous-flood', { connections: FLOODS, packetMiB: 7.6, refusedAtUpgrade: outcomes.length, probes: probes.length, rssBeforeMiB: Math.round(rssBefore), rssAfterMiB: Math.round(rssMiB()) });
  }, 120_000);

  it('the upgrade refusal says what is missing', async () => {
    const agents = await upgradeRefusal(cp.url, '/socket.io/', {});
    expect(agents.status).toBe(400);
    expect(agents.body).toContain('Authorization: Bearer <agent token>');
    const viewers = await upgradeRefusal(cp.url, DASHBOARD_IO_PATH, {});
    expect(viewers).toEqual({ status: 400, body: expect.stringContaining('POST /api/v1/feed-tickets') });
    // An API key is not an agent token, and the reverse.
    const server = await createServer(api, "cross");
    expect(await upgradeRefusal(cp.url, '/socket.io/', { authorization: `Bearer ${cp.adminKey}` })).toEqual({ status: 400, body: 'unauthorized' });
    expect(await upgradeRefusal(cp.url, DASHBOARD_IO_PATH, { authorization: `Bearer ${server.agentToken}` })).toEqual({ status: 400, body: 'unauthorized' });
  });

  it('a deeply nested JSON body is refused before it is parsed, on management routes and the trigger', async () => {
    const depth = 512 * 1024;
    const body = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    for (const path of ['/api/v1/scripts', '/api/v1/webhooks/script_execute']) {
      const r = await fetch(`${cp.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect([path, r.status, await r.json()]).toEqual([path, 400, { statusCode: 400, code: 'VALIDATION_ERROR', message: 'JSON body nested too deep' }]);
    }
    // Ordinary nesting still passes.
    const ok = await api.post('/api/v1/scripts', { name: 'nested-ok', content: 'echo ok' });
    expect(ok.status).toBe(201);
  });
});

describe('authenticated clients', () => {
  it('an agent sending a packet nested past the limit loses its connection; the control plane carries on', async () => {
    const server = await createServer(api, 'deep-agent');
    const agent = await ProtocolAgent.connect(cp.url, server.agentToken);
    let nested: unknown = [];
    for (let i = 0; i < 200; i++) nested = [nested];
    agent.socket.emit(AgentEvents.hello, { running: nested, finished: [] });
    await waitFor('the connection to be closed', () => !agent.connected);
    expect((await probe()).live).toBe(200);
  });

  it('a viewer message larger than the viewers’ engine takes closes that connection', async () => {
    const v = await ViewerClient.connect(cp.url, cp.adminKey);
    (v.socket as unknown as { emit(event: string, payload: unknown): void }).emit('execution.subscribe', { executionId: 'x'.repeat(MAX_VIEWER_MESSAGE_BYTES * 4) });
    await waitFor('the viewer to be disconnected', () => !v.socket.connected, 10_000);
  });
});

describe('feed tickets', () => {
  const ticket = async (as = api) => {
    const r = await as.post('/api/v1/feed-tickets');
    expect(r.status).toBe(201);
    return r.body as { ticket: string; expiresAt: string };
  };

  it('a ticket opens one connection, once; it is kept hashed and lives 30 to 60 seconds', async () => {
    const before = Date.now();
    const t = await ticket();
    const ttl = new Date(t.expiresAt).getTime() - before;
    expect(ttl).toBeGreaterThanOrEqual(30_000);
    expect(ttl).toBeLessThanOrEqual(61_000);
    expect(await db.query('SELECT 1 FROM feed_ticket WHERE ticket_hash = $1', [sha256(t.ticket)])).toHaveLength(1);
    expect(JSON.stringify(await db.query('SELECT * FROM feed_ticket'))).not.toContain(t.ticket);
    const v = await ViewerClient.connectWith(cp.url, { ticket: t.ticket });
    expect(v.socket.connected).toBe(true);
    v.close();
    await expect(ViewerClient.connectWith(cp.url, { ticket: t.ticket })).rejects.toThrow('websocket error');
    expect(await upgradeRefusal(cp.url, DASHBOARD_IO_PATH, {}, `&ticket=${t.ticket}`)).toEqual({ status: 400, body: 'unauthorized' });
  });

  it('an expired ticket, a forged one and one of a deleted key are refused', async () => {
    const expired = await ticket();
    await db.query(`UPDATE feed_ticket SET expires_at = now() - interval '1 second' WHERE ticket_hash = $1`, [sha256(expired.ticket)]);
    await expect(ViewerClient.connectWith(cp.url, { ticket: expired.ticket })).rejects.toThrow('websocket error');
    await expect(ViewerClient.connectWith(cp.url, { ticket: `dpt_${'A'.repeat(43)}` })).rejects.toThrow('websocket error');
    const key = await api.post('/api/v1/api-keys', { name: 'short-lived', role: 'viewer' });
    const viewerTicket = await ticket(api.as(key.body.key));
    expect((await api.delete(`/api/v1/api-keys/${key.body.id}`)).status).toBe(204);
    await expect(ViewerClient.connectWith(cp.url, { ticket: viewerTicket.ticket })).rejects.toThrow('websocket error');
  });

  it('a viewer key gets tickets too, and sees only its workspace', async () => {
    const key = await other.api.post('/api/v1/api-keys', { name: 'watcher', role: 'viewer' });
    const t = await ticket(other.api.as(key.body.key));
    const v = await ViewerClient.connectWith(cp.url, { ticket: t.ticket });
    expect(v.socket.connected).toBe(true);
    v.close();
    expect((await fetch(`${cp.url}/api/v1/feed-tickets`, { method: 'POST' })).status).toBe(401);
  });
});

describe('origin of browser pages', () => {
  it('a page of another origin is refused; the own host (here also the public URL), a configured origin and no Origin pass', async () => {
    const t = await api.post('/api/v1/feed-tickets');
    expect(await upgradeRefusal(cp.url, DASHBOARD_IO_PATH, { origin: 'https://evil.example' }, `&ticket=${t.body.ticket}`)).toEqual({
      status: 400,
      body: 'origin not allowed',
    });
    // Refused before the ticket was looked at: it still works from the right page.
    const own = await ViewerClient.connectWith(cp.url, { ticket: t.body.ticket, headers: { origin: cp.url } });
    expect(own.socket.connected).toBe(true);
    own.close();
    const configured = await ViewerClient.connectWith(cp.url, { headers: { origin: 'https://ops.example.com', authorization: `Bearer ${cp.adminKey}` } });
    configured.close();
    const noOrigin = await ViewerClient.connect(cp.url, cp.adminKey);
    noOrigin.close();
  });
});

describe('browser hardening', () => {
  it('the dashboard has a CSP without inline script, is never framed, not sniffed, sends no Referer; no source maps unless asked', async () => {
    const page = await fetch(`${cp.url}/`);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    // The built page loads its script from a file, never inline.
    const html = await page.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)![1]!;
    expect((await fetch(`${cp.url}${script}`)).status).toBe(200);
    expect((await fetch(`${cp.url}${script}.map`)).status).toBe(404);
    const api = await fetch(`${cp.url}/api/v1/me`);
    expect(api.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('/health tells anonymous callers only up or down; details with an API key', async () => {
    const anonymous = await fetch(`${cp.url}/health`);
    expect([anonymous.status, await anonymous.json()]).toEqual([200, { status: 'ok' }]);
    const detailed = await api.get('/health');
    expect(detailed.body.info.agents.status).toBe('up');
  });
});

describe('names (issue 13, finding 11)', () => {
  it('zero-width, bidi-override and control characters are refused in every name; names are stored NFC-normalised', async () => {
    const server = await api.post('/api/v1/servers', { name: 'srvA' });
    expect(server.status).toBe(201);
    const script = await api.post('/api/v1/scripts', { name: 'names-script', content: 'true' });
    for (const bad of ['srvA\u200b', '\u202eAvrs', 'srv\u2066A', 'srv\u00adA', 'srv\u0085A', '\ufeffsrvA']) {
      for (const [path, body] of [
        ['/api/v1/servers', { name: bad }],
        ['/api/v1/scripts', { name: bad, content: 'true' }],
        [`/api/v1/scripts/${script.body.id}/webhooks`, { name: bad, serverId: server.body.id }],
        ['/api/v1/api-keys', { name: bad, role: 'viewer' }],
        ['/api/v1/workspaces', { name: bad }],
      ] as const) {
        const r = await api.post(path, body);
        expect([path, JSON.stringify(bad), r.status, r.body.code]).toEqual([path, JSON.stringify(bad), 400, 'VALIDATION_ERROR']);
      }
    }
    expect((await api.patch(`/api/v1/servers/${server.body.id}`, { name: 'srvA\u200b' })).status).toBe(400);
    const decomposed = await api.post('/api/v1/servers', { name: 'caf\u0065\u0301' });
    expect(decomposed.status).toBe(201);
    expect(decomposed.body.name).toBe('caf\u00e9');
    // Ordinary names in any script still pass.
    expect((await api.post('/api/v1/servers', { name: 'сервер-東京 ✓' })).status).toBe(201);
  });
});
