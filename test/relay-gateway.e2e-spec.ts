// The /agent gateway and the dispatcher against protocol-level fake agents (bare socket.io clients):
// handshake, presence, dispatch, output storage, reconciliation, and what a buggy agent cannot do.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { AGENT_NAMESPACE, AgentEvents, MAX_CHUNK_BYTES, MAX_MESSAGE_BYTES } from '@app/protocol';
import { io } from 'socket.io-client';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getExecution, getOutput, run, waitForStatus } from './support/executions.js';
import { ProtocolAgent } from './support/protocol-agent.js';
import { upgradeRefusal } from './support/upgrade.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { sleep, waitFor } from './support/processes.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
const agents: ProtocolAgent[] = [];

async function connect(token: string, opts?: Parameters<typeof ProtocolAgent.connect>[2]): Promise<ProtocolAgent> {
  const a = await ProtocolAgent.connect(cp.url, token, opts);
  agents.push(a);
  return a;
}

async function serverRow(id: string) {
  return (await api.get(`/api/v1/servers/${id}`)).body;
}

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({
    databaseUrl: db.url,
    env: { DEVPILOT_DELIVERY_DEADLINE_SECONDS: '4', DEVPILOT_SWEEP_INTERVAL_MS: '300', DEVPILOT_AGENT_ACK_TIMEOUT_MS: '1000' },
  });
  api = new Api(cp.url, cp.adminKey);
});

afterEach(() => {
  for (const a of agents.splice(0)) a.close();
});

afterAll(async () => {
  if (process.env.SHOW_CP_LOGS) process.stdout.write(cp?.proc.logs.slice(-30000) ?? '');
  await cp?.stop();
  await db?.drop();
});

