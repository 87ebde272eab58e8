import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { DASHBOARD_IO_PATH, DASHBOARD_NAMESPACE, DashboardEvents, SUPPORTED_PROTOCOL_VERSIONS, VIEWER_TEXT_OUTPUT_MAX_BYTES } from '@app/protocol';
import WebSocket from 'ws';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { FakeAgent } from './support/fake-agent.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { sleep, waitFor } from './support/processes.js';
import { ViewerClient } from './support/viewer.js';

/**
 * The /dashboard feed against the real control plane and PostgreSQL, with viewers as socket.io
 * clients and an agent at the protocol level (so the test decides exactly when each chunk lands).
 */
let db: TestDatabase;
let cp: ControlPlane;
let owner: Api;
let serverId: string;
let scriptId: string;
let agent: FakeAgent;
const viewers: ViewerClient[] = [];

/** A viewer as the dashboard connects (this protocol version: output as base64 text), or with another handshake `auth`. */
async function viewer(apiKey = cp.adminKey, auth?: Record<string, unknown>): Promise<ViewerClient> {
  const v = await ViewerClient.connectWith(cp.url, { headers: { authorization: `Bearer ${apiKey}` }, auth });
  viewers.push(v);
  return v;
}

/** One WebSocket frame a raw viewer received: its text, or its bytes when it was a binary frame. */
type Frame = { binary: false; text: string } | { binary: true; bytes: Buffer };

/**
 * A viewer at the WebSocket level (engine.io and socket.io packets by hand), so the test sees
 * every frame: which are text, which binary, and what each holds.
 */
async function rawViewer(auth: Record<string, unknown>) {
  const ws = new WebSocket(`${cp.url.replace('http', 'ws')}${DASHBOARD_IO_PATH}?EIO=4&transport=websocket`, { headers: { authorization: `Bearer ${cp.adminKey}` } });
  const frames: Frame[] = [];
  ws.on('message', (data: Buffer, binary: boolean) => {
    if (binary) return void frames.push({ binary: true, bytes: Buffer.from(data) });
    const text = data.toString('utf8');
    if (text === '2') return ws.send('3'); // engine.io ping
    frames.push({ binary: false, text });
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  ws.send(`40${DASHBOARD_NAMESPACE},${JSON.stringify(auth)}`);
  const answer = await waitFor('connect answer', () => frames.find((f) => !f.binary && /^4[04]\/dashboard,/.test(f.text)));
  const packets = () => frames.filter((f) => !f.binary).map((f) => (f as { text: string }).text);
  return { ws, frames, packets, answer: (answer as { text: string }).text };
}

const OUTPUT_TEXT = `42${DASHBOARD_NAMESPACE},["${DashboardEvents.output}",`;
const OUTPUT_BINARY = `451-${DASHBOARD_NAMESPACE},["${DashboardEvents.output}",`;

/** A manual run, accepted by the fake agent. */
async function startExecution(api = owner, script = scriptId, server = serverId, by = agent): Promise<string> {
  const r = await api.post(`/api/v1/scripts/${script}/executions`, { serverId: server });
  expect(r.status).toBe(202);
  const id = r.body.executionId as string;
  await by.waitStarted(id);
  return id;
}

/** `count` chunks of distinct content: seq n is `line n ...\n`, stderr for every 7th. */
const chunk = (n: number, size = 32) => ({
  stream: n % 7 === 3 ? ('stderr' as const) : ('stdout' as const),
  data: Buffer.concat([Buffer.from(`line ${n} `), randomBytes(size)]),
});

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url });
  owner = new Api(cp.url, cp.adminKey);
  const server = await owner.post('/api/v1/servers', { name: 'feed-server' });
  expect(server.status).toBe(201);
  serverId = server.body.id;
  const script = await owner.post('/api/v1/scripts', { name: 'feed-script', content: 'echo hi' });
  expect(script.status).toBe(201);
  scriptId = script.body.id;
  agent = await FakeAgent.connect(cp.url, server.body.agentToken);
  await waitFor('server online', async () => (await owner.get(`/api/v1/servers/${serverId}`)).body.status === 'online');
});

afterAll(async () => {
  for (const v of viewers) v.close();
  agent?.close();
  await cp?.stop();
  await db?.drop();
});

