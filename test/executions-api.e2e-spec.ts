// The executions API (manual run, list, get, output, SSE, cancel) with protocol-level fake agents.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getExecution, getOutput, outputOf, readEvents, run, waitForStatus } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { ProtocolAgent } from './support/protocol-agent.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
const agents: ProtocolAgent[] = [];

async function connect(token: string, opts?: Parameters<typeof ProtocolAgent.connect>[2]): Promise<ProtocolAgent> {
  const a = await ProtocolAgent.connect(cp.url, token, opts);
  agents.push(a);
  return a;
}

/** A server with a connected fake agent and a running execution of a fresh script. */
async function runningExecution(name: string) {
  const server = await createServer(api, name);
  const a = await connect(server.agentToken);
  const script = await createScript(api, 'echo x', { name: `${name}-script` });
  const { executionId } = await run(api, script.id, server.id);
  await waitForStatus(api, executionId, 'running');
  return { server, a, script, executionId };
}

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_SWEEP_INTERVAL_MS: '500' } });
  api = new Api(cp.url, cp.adminKey);
});

afterEach(() => {
  for (const a of agents.splice(0)) a.close();
});

afterAll(async () => {
  await cp?.stop();
  await db?.drop();
});

describe('manual run', () => {
  it('answers 202 with the trigger body; queued when the agent is offline', async () => {
    const server = await createServer(api, 'm-1');
    const script = await createScript(api, 'echo m');
    const r = await api.post(`/api/v1/scripts/${script.id}/executions`, { serverId: server.id });
    expect(r.status).toBe(202);
    expect(r.body).toEqual({
      executionId: expect.any(String),
      status: 'queued',
      links: {
        execution: `/api/v1/executions/${r.body.executionId}`,
        output: `/api/v1/executions/${r.body.executionId}/output`,
        events: `/api/v1/executions/${r.body.executionId}/events`,
      },
    });
    expect(await getExecution(api, r.body.executionId)).toMatchObject({ trigger: 'manual', status: 'queued', scriptVersion: 1, webhookId: null });
  });

  it('validates the body and the ids', async () => {
    const script = await createScript(api, 'echo m');
    expect((await api.post(`/api/v1/scripts/${script.id}/executions`, {})).body.code).toBe('VALIDATION_ERROR');
    expect((await api.post(`/api/v1/scripts/${script.id}/executions`, { serverId: 'nope' })).status).toBe(400);
    expect((await api.post(`/api/v1/scripts/${script.id}/executions`, { serverId: randomUUID() })).status).toBe(404);
    const server = await createServer(api, 'm-2');
    expect((await api.post(`/api/v1/scripts/${randomUUID()}/executions`, { serverId: server.id })).status).toBe(404);
  });

  it('runs the version current at trigger time', async () => {
    const server = await createServer(api, 'm-3');
    const script = await createScript(api, 'echo one');
    const first = await run(api, script.id, server.id);
    expect((await api.patch(`/api/v1/scripts/${script.id}`, { content: 'echo two' })).status).toBe(200);
    const second = await run(api, script.id, server.id);
    const a = await connect(server.agentToken);
    expect((await a.waitForStart(first.executionId)).content).toBe('echo one');
    expect((await a.waitForStart(second.executionId)).content).toBe('echo two');
    expect((await getExecution(api, second.executionId)).scriptVersion).toBe(2);
  });
});