describe('handshake and presence', () => {
  it('refuses a bad token, an unsupported protocol version (saying which are supported) and long-polling', async () => {
    const server = await createServer(api, 'hs-1');
    // A missing or bad token is refused on the upgrade request (HTTP 400), before any packet: the client sees a transport error.
    expect(await ProtocolAgent.refusal(cp.url, { token: 'dpa_wrong', protocolVersion: 1 })).toBe('websocket error');
    expect(await ProtocolAgent.refusal(cp.url, { protocolVersion: 1 })).toBe('websocket error');
    const noHeader = await upgradeRefusal(cp.url, '/socket.io/', {});
    expect(noHeader.status).toBe(400);
    expect(noHeader.body).toContain('Authorization: Bearer <agent token>');
    expect(noHeader.body).toContain('must be upgraded');
    expect(await upgradeRefusal(cp.url, '/socket.io/', { authorization: 'Bearer dpa_wrong' })).toEqual({ status: 400, body: 'unauthorized' });
    expect(await ProtocolAgent.refused(cp.url, { token: server.agentToken, protocolVersion: 99 })).toEqual({
      message: 'unsupported protocol version 99; supported: 1, 2, 3, 4',
      data: { code: 'UNSUPPORTED_PROTOCOL_VERSION', supportedVersions: [1, 2, 3, 4] },
    });
    // A protocol 1 or 2 token in `auth` must be the one on the upgrade.
    const other = await createServer(api, 'hs-1b');
    const mixed = io(`${cp.url}${AGENT_NAMESPACE}`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      extraHeaders: { authorization: `Bearer ${server.agentToken}` },
      auth: { token: other.agentToken, protocolVersion: 2 },
    });
    const mixedError = await new Promise<Error & { data?: unknown }>((resolve, reject) => {
      mixed.once('connect', () => reject(new Error('connected with two tokens')));
      mixed.once('connect_error', resolve);
    });
    mixed.close();
    expect(mixedError.data).toEqual({ code: 'UNAUTHORIZED' });
    expect(await ProtocolAgent.refusal(cp.url, { token: server.agentToken })).toContain('unsupported protocol version');
    // The server only speaks WebSocket: a polling client cannot even open a session.
    expect(await ProtocolAgent.refusal(cp.url, { token: server.agentToken, protocolVersion: 1 }, ['polling'])).toBeTruthy();
    expect((await serverRow(server.id)).status).toBe('offline');
  });

  it('marks the server online with the agent facts, offline when it leaves', async () => {
    const server = await createServer(api, 'hs-2');
    const a = await connect(server.agentToken);
    expect(a.helloReply).toEqual({ resend: [] });
    const online = await waitFor('online', async () => {
      const s = await serverRow(server.id);
      return s.status === 'online' ? s : undefined;
    });
    expect(online).toMatchObject({ hostname: 'fake-host', platform: 'linux-x64', agentVersion: 'fake-1.0' });
    expect(online.lastSeenAt).toBeTruthy();
    a.close();
    await waitFor('offline', async () => (await serverRow(server.id)).status === 'offline');
  });

  it('keeps one live connection per server: a newer one replaces the older, and the server stays online', async () => {
    const server = await createServer(api, 'hs-3');
    const first = await connect(server.agentToken);
    const second = await connect(server.agentToken);
    await waitFor('the older socket to be dropped', () => !first.connected);
    expect(first.disconnectReason).toBe('io server disconnect');
    expect(second.connected).toBe(true);
    // Once the control plane has handled the older socket's close, nothing is left that could mark it
    // offline; it must not have been offline in between either (viewers would have seen it).
    const settled = await waitFor('the older socket’s close handled', () =>
      cp.proc.logs.split('\n').find((line) => line.includes(server.id) && line.includes('server status settled')),
    );
    expect(JSON.parse(settled)).toMatchObject({ status: 'online', markedOffline: false });
    expect((await serverRow(server.id)).status).toBe('online');
    // Work goes to the newer one.
    const script = await createScript(api, 'echo hi');
    const { executionId } = await run(api, script.id, server.id);
    await second.waitForStart(executionId);
    expect(first.starts).toHaveLength(0);
  });

  it('drops the connection when the token is rotated, and the old token no longer connects', async () => {
    const server = await createServer(api, 'hs-4');
    const a = await connect(server.agentToken);
    expect((await api.post(`/api/v1/servers/${server.id}/agent-token`)).status).toBe(201);
    await waitFor('the connection to be dropped', () => !a.connected);
    expect(await ProtocolAgent.refusal(cp.url, { token: server.agentToken, protocolVersion: 1 })).toBe('websocket error');
  });

  it('reports the agents gateway in /health', async () => {
    const r = await new Api(cp.url, cp.adminKey).get('/health');
    expect(r.status).toBe(200);
    expect(r.body.info.agents.status).toBe('up');
    expect(r.body.info.database.status).toBe('up');
  });
});