describe('handshake', () => {
  it('refuses a bad, missing or malformed API key at connect', async () => {
    for (const key of ['not-a-key', '', undefined, 42, 'x'.repeat(600)]) {
      // Refused on the upgrade request, before any packet: the client sees a transport error.
      await expect(ViewerClient.connect(cp.url, key)).rejects.toThrow('websocket error');
    }
  });

  it('accepts a key of the workspace, viewer role included', async () => {
    const key = await owner.post('/api/v1/api-keys', { name: 'watcher', role: 'viewer' });
    expect(key.status).toBe(201);
    const v = await viewer(key.body.key);
    expect(v.socket.connected).toBe(true);
  });
});

describe('protocol versions', () => {
  it('refuses a version it does not support with UNSUPPORTED_PROTOCOL_VERSION and the supported ones', async () => {
    for (const protocolVersion of [99, 0, 'four', 4.5]) {
      const refused = await ViewerClient.connectWith(cp.url, { headers: { authorization: `Bearer ${cp.adminKey}` }, auth: { protocolVersion } }).catch(
        (err: Error & { data?: unknown }) => ({ message: err.message, data: err.data }),
      );
      expect(refused).toEqual({
        message: `unsupported protocol version ${JSON.stringify(protocolVersion)}; supported: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')}`,
        data: { code: 'UNSUPPORTED_PROTOCOL_VERSION', supportedVersions: [...SUPPORTED_PROTOCOL_VERSIONS] },
      });
    }
  });

  it('version 4: every output message (backlog and live) is one text frame of base64; no version or 3: a header and a binary frame each', async () => {
    const id = await startExecution();
    const sent = Array.from({ length: 8 }, (_, i) => chunk(i, 64 + i));
    await agent.output(id, sent.slice(0, 3)); // stored before anyone subscribes: the backlog
    const text = await rawViewer({ protocolVersion: 4 });
    const none = await rawViewer({});
    const three = await rawViewer({ protocolVersion: 3 });
    const raws = [text, none, three];
    try {
      for (const v of raws) {
        expect(v.answer).toMatch(/^40\/dashboard,\{"sid":/);
        v.ws.send(`42${DASHBOARD_NAMESPACE},0${JSON.stringify([DashboardEvents.subscribe, { executionId: id, afterSeq: -1 }])}`);
        await waitFor('subscribe ack', () => v.packets().find((p) => p === `43${DASHBOARD_NAMESPACE},0[{"ok":true}]`));
      }
      await waitFor('the backlog', () => raws.every((v) => v.packets().filter((p) => p.startsWith(OUTPUT_TEXT) || p.startsWith(OUTPUT_BINARY)).length >= 3));
      for (const c of sent.slice(3)) await agent.output(id, [c]); // live, one broadcast each
      await agent.finish(id, 0);
      const ended = (p: string) => p.includes(`"${DashboardEvents.status}"`) && p.includes('"succeeded"');
      await waitFor('the end', () => raws.every((v) => v.packets().some(ended)));

      // Version 4: one text frame per message, no binary frame, the bytes exact.
      const outputs = text.packets().filter((p) => p.includes(`"${DashboardEvents.output}"`));
      expect(outputs.every((p) => p.startsWith(OUTPUT_TEXT))).toBe(true);
      expect(text.frames.some((f) => f.binary)).toBe(false);
      const events = outputs.map((p) => (JSON.parse(p.slice(`42${DASHBOARD_NAMESPACE},`.length)) as [string, { seq: number; stream: string; data: string }])[1]);
      expect(events.map((e) => e.seq)).toEqual(sent.map((_, i) => i));
      expect(events.map((e) => e.stream)).toEqual(sent.map((c) => c.stream));
      expect(events.map((e) => Buffer.from(e.data, 'base64'))).toEqual(sent.map((c) => c.data));

      // No version or an earlier one: as before, a header packet, then its bytes in a frame of their own.
      for (const v of [none, three]) {
        const headers = v.frames.flatMap((f, i) => (!f.binary && f.text.startsWith(OUTPUT_BINARY) ? [i] : []));
        expect(headers).toHaveLength(sent.length);
        expect(headers.map((i) => v.frames[i + 1])).toEqual(sent.map((c) => ({ binary: true, bytes: c.data })));
        expect(v.packets().some((p) => p.startsWith(OUTPUT_TEXT))).toBe(false);
      }
    } finally {
      for (const v of raws) v.ws.terminate();
    }
  });
});

describe('protocol 4 and large chunks', () => {
  it('a chunk over VIEWER_TEXT_OUTPUT_MAX_BYTES stays binary (backlog and live), the small ones are text; the bytes exact', async () => {
    const id = await startExecution();
    const big = (seq: number) => ({ seq, stream: 'stdout' as const, data: randomBytes(VIEWER_TEXT_OUTPUT_MAX_BYTES + 1) });
    const small = (seq: number) => ({ seq, stream: 'stdout' as const, data: Buffer.from(`line ${seq}\n`) });
    const sent = [small(0), big(1), small(2), big(3)];
    await agent.output(id, sent.slice(0, 2)); // the backlog
    const v = await rawViewer({ protocolVersion: 4 });
    try {
      v.ws.send(`42${DASHBOARD_NAMESPACE},0${JSON.stringify([DashboardEvents.subscribe, { executionId: id, afterSeq: -1 }])}`);
      await waitFor('subscribe ack', () => v.packets().find((p) => p === `43${DASHBOARD_NAMESPACE},0[{"ok":true}]`));
      for (const c of sent.slice(2)) await agent.output(id, [c]);
      // Each message with its bytes: a binary one's frame follows its header, and may not be here yet.
      const collect = (): Map<number, Buffer> => {
        const got = new Map<number, Buffer>();
        v.frames.forEach((f, i) => {
          if (f.binary) return;
          if (f.text.startsWith(OUTPUT_TEXT)) {
            const e = (JSON.parse(f.text.slice(`42${DASHBOARD_NAMESPACE},`.length)) as [string, { seq: number; data: string }])[1];
            got.set(e.seq, Buffer.from(e.data, 'base64'));
          } else if (f.text.startsWith(OUTPUT_BINARY) && v.frames[i + 1]?.binary) {
            const e = (JSON.parse(f.text.slice(f.text.indexOf('['))) as [string, { seq: number }])[1];
            got.set(e.seq, (v.frames[i + 1] as { bytes: Buffer }).bytes);
          }
        });
        return got;
      };
      const got = await waitFor('every chunk with its bytes', () => {
        const g = collect();
        return g.size === sent.length ? g : undefined;
      });
      expect([...got.keys()].sort()).toEqual([0, 1, 2, 3]);
      for (const c of sent) expect(got.get(c.seq)).toEqual(c.data);
      const binaryHeaders = v.packets().filter((p) => p.startsWith(OUTPUT_BINARY)).length;
      expect(binaryHeaders).toBe(2);
    } finally {
      v.ws.terminate();
    }
  });
});

describe('execution.subscribe', () => {
  it('refuses a malformed request with INVALID_PAYLOAD and an unknown execution with NOT_FOUND', async () => {
    const v = await viewer();
    const bad = await v.subscribe('not-a-uuid');
    expect(bad).toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD' } });
    const missing = await v.subscribe(randomUUID());
    expect(missing).toEqual({ ok: false, error: { code: 'NOT_FOUND', message: 'Execution not found' } });
  });

  it('sends the backlog, then live chunks: each seq exactly once and in order, even while chunks land during the subscribe', async () => {
    const id = await startExecution();
    const expected: Buffer[] = [];
    const send = async (from: number, count: number) => {
      const batch = Array.from({ length: count }, (_, i) => chunk(from + i));
      expected.push(...batch.map((c) => c.data));
      await agent.output(id, batch);
    };
    // A backlog of several pages (the feed reads 64 rows per page) before anyone watches.
    for (let i = 0; i < 200; i += 40) await send(i, 40);

    // The agent keeps writing small batches while viewers subscribe at staggered moments, some
    // from the start and some after a seq they already hold.
    let written = 200;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await send(written, 3);
        written += 3;
      }
    })();
    const late: { v: ViewerClient; afterSeq: number }[] = [];
    for (let i = 0; i < 12; i++) {
      const v = await viewer();
      const afterSeq = i % 3 === 2 ? 57 + i : -1;
      expect(await v.subscribe(id, afterSeq)).toEqual({ ok: true });
      late.push({ v, afterSeq });
      await sleep(15);
    }
    await sleep(100);
    writing = false;
    await writer;
    await send(written, 5);
    written += 5;
    await agent.finish(id, 0);

    const all = Buffer.concat(expected);
    for (const { v, afterSeq } of late) {
      const status = await v.waitTerminal(id);
      expect(status).toMatchObject({ executionId: id, status: 'succeeded', exitCode: 0 });
      const want = Array.from({ length: written - afterSeq - 1 }, (_, i) => afterSeq + 1 + i);
      expect(v.seqs(id)).toEqual(want);
      expect(v.bytes(id).equals(Buffer.concat(expected.slice(afterSeq + 1)))).toBe(true);
      // The terminal status came after the last chunk, and once.
      const names = v.events.filter((e) => (e.payload as { executionId?: string }).executionId === id).map((e) => e.event);
      expect(names.lastIndexOf(DashboardEvents.output)).toBeLessThan(names.lastIndexOf(DashboardEvents.status));
      expect(v.statuses.get(id)!.filter((s) => s.status === 'succeeded')).toHaveLength(1);
    }
    // What the viewers got is what was stored.
    const stored = await fetch(`${cp.url}/api/v1/executions/${id}/output`, { headers: { authorization: `Bearer ${cp.adminKey}` } });
    expect(Buffer.from(await stored.arrayBuffer()).equals(all)).toBe(true);
  });

  it('a finished execution: the whole backlog, in order, to a viewer that subscribes afterwards', async () => {
    const id = await startExecution();
    const sent = Array.from({ length: 150 }, (_, i) => chunk(i, 100));
    await agent.output(id, sent.slice(0, 100));
    await agent.output(id, sent.slice(100));
    await agent.finish(id, 3);
    await waitFor('failed', async () => (await owner.get(`/api/v1/executions/${id}`)).body.status === 'failed');
    const v = await viewer();
    expect(await v.subscribe(id)).toEqual({ ok: true });
    await waitFor('150 chunks', () => v.seqs(id).length >= 150);
    await sleep(200);
    expect(v.seqs(id)).toEqual(sent.map((_, i) => i));
    expect(v.bytes(id).equals(Buffer.concat(sent.map((c) => c.data)))).toBe(true);
    expect(v.output.get(id)!.map((e) => e.stream)).toEqual(sent.map((c) => c.stream));
  });
});

