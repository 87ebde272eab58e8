// A malicious viewer on /dashboard: other workspaces' ids, odd payloads, floods of connections
// (bad keys and good ones) and of subscriptions. Refused, bounded; the control plane keeps
// serving triggers and other viewers meanwhile.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { DASHBOARD_IO_PATH, DASHBOARD_NAMESPACE, DashboardEvents } from '@app/protocol';
import { randomBytes, randomUUID } from 'node:crypto';
import { io } from 'socket.io-client';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, run } from './support/executions.js';
import { FakeAgent } from './support/fake-agent.js';
import { recordFigure } from './support/figures.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { ViewerClient } from './support/viewer.js';
import { createWebhook, triggerWith } from './support/webhook-fixtures.js';

const PER_KEY = 25;

let db: TestDatabase;
let cp: ControlPlane;
let owner: Api;
let outsiderKey: string;
let agent: FakeAgent;
let serverId: string;
let scriptId: string;
let hookToken: string;
const viewers: ViewerClient[] = [];
const tried: Record<string, number> = {};
const count = (what: string, n = 1) => (tried[what] = (tried[what] ?? 0) + n);

async function viewer(key: string) {
  const v = await ViewerClient.connect(cp.url, key);
  viewers.push(v);
  return v;
}

/** Why a connection attempt ended: 'connected' or the connect_error message. */
function attempt(auth: unknown): Promise<{ outcome: string; close: () => void }> {
  const apiKey = (auth as { apiKey?: unknown }).apiKey;
  const socket = io(`${cp.url}${DASHBOARD_NAMESPACE}`, {
    path: DASHBOARD_IO_PATH,
    extraHeaders: typeof apiKey === 'string' ? { authorization: `Bearer ${apiKey}` } : {},
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    timeout: 60_000,
  });
  return new Promise((resolve) => {
    socket.once('connect', () => resolve({ outcome: 'connected', close: () => socket.close() }));
    socket.once('connect_error', (err) => {
      socket.close();
      // A credential refused on the upgrade (before any packet) ends the WebSocket with HTTP 400: the client only sees a transport error.
      resolve({ outcome: err.message === 'websocket error' ? 'refused at upgrade' : err.message, close: () => undefined });
    });
  });
}

/** Triggers and /health answer as usual. */
async function servesOthers() {
  expect((await fetch(`${cp.url}/health`)).status).toBe(200);
  const r = await triggerWith(cp.url, hookToken);
  expect(r.status).toBe(202);
  await agent.waitStarted(r.body.executionId);
}

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_VIEWER_CONNECTIONS_PER_KEY: String(PER_KEY) } });
  owner = new Api(cp.url, cp.adminKey);
  outsiderKey = (await owner.post('/api/v1/workspaces', { name: 'outsiders' })).body.apiKey;
  const server = await createServer(owner, 'viewed');
  serverId = server.id;
  agent = await FakeAgent.connect(cp.url, server.agentToken);
  scriptId = (await createScript(owner, 'echo watched')).id;
  hookToken = (await createWebhook(owner, scriptId, { serverId })).token;
});

afterEach(() => {
  for (const v of viewers.splice(0)) v.close();
});

afterAll(async () => {
  recordFigure('hostile-viewer', { tried });
  agent?.close();
  await cp?.stop();
  await db?.drop();
});

describe('ids and payloads', () => {
  it('another workspace’s executions, forged ids and odd payloads are refused; its own still works', async () => {
    const { executionId } = await run(owner, scriptId, serverId);
    await agent.waitStarted(executionId);
    await agent.output(executionId, [{ data: 'secret output\n' }]);
    const v = await viewer(outsiderKey);
    expect(await v.subscribe(executionId)).toEqual({ ok: false, error: { code: 'NOT_FOUND', message: 'Execution not found' } });
    expect(await v.subscribe(executionId, -1)).toMatchObject({ ok: false });
    count('other workspace’s execution', 2);
    for (const bad of [randomUUID(), 'not-a-uuid', '', "' OR 1=1 --", 'x'.repeat(10_000), 42, null, { id: executionId }, [executionId]]) {
      const r = await v.subscribe(bad);
      expect(r.ok).toBe(false);
      count('forged or malformed id');
    }
    for (const afterSeq of [-2, 1.5, 2 ** 53, Number.NaN, '3']) {
      expect((await v.subscribe(randomUUID(), afterSeq as number)).ok).toBe(false);
      count('forged or malformed id');
    }
    // Raw junk on the socket: no answer needed, no crash, nothing leaks.
    const raw = v.socket as unknown as { emit(...args: unknown[]): void };
    raw.emit(DashboardEvents.subscribe);
    raw.emit('no.such.event', executionId);
    await agent.output(executionId, [{ data: 'more\n' }]);
    await new Promise((r) => setTimeout(r, 300));
    expect(v.output.get(executionId)).toBeUndefined();
    expect(v.events.filter((e) => JSON.stringify(e.payload).includes(executionId))).toEqual([]);
    expect(v.socket.connected).toBe(true);
    // The owner sees its own.
    const mine = await viewer(cp.adminKey);
    expect(await mine.subscribe(executionId)).toEqual({ ok: true });
    await waitFor('the backlog', () => mine.bytes(executionId).toString() === 'secret output\nmore\n');
  });
});