describe('dispatch', () => {
  it('sends the recorded script version with its interpreter, env, timeout and output cap', async () => {
    const server = await createServer(api, 'd-1');
    const a = await connect(server.agentToken);
    const script = await createScript(api, 'echo v1', { interpreter: 'sh', timeoutSeconds: 7, maxOutputBytes: 12345 });
    const accepted = await run(api, script.id, server.id);
    expect(['dispatched', 'running']).toContain(accepted.status);
    expect(accepted.links.output).toBe(`/api/v1/executions/${accepted.executionId}/output`);
    const cmd = await a.waitForStart(accepted.executionId);
    expect(cmd).toEqual({
      executionId: accepted.executionId,
      interpreter: 'sh',
      content: 'echo v1',
      env: {
        DEVPILOT_EXECUTION_ID: accepted.executionId,
        DEVPILOT_SCRIPT_ID: script.id,
        DEVPILOT_SCRIPT_VERSION: '1',
        DEVPILOT_SERVER_ID: server.id,
        DEVPILOT_TRIGGER: 'manual',
      },
      timeoutMs: 7000,
      maxOutputBytes: 12345,
    });
    const running = await waitForStatus(api, accepted.executionId, 'running');
    expect(running.startedAt).toBeTruthy();
  });

  it('queues while the agent is offline, then delivers oldest first once it says hello', async () => {
    const server = await createServer(api, 'd-2');
    const script = await createScript(api, 'echo queued');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await run(api, script.id, server.id);
      expect(r.status).toBe('queued');
      ids.push(r.executionId);
    }
    const a = await connect(server.agentToken);
    await waitFor('three starts', () => a.starts.length === 3);
    expect(a.starts.map((s) => s.executionId)).toEqual(ids);
    for (const id of ids) await waitForStatus(api, id, 'running');
  });

  it('does not dispatch to a socket that has not said hello', async () => {
    const server = await createServer(api, 'd-3');
    const a = await connect(server.agentToken, { hello: false });
    const script = await createScript(api, 'echo wait');
    const { executionId, status } = await run(api, script.id, server.id);
    // Its server is online, so the run may be created claimed; with no ready socket the start
    // reaches nobody and the run goes back to the queue.
    expect(['queued', 'dispatched']).toContain(status);
    await sleep(800);
    expect(a.starts).toHaveLength(0);
    await a.request(AgentEvents.hello, { running: [], finished: [] });
    await a.waitForStart(executionId);
  });

  it('makes a queued execution undeliverable when its agent does not come before the deadline', async () => {
    const server = await createServer(api, 'd-4');
    const script = await createScript(api, 'echo never');
    const { executionId } = await run(api, script.id, server.id);
    const e = await waitForStatus(api, executionId, 'undeliverable', 15_000);
    expect(e.error).toMatch(/delivery deadline/);
    expect(e.finishedAt).toBeTruthy();
    // An agent arriving later does not get it: queued work goes out oldest first on one socket, so
    // once a run queued after it has arrived, it would have come before.
    const { executionId: later } = await run(api, script.id, server.id);
    const a = await connect(server.agentToken);
    await a.waitForStart(later);
    expect(a.starts.map((s) => s.executionId)).toEqual([later]);
  });

  it('sends a start again when the connected agent never answered it', async () => {
    const server = await createServer(api, 'd-6');
    let calls = 0;
    const a = await connect(server.agentToken, { onStart: () => (++calls === 1 ? 'no-answer' : { accepted: true }) });
    const script = await createScript(api, 'echo again');
    const { executionId } = await run(api, script.id, server.id);
    await a.waitForStart(executionId);
    expect((await getExecution(api, executionId)).status).toBe('dispatched');
    await waitForStatus(api, executionId, 'running', 15_000);
    expect(a.starts.filter((s) => s.executionId === executionId)).toHaveLength(2);
  });

  it('fails an execution the agent refuses to start, with its reason', async () => {
    const server = await createServer(api, 'd-5');
    await connect(server.agentToken, { onStart: () => ({ accepted: false, reason: 'agent shutting down' }) });
    const script = await createScript(api, 'echo no');
    const { executionId } = await run(api, script.id, server.id);
    const e = await waitForStatus(api, executionId, 'failed');
    expect(e.error).toContain('agent shutting down');
  });
});