describe('workspaces', () => {
  it('a viewer of workspace B gets nothing of workspace A: subscribe refused as NOT_FOUND, no created, status or server events', async () => {
    const ws = await owner.post('/api/v1/workspaces', { name: 'other team' });
    expect(ws.status).toBe(201);
    const b = await viewer(ws.body.apiKey);
    const a = await viewer();

    // Activity in A: a server comes online, an execution is created, writes and finishes.
    const server = await owner.post('/api/v1/servers', { name: 'a-second-server' });
    const agent2 = await FakeAgent.connect(cp.url, server.body.agentToken);
    const id = await startExecution(owner, scriptId, server.body.id, agent2);
    const refused = await b.subscribe(id);
    expect(refused).toEqual({ ok: false, error: { code: 'NOT_FOUND', message: 'Execution not found' } });
    expect(refused).toEqual(await b.subscribe(randomUUID()));
    await agent2.output(id, [chunk(0), chunk(1)]);
    await agent2.finish(id, 0);
    agent2.close();

    // A sees all of it, so the events were sent; B saw none of them.
    await waitFor('A sees the server go offline', () =>
      a.events.some((e) => e.event === DashboardEvents.serverStatus && (e.payload as { status: string }).status === 'offline'),
    );
    await a.waitTerminal(id);
    const aNames = new Set(a.events.map((e) => e.event));
    for (const name of [DashboardEvents.created, DashboardEvents.status, DashboardEvents.serverStatus]) expect(aNames.has(name)).toBe(true);
    expect(a.events.find((e) => e.event === DashboardEvents.created)?.payload).toMatchObject({
      executionId: id,
      scriptId,
      serverId: server.body.id,
      trigger: 'manual',
      // Created already dispatched: this node holds the server's agent.
      status: 'dispatched',
    });
    expect(b.events).toEqual([]);
  });
});