describe('floods', () => {
  it('a subscription flood is bounded: rate limited, and never more than 50 executions watched per connection', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 55; i++) ids.push((await run(owner, scriptId, serverId)).executionId);
    const v = await viewer(cp.adminKey);
    const replies = [];
    // Paced under the rate limit (a burst of 20, 5/s), so what answers is the watch limit.
    for (const [i, id] of ids.entries()) {
      replies.push(await v.subscribe(id));
      if (i >= 15) await new Promise((r) => setTimeout(r, 210));
    }
    count('subscriptions on one connection', ids.length);
    const codes = replies.map((r) => (r.ok ? 'ok' : r.error.code));
    expect(codes.slice(0, 50)).toEqual(Array(50).fill('ok'));
    expect(codes.slice(50)).toEqual(Array(5).fill('TOO_MANY_SUBSCRIPTIONS'));
    // Unsubscribing frees a place.
    expect(await v.socket.timeout(5000).emitWithAck(DashboardEvents.unsubscribe, { executionId: ids[0]! } as never)).toEqual({ ok: true });
    expect(await v.subscribe(ids[50]!)).toEqual({ ok: true });
    // A burst far over the rate is refused quickly, not queued.
    const burst = await Promise.all(Array.from({ length: 300 }, () => v.subscribe(randomUUID())));
    count('subscription burst', 300);
    expect(burst.filter((r) => !r.ok && r.error.code === 'RATE_LIMITED').length).toBeGreaterThan(250);
    expect(v.socket.connected).toBe(true);
    await servesOthers();
  }, 60_000);

  it(`a key holds at most ${PER_KEY} connections; others’ keys are not affected`, async () => {
    const tries = await Promise.all(Array.from({ length: PER_KEY + 15 }, () => attempt({ apiKey: cp.adminKey })));
    count('connections with one key', tries.length);
    const outcomes = tries.map((t) => t.outcome);
    expect(outcomes.filter((o) => o === 'connected')).toHaveLength(PER_KEY);
    expect(outcomes.filter((o) => o !== 'connected')).toEqual(Array(15).fill('too many connections for this API key'));
    // Another workspace's key still connects.
    const other = await attempt({ apiKey: outsiderKey });
    expect(other.outcome).toBe('connected');
    other.close();
    // Closing some frees their places.
    for (const t of tries.filter((x) => x.outcome === 'connected').slice(0, 3)) t.close();
    await waitFor('three places free again', async () => {
      const again = await Promise.all([1, 2, 3].map(() => attempt({ apiKey: cp.adminKey })));
      const ok = again.filter((a) => a.outcome === 'connected');
      for (const a of again) a.close();
      return ok.length === 3;
    });
    for (const t of tries) t.close();
    await servesOthers();
  });

  it('a flood of connections with bad keys is refused without starving triggers or the health check', async () => {
    const FLOOD = 1500;
    const floods: Promise<{ outcome: string }>[] = [];
    for (let i = 0; i < FLOOD; i++) floods.push(attempt({ apiKey: i % 3 ? randomBytes(24).toString('hex') : `dpk_${randomBytes(30).toString('base64url')}` }));
    // While it lands: triggers and health answer as usual.
    for (let i = 0; i < 5; i++) await servesOthers();
    const outcomes = (await Promise.all(floods)).map((f) => f.outcome);
    count('connections with bad keys', FLOOD);
    const kinds = [...new Set(outcomes)];
    expect(outcomes.includes('connected')).toBe(false);
    expect(kinds).toEqual(['refused at upgrade']);
    await servesOthers();
    recordFigure('hostile-viewer-handshake-flood', { flood: FLOOD, outcomes: Object.fromEntries(kinds.map((k) => [k, outcomes.filter((o) => o === k).length])) });
  }, 90_000);
});