describe('protocol versions', () => {
  it('v2: a run accepted but not yet spawned stays dispatched, and is running once the agent reports it spawned', async () => {
    const server = await createServer(api, 'v-2');
    // The start ack is held back so only the spawned report can make it running.
    const a = await connect(server.agentToken, { protocolVersion: 2, onStart: () => 'no-answer', spawned: false });
    const script = await createScript(api, 'echo v2');
    const { executionId } = await run(api, script.id, server.id);
    await a.waitForStart(executionId);
    const before = await getExecution(api, executionId);
    expect(before).toMatchObject({ status: 'dispatched', startedAt: null });
    expect(await a.spawned(executionId)).toEqual({ ok: true });
    const after = await getExecution(api, executionId);
    expect(after.status).toBe('running');
    expect(after.startedAt).toBeTruthy();
    // Sent again (after a reconnect, say): acked, nothing changes.
    expect(await a.spawned(executionId)).toEqual({ ok: true });
    expect(await a.output(executionId, [{ seq: 0, stream: 'stdout', data: 'v2\n' }])).toEqual({ ackedSeq: 0 });
    expect(await a.finished(executionId, 0, { exitCode: 0, outputBytes: 3 })).toEqual({ ok: true });
    expect((await getExecution(api, executionId)).status).toBe('succeeded');
    // After the end it is still acked, so an agent that resends it stops.
    expect(await a.spawned(executionId)).toEqual({ ok: true });
    expect((await getExecution(api, executionId)).status).toBe('succeeded');
  });

  it('v2: a cancel asked for before the spawn is sent again when the spawn is reported', async () => {
    const server = await createServer(api, 'v-2-cancel');
    const a = await connect(server.agentToken, { protocolVersion: 2, onStart: () => 'no-answer', spawned: false });
    const script = await createScript(api, 'sleep 30');
    const { executionId } = await run(api, script.id, server.id);
    await a.waitForStart(executionId);
    expect((await api.post(`/api/v1/executions/${executionId}/cancel`)).status).toBeLessThan(300);
    await waitFor('the first cancel', () => a.cancels.includes(executionId));
    const cancelsBefore = a.cancels.length;
    expect(await a.spawned(executionId)).toEqual({ ok: true });
    await waitFor('the cancel sent again', () => a.cancels.length > cancelsBefore);
    expect(a.cancels.slice(cancelsBefore)).toEqual([executionId]);
  });

  it('serves the AsyncAPI document of these protocols beside the OpenAPI one, as committed', async () => {
    const r = await new Api(cp.url).get('/api/docs/asyncapi.json');
    expect(r.status).toBe(200);
    expect(r.body).toEqual(JSON.parse(readFileSync(new URL('../docs/asyncapi.json', import.meta.url), 'utf8')));
    expect(r.body).toMatchObject({ asyncapi: '3.0.0', info: { version: '4' }, channels: { agent: { address: '/agent' }, dashboard: { address: '/dashboard' } } });
  });

  it('v1: an agent that never sends execution.spawned still runs executions to the end', async () => {
    const server = await createServer(api, 'v-1');
    const a = await connect(server.agentToken, { protocolVersion: 1 });
    expect(a.helloReply).toEqual({ resend: [] });
    const script = await createScript(api, 'echo v1');
    const { executionId } = await run(api, script.id, server.id);
    await a.waitForStart(executionId);
    const running = await waitForStatus(api, executionId, 'running');
    expect(running.startedAt).toBeTruthy();
    expect(await a.output(executionId, [{ seq: 0, stream: 'stdout', data: 'v1\n' }])).toEqual({ ackedSeq: 0 });
    expect(await a.finished(executionId, 0, { exitCode: 0, outputBytes: 3 })).toEqual({ ok: true });
    expect(await getExecution(api, executionId)).toMatchObject({ status: 'succeeded', outputBytes: 3 });
    expect((await getOutput(api, executionId)).bytes.toString()).toBe('v1\n');
    expect(a.spawnedReplies).toEqual([]);
  });
});