describe('fan-out', () => {
  it('200 viewers on one execution all receive the full output, byte for byte', async () => {
    const id = await startExecution();
    const sent = Array.from({ length: 120 }, (_, i) => chunk(i, 2000));
    // Half watch from the start, half join while it writes; in each half, one viewer in four
    // names no protocol version (binary output), so every broadcast goes out in both forms.
    const auth = (i: number) => (i % 4 === 0 ? {} : undefined);
    const first = await Promise.all(Array.from({ length: 100 }, (_, i) => viewer(cp.adminKey, auth(i))));
    await Promise.all(first.map(async (v) => expect(await v.subscribe(id)).toEqual({ ok: true })));
    for (let i = 0; i < 60; i += 20) await agent.output(id, sent.slice(i, i + 20));
    const second = await Promise.all(Array.from({ length: 100 }, (_, i) => viewer(cp.adminKey, auth(i))));
    const subscribing = second.map(async (v) => expect(await v.subscribe(id)).toEqual({ ok: true }));
    for (let i = 60; i < 120; i += 20) await agent.output(id, sent.slice(i, i + 20));
    await Promise.all(subscribing);
    await agent.finish(id, 0);

    const want = Buffer.concat(sent.map((c) => c.data));
    const seqs = sent.map((_, i) => i);
    for (const [i, v] of [...first, ...second].entries()) {
      await v.waitTerminal(id);
      const data = v.events.find((e) => e.event === DashboardEvents.output)?.payload as { data: unknown };
      expect(typeof data.data === 'string').toBe(auth(i % 100) === undefined);
      expect(v.seqs(id)).toEqual(seqs);
      expect(v.bytes(id).equals(want)).toBe(true);
    }
  });
});