describe('list and get', () => {
  it('lists newest first with names, filters, and a cursor that loses nothing', async () => {
    const server = await createServer(api, 'l-1');
    const other = await createServer(api, 'l-1-other');
    const script = await createScript(api, 'echo l', { name: 'list-me' });
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await run(api, script.id, server.id)).executionId);
    await run(api, script.id, other.id);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r: any = await api.get(`/api/v1/executions?scriptId=${script.id}&serverId=${server.id}&limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      expect(r.body.items.length).toBeLessThanOrEqual(3);
      seen.push(...r.body.items.map((e: any) => e.id));
      for (const e of r.body.items) expect(e).toMatchObject({ scriptName: 'list-me', serverName: 'l-1', webhookName: null, trigger: 'manual' });
      cursor = r.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());

    expect((await api.get(`/api/v1/executions?scriptId=${script.id}&trigger=webhook`)).body.items).toEqual([]);
    expect((await api.get(`/api/v1/executions?scriptId=${script.id}&status=queued`)).body.items).toHaveLength(8);
    expect((await api.get(`/api/v1/executions?serverId=${other.id}`)).body.items).toHaveLength(1);
    expect((await api.get('/api/v1/executions?status=nope')).status).toBe(400);
    expect((await api.get('/api/v1/executions?cursor=garbage')).body.code).toBe('VALIDATION_ERROR');
    expect((await api.get('/api/v1/executions?unknown=1')).status).toBe(400);
  });

  it('shows every design field of a finished execution', async () => {
    const { a, executionId, script, server } = await runningExecution('g-1');
    await a.output(executionId, [{ seq: 0, stream: 'stdout', data: 'hello\n' }]);
    await a.finished(executionId, 0, { exitCode: 0, outputBytes: 6 });
    const e = await getExecution(api, executionId);
    expect(e).toMatchObject({
      id: executionId,
      scriptId: script.id,
      scriptVersion: 1,
      serverId: server.id,
      webhookId: null,
      trigger: 'manual',
      status: 'succeeded',
      exitCode: 0,
      signal: null,
      error: null,
      outputBytes: 6,
      outputTruncated: false,
    });
    for (const k of ['queuedAt', 'startedAt', 'finishedAt']) expect(new Date(e[k]).getTime()).not.toBeNaN();
    expect(e.durationMs).toBe(new Date(e.finishedAt).getTime() - new Date(e.startedAt).getTime());
    expect((await api.get(`/api/v1/executions/${randomUUID()}`)).status).toBe(404);
    expect((await api.get('/api/v1/executions/not-a-uuid')).status).toBe(400);
  });
});

describe('output', () => {
  it('returns the raw bytes in seq order, filtered by stream, as application/octet-stream', async () => {
    const { a, executionId } = await runningExecution('out-1');
    const blobs = Array.from({ length: 20 }, () => randomBytes(200_000));
    // Sent out of order across batches: the output is still in seq order.
    for (const i of [3, 1, 0, 2]) {
      await a.output(executionId, blobs.slice(i * 5, i * 5 + 5).map((data, j) => ({ seq: i * 5 + j, stream: (i * 5 + j) % 3 === 0 ? 'stderr' : 'stdout', data })));
    }
    await a.finished(executionId, 19, { exitCode: 0 });
    const all = await getOutput(api, executionId);
    expect(all.status).toBe(200);
    expect(all.type).toBe('application/octet-stream');
    expect(all.bytes.equals(Buffer.concat(blobs))).toBe(true);
    const stderr = await getOutput(api, executionId, 'stderr');
    expect(stderr.bytes.equals(Buffer.concat(blobs.filter((_, i) => i % 3 === 0)))).toBe(true);
    expect((await getOutput(api, executionId, 'stdin')).status).toBe(400);
    expect((await getExecution(api, executionId)).outputBytes).toBe(4_000_000);
  });
});

describe('events (SSE)', () => {
  it('sends the backlog, then live output, then the terminal status, and ends', async () => {
    const { a, executionId } = await runningExecution('sse-1');
    await a.output(executionId, [{ seq: 0, stream: 'stdout', data: 'before-1\n' }, { seq: 1, stream: 'stderr', data: 'before-2\n' }]);
    // The first status event comes after the backlog, and the stream listens for live output
    // before it reads the backlog: output written from then on can only reach it live.
    let producing: Promise<void> | undefined;
    const reading = readEvents(api, executionId, {
      onEvent: (e, all) => {
        if (e.event !== 'status' || producing) return;
        expect(outputOf(all).seqs).toEqual([0, 1]);
        producing = (async () => {
          await a.output(executionId, [{ seq: 2, stream: 'stdout', data: 'live-1\n' }]);
          await a.output(executionId, [{ seq: 3, stream: 'stdout', data: 'live-2\n' }]);
          await a.finished(executionId, 3, { exitCode: 3 });
        })();
      },
    });
    const r = await reading;
    expect(producing).toBeDefined();
    await producing;
    expect(r.status).toBe(200);
    expect(r.contentType).toContain('text/event-stream');
    expect(r.ended).toBe(true);
    const out = outputOf(r.events);
    expect(out.seqs).toEqual([0, 1, 2, 3]);
    expect(out.bytes.toString()).toBe('before-1\nbefore-2\nlive-1\nlive-2\n');
    expect(r.events.filter((e) => e.event === 'output').map((e) => e.id)).toEqual(['0', '1', '2', '3']);
    const statuses = r.events.filter((e) => e.event === 'status').map((e) => JSON.parse(e.data));
    expect(statuses[0].status).toBe('running');
    expect(statuses[statuses.length - 1]).toMatchObject({ status: 'failed', exitCode: 3 });
    expect(r.events[r.events.length - 1]!.event).toBe('status');
  });

  it('resumes after Last-Event-ID without repeating anything', async () => {
    const { a, executionId } = await runningExecution('sse-2');
    for (let seq = 0; seq < 6; seq++) await a.output(executionId, [{ seq, stream: 'stdout', data: `line ${seq}\n` }]);
    const first = await readEvents(api, executionId, { stop: (_e, all) => all.filter((x) => x.event === 'output').length === 3 });
    const firstOut = outputOf(first.events);
    expect(firstOut.seqs).toEqual([0, 1, 2]);
    const lastId = first.events.filter((e) => e.event === 'output').pop()!.id!;
    // Live output once the resumed stream has sent its backlog (the status event follows it).
    let producing: Promise<void> | undefined;
    const second = await readEvents(api, executionId, {
      lastEventId: lastId,
      onEvent: (e, all) => {
        if (e.event !== 'status' || producing) return;
        expect(outputOf(all).seqs).toEqual([3, 4, 5]);
        producing = (async () => {
          await a.output(executionId, [{ seq: 6, stream: 'stdout', data: 'line 6\n' }]);
          await a.finished(executionId, 6, { exitCode: 0 });
        })();
      },
    });
    expect(producing).toBeDefined();
    await producing;
    expect(outputOf(second.events).seqs).toEqual([3, 4, 5, 6]);
    expect(Buffer.concat([firstOut.bytes, outputOf(second.events).bytes]).toString()).toBe(
      Array.from({ length: 7 }, (_, i) => `line ${i}\n`).join(''),
    );
    expect(JSON.parse(second.events[second.events.length - 1]!.data).status).toBe('succeeded');
  });

  it('replays a finished execution and ends at once; refuses a bad Last-Event-ID', async () => {
    const { a, executionId } = await runningExecution('sse-3');
    await a.output(executionId, [{ seq: 0, stream: 'stdout', data: 'only\n' }]);
    await a.finished(executionId, 0, { exitCode: 0 });
    const r = await readEvents(api, executionId, { timeoutMs: 10_000 });
    expect(r.ended).toBe(true);
    expect(outputOf(r.events).bytes.toString()).toBe('only\n');
    expect(r.events.map((e) => e.event)).toEqual(['output', 'status']);
    expect((await readEvents(api, executionId, { lastEventId: 'abc' })).status).toBe(400);
    expect((await readEvents(api, executionId, { lastEventId: '0' })).events.map((e) => e.event)).toEqual(['status']);
  });
});

describe('cancel', () => {
  it('cancels a queued execution at once', async () => {
    const server = await createServer(api, 'c-1');
    const script = await createScript(api, 'sleep 100');
    const { executionId } = await run(api, script.id, server.id);
    const r = await api.post(`/api/v1/executions/${executionId}/cancel`);
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ id: executionId, status: 'cancelled', cancelRequested: true });
    // The agent coming later does not get it. Queued work is sent oldest first on one socket, so once
    // a run queued after it has arrived, the cancelled one would have come before it.
    const { executionId: later } = await run(api, script.id, server.id);
    const a = await connect(server.agentToken);
    await a.waitForStart(later);
    expect(a.starts.map((s) => s.executionId)).toEqual([later]);
    const again = await api.post(`/api/v1/executions/${executionId}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('INVALID_STATE');
  });

  it('asks the agent to stop a running one and ends cancelled when it reports so', async () => {
    const { a, executionId } = await runningExecution('c-2');
    const r = await api.post(`/api/v1/executions/${executionId}/cancel`);
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ status: 'running', cancelRequested: true });
    await waitFor('execution.cancel at the agent', () => a.cancels.includes(executionId));
    await a.finished(executionId, -1, { exitCode: null, signal: 'SIGTERM', cancelled: true });
    expect((await getExecution(api, executionId)).status).toBe('cancelled');
  });

  it('repeats the cancel to an agent that reconnects still running it', async () => {
    const { a, executionId, server } = await runningExecution('c-3');
    a.close();
    await api.post(`/api/v1/executions/${executionId}/cancel`);
    const b = await connect(server.agentToken, { hello: { running: [{ executionId, nextSeq: 0 }], finished: [] } });
    await waitFor('execution.cancel after hello', () => b.cancels.includes(executionId));
  });

  it('is refused to a viewer key', async () => {
    const { executionId } = await runningExecution('c-4');
    const key = (await api.post('/api/v1/api-keys', { name: 'v', role: 'viewer' })).body.key;
    const viewer = api.as(key);
    expect((await viewer.get(`/api/v1/executions/${executionId}`)).status).toBe(200);
    expect((await viewer.post(`/api/v1/executions/${executionId}/cancel`)).status).toBe(403);
    const server = await createServer(api, 'c-4b');
    const script = await createScript(api, 'echo');
    expect((await viewer.post(`/api/v1/scripts/${script.id}/executions`, { serverId: server.id })).status).toBe(403);
  });
});