describe('output and completion', () => {
  async function running(name: string) {
    const server = await createServer(api, name);
    const a = await connect(server.agentToken);
    const script = await createScript(api, 'echo x');
    const { executionId } = await run(api, script.id, server.id);
    await a.waitForStart(executionId);
    await waitForStatus(api, executionId, 'running');
    return { server, a, executionId, script };
  }

  it('stores batches before acking, in seq order, both streams, and completes on finished', async () => {
    const { a, executionId } = await running('o-1');
    expect(await a.output(executionId, [{ seq: 0, stream: 'stdout', data: 'out1\n' }, { seq: 1, stream: 'stderr', data: 'err1\n' }])).toEqual({ ackedSeq: 1 });
    expect(await a.output(executionId, [{ seq: 2, stream: 'stdout', data: Buffer.from([0, 255, 10]) }])).toEqual({ ackedSeq: 2 });
    expect(await a.finished(executionId, 2, { exitCode: 0, outputBytes: 13 })).toEqual({ ok: true });
    const e = await getExecution(api, executionId);
    expect(e).toMatchObject({ status: 'succeeded', exitCode: 0, outputBytes: 13, outputTruncated: false, error: null });
    expect(e.durationMs).toBeGreaterThanOrEqual(0);
    expect((await getOutput(api, executionId)).bytes).toEqual(Buffer.concat([Buffer.from('out1\nerr1\n'), Buffer.from([0, 255, 10])]));
    expect((await getOutput(api, executionId, 'stderr')).bytes.toString()).toBe('err1\n');
  });

  it('never stores or counts a resent chunk twice', async () => {
    const { a, executionId } = await running('o-2');
    const batch = [{ seq: 0, stream: 'stdout' as const, data: 'abc' }, { seq: 1, stream: 'stdout' as const, data: 'def' }];
    expect(await a.output(executionId, batch)).toEqual({ ackedSeq: 1 });
    expect(await a.output(executionId, batch)).toEqual({ ackedSeq: 1 });
    expect(await a.output(executionId, [batch[1]!, { seq: 2, stream: 'stdout', data: 'ghi' }])).toEqual({ ackedSeq: 2 });
    expect((await getExecution(api, executionId)).outputBytes).toBe(9);
    expect((await getOutput(api, executionId)).bytes.toString()).toBe('abcdefghi');
    expect((await db.query('SELECT count(*)::int AS n FROM execution_output WHERE execution_id = $1', [executionId]))[0]!.n).toBe(3);
  });

  it('holds a finished report until every chunk up to lastSeq is stored', async () => {
    const { a, executionId } = await running('o-3');
    await a.output(executionId, [{ seq: 0, stream: 'stdout', data: 'a' }]);
    await a.output(executionId, [{ seq: 2, stream: 'stdout', data: 'c' }]);
    expect(await a.finished(executionId, 2, { exitCode: 3 })).toEqual({ ok: true });
    // The ack comes once the report is held or has ended the run: it is held.
    const [held] = await db.query<{ held: boolean }>(`SELECT finish_report IS NOT NULL AS held FROM execution WHERE id = $1`, [executionId]);
    expect(held?.held).toBe(true);
    expect((await getExecution(api, executionId)).status).toBe('running');
    await a.output(executionId, [{ seq: 1, stream: 'stdout', data: 'b' }]);
    const e = await waitForStatus(api, executionId, 'failed');
    expect(e.exitCode).toBe(3);
    expect((await getOutput(api, executionId)).bytes.toString()).toBe('abc');
  });

  it('maps the finished report to the terminal status and never changes it again', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ exitCode: 0 }, 'succeeded'],
      [{ exitCode: 3 }, 'failed'],
      [{ exitCode: null, error: 'interpreter not found: python3' }, 'failed'],
      [{ exitCode: null, signal: 'SIGTERM', timedOut: true }, 'timed_out'],
      [{ exitCode: null, signal: 'SIGTERM', cancelled: true }, 'cancelled'],
    ];
    for (const [i, [report, status]] of cases.entries()) {
      const { a, executionId } = await running(`o-4-${i}`);
      expect(await a.finished(executionId, -1, report)).toEqual({ ok: true });
      const e = await getExecution(api, executionId);
      expect(e.status).toBe(status);
      if (report.error) expect(e.error).toBe(report.error);
      if (report.signal) expect(e.signal).toBe(report.signal);
      // A second, different report changes nothing.
      expect(await a.finished(executionId, -1, { exitCode: 0 })).toEqual({ ok: true });
      expect((await getExecution(api, executionId)).status).toBe(status);
      // Output that arrives after the end is still stored (what the script wrote is kept); the status stays.
      expect(await a.output(executionId, [{ seq: 0, stream: 'stdout', data: 'late' }])).toEqual({ ackedSeq: 0 });
      const after = await getExecution(api, executionId);
      expect(after.outputBytes).toBe(4);
      expect(after.status).toBe(status);
      expect((await getOutput(api, executionId)).bytes.toString()).toBe('late');
      a.close();
    }
  });

  it('records truncation as reported', async () => {
    const { a, executionId } = await running('o-5');
    await a.output(executionId, [{ seq: 0, stream: 'stdout', data: 'x'.repeat(10) }]);
    await a.finished(executionId, 0, { exitCode: 0, truncated: true, outputBytes: 10 });
    expect(await getExecution(api, executionId)).toMatchObject({ status: 'succeeded', outputTruncated: true, outputBytes: 10 });
  });
});