describe('limits', () => {
  it('a subscribe flood is refused with RATE_LIMITED, and the connection stays usable', async () => {
    const v = await viewer();
    const replies = await Promise.all(Array.from({ length: 40 }, () => v.subscribe(randomUUID())));
    const codes = replies.map((r) => (r.ok ? 'ok' : r.error.code));
    expect(codes).toContain('RATE_LIMITED');
    expect(codes).toContain('NOT_FOUND');
    expect(v.socket.connected).toBe(true);
  });

  it('a viewer that stops reading is told to resubscribe; the agent and another viewer are not held up', async () => {
    const id = await startExecution();
    const fast = await viewer();
    const slow = await viewer();
    expect(await fast.subscribe(id)).toEqual({ ok: true });
    expect(await slow.subscribe(id)).toEqual({ ok: true });
    await sleep(100);
    // Stop reading the slow viewer's TCP socket: the control plane's writes to it back up.
    const tcp = (slow.socket.io.engine.transport as unknown as { ws: { _socket: { pause(): void; resume(): void } } }).ws._socket;
    tcp.pause();

    // 48 MiB in 256 KiB chunks, 16 per batch: every batch is acked (stored) while the slow viewer reads nothing.
    const big = (n: number) => ({ stream: 'stdout' as const, data: Buffer.alloc(256 * 1024, 97 + (n % 26)) });
    const chunks = Array.from({ length: 192 }, (_, i) => big(i));
    for (let i = 0; i < chunks.length; i += 16) await agent.output(id, chunks.slice(i, i + 16));
    await agent.finish(id, 0);
    await fast.waitTerminal(id);
    expect(fast.seqs(id)).toEqual(chunks.map((_, i) => i));

    tcp.resume();
    await waitFor('resubscribe', () => slow.events.find((e) => e.event === DashboardEvents.resubscribe), 30_000);
    const resub = slow.events.find((e) => e.event === DashboardEvents.resubscribe)!.payload as { executionId: string; reason: string };
    expect(resub.executionId).toBe(id);
    expect(resub.reason).toMatch(/behind/);
    // It resumes from what it holds and ends up with every byte, once.
    const held = slow.lastContiguous(id);
    expect(held).toBeLessThan(chunks.length - 1);
    expect(await slow.subscribe(id, held)).toEqual({ ok: true });
    await waitFor('the rest', () => slow.seqs(id).length >= chunks.length, 30_000);
    await sleep(100);
    expect(slow.seqs(id)).toEqual(chunks.map((_, i) => i));
    expect(slow.bytes(id).equals(Buffer.concat(chunks.map((c) => c.data)))).toBe(true);
  });
});