describe('workspace isolation', () => {
  it('hides another workspace’s executions, scripts and servers', async () => {
    const { a, executionId, script, server } = await runningExecution('iso-1');
    await a.output(executionId, [{ seq: 0, stream: 'stdout', data: 'secret' }]);
    const ws = await api.post('/api/v1/workspaces', { name: 'other' });
    expect(ws.status).toBe(201);
    const outsider = api.as(ws.body.apiKey);
    expect((await outsider.get(`/api/v1/executions/${executionId}`)).status).toBe(404);
    expect((await getOutput(outsider, executionId)).status).toBe(404);
    expect((await readEvents(outsider, executionId)).status).toBe(404);
    expect((await outsider.post(`/api/v1/executions/${executionId}/cancel`)).status).toBe(404);
    expect((await outsider.get('/api/v1/executions')).body.items).toEqual([]);
    expect((await outsider.get(`/api/v1/executions?scriptId=${script.id}`)).body.items).toEqual([]);
    expect((await outsider.post(`/api/v1/scripts/${script.id}/executions`, { serverId: server.id })).status).toBe(404);
    const own = await createScript(outsider, 'echo mine');
    // Its own script on our server: still not found.
    expect((await outsider.post(`/api/v1/scripts/${own.id}/executions`, { serverId: server.id })).status).toBe(404);
    expect((await getExecution(api, executionId)).status).toBe('running');
  });
});

describe('agent files', () => {
  it('serves the agent bundle, its systemd unit and the install script without an API key', async () => {
    for (const file of ['devpilot-agent.cjs', 'devpilot-agent.service', 'install.sh']) {
      const r = await fetch(`${cp.url}/agent/${file}`);
      expect(r.status).toBe(200);
      expect((await r.text()).length).toBeGreaterThan(100);
    }
    expect((await fetch(`${cp.url}/agent/passwd`)).status).toBe(404);
    expect((await fetch(`${cp.url}/agent/..%2Fpackage.json`)).status).toBe(404);
  });
});