describe('reconciliation on hello', () => {
  it('marks lost what the agent no longer knows, keeps what it runs, and asks for the first missing seq', async () => {
    const server = await createServer(api, 'r-1');
    const a = await connect(server.agentToken);
    const script = await createScript(api, 'echo r');
    const kept = (await run(api, script.id, server.id)).executionId;
    const forgotten = (await run(api, script.id, server.id)).executionId;
    await waitForStatus(api, kept, 'running');
    await waitForStatus(api, forgotten, 'running');
    await a.output(kept, [{ seq: 0, stream: 'stdout', data: 'a' }, { seq: 1, stream: 'stdout', data: 'b' }]);
    await a.output(kept, [{ seq: 3, stream: 'stdout', data: 'd' }]);
    a.close();
    const b = await connect(server.agentToken, { hello: { running: [{ executionId: kept, nextSeq: 5 }], finished: [] } });
    expect(b.helloReply).toEqual({ resend: [{ executionId: kept, fromSeq: 2 }] });
    const lost = await waitForStatus(api, forgotten, 'lost');
    expect(lost.error).toMatch(/reconnected without/);
    expect((await getExecution(api, kept)).status).toBe('running');
  });

  it('completes from finished reports in the hello', async () => {
    const server = await createServer(api, 'r-2');
    const a = await connect(server.agentToken);
    const script = await createScript(api, 'echo r');
    const { executionId } = await run(api, script.id, server.id);
    await waitForStatus(api, executionId, 'running');
    await a.output(executionId, [{ seq: 0, stream: 'stdout', data: 'done' }]);
    a.close();
    const report = { executionId, exitCode: 0, signal: null, timedOut: false, cancelled: false, lastSeq: 0, outputBytes: 4, truncated: false, error: null };
    const b = await connect(server.agentToken, { hello: { running: [], finished: [report] } });
    expect(b.helloReply).toEqual({ resend: [{ executionId, fromSeq: 1 }] });
    expect((await getExecution(api, executionId)).status).toBe('succeeded');
  });

  it('requeues a start that was never acked and redelivers it', async () => {
    const server = await createServer(api, 'r-3');
    const a = await connect(server.agentToken, { onStart: () => 'no-answer' });
    const script = await createScript(api, 'echo r');
    const { executionId } = await run(api, script.id, server.id);
    await a.waitForStart(executionId);
    expect((await getExecution(api, executionId)).status).toBe('dispatched');
    a.close();
    const b = await connect(server.agentToken);
    await b.waitForStart(executionId);
    await waitForStatus(api, executionId, 'running');
  });

  it('asks the agent to stop a run that is already over here', async () => {
    const server = await createServer(api, 'r-4');
    const a = await connect(server.agentToken);
    const script = await createScript(api, 'echo r');
    const { executionId } = await run(api, script.id, server.id);
    await waitForStatus(api, executionId, 'running');
    a.close();
    // Reconnect without it: lost. Then a confused agent says it runs it after all.
    await connect(server.agentToken);
    await waitForStatus(api, executionId, 'lost');
    const c = await connect(server.agentToken, { hello: { running: [{ executionId, nextSeq: 0 }], finished: [] } });
    expect(c.helloReply).toEqual({ resend: [{ executionId, fromSeq: 0 }] });
    await waitFor('a cancel', () => c.cancels.includes(executionId));
    expect((await getExecution(api, executionId)).status).toBe('lost');
  });
});

describe('a buggy agent', () => {
  it('gets error acks for malformed payloads and changes nothing', async () => {
    const server = await createServer(api, 'b-1');
    const a = await connect(server.agentToken);
    const script = await createScript(api, 'echo b');
    const { executionId } = await run(api, script.id, server.id);
    await waitForStatus(api, executionId, 'running');
    const bad: [string, unknown[]][] = [
      [AgentEvents.output, [null]],
      [AgentEvents.output, ['a string']],
      [AgentEvents.output, [{ executionId: 'not-a-uuid', chunks: [{ seq: 0, stream: 'stdout', data: Buffer.from('x') }] }]],
      [AgentEvents.output, [{ executionId, chunks: [] }]],
      [AgentEvents.output, [{ executionId, chunks: [{ seq: -1, stream: 'stdout', data: Buffer.from('x') }] }]],
      [AgentEvents.output, [{ executionId, chunks: [{ seq: 0, stream: 'stdin', data: Buffer.from('x') }] }]],
      [AgentEvents.output, [{ executionId, chunks: [{ seq: 0, stream: 'stdout', data: 'a string, not bytes' }] }]],
      [AgentEvents.output, [{ executionId, chunks: [{ seq: 1.5, stream: 'stdout', data: Buffer.from('x') }] }]],
      [AgentEvents.output, [{ executionId, chunks: [{ seq: 3_000_000_000, stream: 'stdout', data: Buffer.from('x') }] }]],
      [AgentEvents.output, [{ executionId, chunks: [{ seq: 1, stream: 'stdout', data: Buffer.from('x') }, { seq: 0, stream: 'stdout', data: Buffer.from('y') }] }]],
      [AgentEvents.output, [{ executionId, chunks: [{ seq: 0, stream: 'stdout', data: Buffer.alloc(MAX_CHUNK_BYTES + 1) }] }]],
      [AgentEvents.output, [{ executionId, chunks: [{ seq: 0, stream: 'stdout', data: Buffer.from('x') }] }, 'extra argument']],
      [AgentEvents.finished, [{ executionId, exitCode: 'zero', signal: null, timedOut: false, cancelled: false, lastSeq: -1, outputBytes: 0, truncated: false }]],
      [AgentEvents.finished, [{ executionId }]],
      [AgentEvents.finished, [42]],
      [AgentEvents.hello, [{ running: 'all of them', finished: [] }]],
    ];
    for (const [event, args] of bad) {
      const reply = await a.request(event, ...args);
      expect(reply).toEqual({ error: { code: 'INVALID_PAYLOAD', message: expect.any(String) } });
    }
    for (const payload of [{ executionId: 'not-a-uuid' }, {}, null]) {
      expect(await a.request(AgentEvents.spawned, payload)).toEqual({ error: { code: 'INVALID_PAYLOAD', message: expect.any(String) } });
    }
    // Without an ack function: no answer, no crash.
    a.socket.emit(AgentEvents.output, { nonsense: true });
    a.socket.emit(AgentEvents.finished);
    a.socket.emit('no.such.event', 1, 2, 3);
    expect(a.connected).toBe(true);
    const e = await getExecution(api, executionId);
    expect(e).toMatchObject({ status: 'running', outputBytes: 0 });
    expect((await db.query('SELECT count(*)::int AS n FROM execution_output WHERE execution_id = $1', [executionId]))[0]!.n).toBe(0);
  });

  it('may not report on unknown executions or on another server’s', async () => {
    const mine = await createServer(api, 'b-2-mine');
    const theirs = await createServer(api, 'b-2-theirs');
    const a = await connect(mine.agentToken);
    const other = await connect(theirs.agentToken);
    const script = await createScript(api, 'echo b');
    const { executionId } = await run(api, script.id, theirs.id);
    await waitForStatus(api, executionId, 'running');
    for (const id of [randomUUID(), executionId]) {
      expect(await a.output(id, [{ seq: 0, stream: 'stdout', data: 'forged' }])).toEqual({ error: { code: 'UNKNOWN_EXECUTION', message: expect.any(String) } });
      expect(await a.finished(id, -1, { exitCode: 0 })).toEqual({ error: { code: 'UNKNOWN_EXECUTION', message: expect.any(String) } });
      expect(await a.spawned(id)).toEqual({ error: { code: 'UNKNOWN_EXECUTION', message: expect.any(String) } });
    }
    // Its hello cannot make the other server's execution lost or claim it either.
    const again = await connect(mine.agentToken, { hello: { running: [{ executionId, nextSeq: 0 }], finished: [] } });
    expect(again.helloReply).toEqual({ resend: [] });
    expect(await getExecution(api, executionId)).toMatchObject({ status: 'running', outputBytes: 0 });
    // The owner of a queued (not yet dispatched) execution cannot report on it either.
    const owner = await createServer(api, 'b-2-owner');
    const queued = (await run(api, script.id, owner.id)).executionId;
    const silent = await connect(owner.agentToken, { hello: false });
    expect(await silent.output(queued, [{ seq: 0, stream: 'stdout', data: 'early' }])).toEqual({ error: { code: 'NOT_DISPATCHED', message: expect.any(String) } });
    expect(await silent.finished(queued, -1)).toEqual({ error: { code: 'NOT_DISPATCHED', message: expect.any(String) } });
    // Ends the table allows from queued (failed, cancelled) are not the agent's to report either.
    expect(await silent.finished(queued, -1, { exitCode: 1 })).toEqual({ error: { code: 'NOT_DISPATCHED', message: expect.any(String) } });
    expect(await silent.spawned(queued)).toEqual({ error: { code: 'NOT_DISPATCHED', message: expect.any(String) } });
    expect((await getExecution(api, queued)).status).toBe('queued');
    expect(other.connected).toBe(true);
    expect((await getOutput(api, executionId)).bytes.length).toBe(0);
  });

  it('is disconnected, not crashing anything, when one frame exceeds the message size limit', async () => {
    const server = await createServer(api, 'b-3');
    const a = await connect(server.agentToken);
    const script = await createScript(api, 'echo b');
    const { executionId } = await run(api, script.id, server.id);
    await waitForStatus(api, executionId, 'running');
    a.socket.emit(AgentEvents.output, { executionId, chunks: [{ seq: 0, stream: 'stdout', data: randomBytes(MAX_MESSAGE_BYTES + 1024) }] }, () => undefined);
    await waitFor('the oversized message to cost the connection', () => !a.connected);
    expect((await new Api(cp.url).get('/health')).status).toBe(200);
    expect((await getExecution(api, executionId)).outputBytes).toBe(0);
  });

  it('survives a flood of full-size batches sent without waiting for acks: all stored once and acked', async () => {
    const server = await createServer(api, 'b-4');
    const a = await connect(server.agentToken);
    const script = await createScript(api, 'echo b', { maxOutputBytes: 512 * 1024 * 1024 });
    const { executionId } = await run(api, script.id, server.id);
    await waitForStatus(api, executionId, 'running');
    // 16 messages of 40 x 256 KiB (10 MiB each, valid per the protocol), all sent at once.
    const chunk = randomBytes(MAX_CHUNK_BYTES);
    const replies = await Promise.all(
      Array.from({ length: 16 }, (_, m) =>
        a.socket.timeout(60_000).emitWithAck(AgentEvents.output, {
          executionId,
          chunks: Array.from({ length: 40 }, (_, i) => ({ seq: m * 40 + i, stream: 'stdout', data: chunk })),
        }),
      ),
    );
    expect(replies.map((r) => r.ackedSeq)).toEqual(Array.from({ length: 16 }, (_, m) => m * 40 + 39));
    expect((await getExecution(api, executionId)).outputBytes).toBe(16 * 40 * MAX_CHUNK_BYTES);
    expect((await getOutput(api, executionId)).bytes.equals(Buffer.concat(Array.from({ length: 640 }, () => chunk)))).toBe(true);
    expect((await new Api(cp.url).get('/health')).status).toBe(200);
  });
});

describe('shutdown', () => {
  // Last in this file: it stops the control plane.
  it('drops its agents and marks their servers offline before it stops', async () => {
    const server = await createServer(api, 'z-shutdown');
    const a = await connect(server.agentToken);
    await waitFor('online', async () => (await serverRow(server.id)).status === 'online');
    expect((await cp.stop()).code).toBe(0);
    expect(a.disconnectReason).toBe('io server disconnect');
    const [row] = await db.query<{ status: string }>('SELECT status FROM server WHERE id = $1', [server.id]);
    expect(row!.status).toBe('offline');
  });
});
