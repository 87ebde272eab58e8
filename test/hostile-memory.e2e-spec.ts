// One tenant owner against everyone's memory (issue 13, findings 1 and 7). With the agent tokens of
// three servers of its own workspace it keeps the report handlers busy with hellos listing 10,000
// unknown executions, then sends messages of 7.5 MiB of text without waiting for acks. Messages
// waiting to be handled count against a per-connection and a process-wide budget whatever their
// shape, so the control plane stops reading such connections instead of buffering them; the
// hello's refusals spend the agent's refusal budget, cost one statement and one log line.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createServer } from './support/executions.js';
import { recordFigure } from './support/figures.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { createWebhook, serverAndScript, triggerWith } from './support/webhook-fixtures.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
let bystanderHook: string;

const rssMiB = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${cp.proc.child.pid}/status`, 'utf8'))![1]) / 1024;

const PAD = 'p'.repeat(7.5 * 1024 * 1024);
const UNKNOWN = 10_000;
const hello = () =>
  JSON.stringify({
    running: [],
    finished: Array.from({ length: UNKNOWN }, () => ({
      executionId: randomUUID(),
      exitCode: 0,
      signal: null,
      timedOut: false,
      cancelled: false,
      lastSeq: -1,
      outputBytes: 0,
      truncated: false,
    })),
  });

/** Resolves true once the frame was handed to the kernel, false if that did not happen within `ms` (the peer stopped reading) or the socket closed. */
function sendWithin(ws: WebSocket, frame: string, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (ws.readyState !== WebSocket.OPEN) return resolve(false);
    const timer = setTimeout(() => resolve(false), ms);
    ws.send(frame, (err) => {
      clearTimeout(timer);
      resolve(!err);
    });
  });
}

/** A raw socket.io client on /agent with a valid token: 8 hellos, then up to `messages` padded messages, never waiting for acks. */
async function attack(token: string, messages: number): Promise<{ sent: number; stopped: 'closed' | 'not read' | 'all sent' }> {
  const ws = new WebSocket(`${cp.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`, { headers: { authorization: `Bearer ${token}` } });
  const frames: string[] = [];
  let closed = false;
  ws.on('message', (data: Buffer) => {
    const text = data.toString('utf8');
    if (text === '2') ws.send('3'); // engine.io ping
    frames.push(text);
  });
  ws.on('close', () => (closed = true));
  ws.on('error', () => (closed = true));
  await waitFor('the engine to open', () => frames.some((f) => f.startsWith('0')) || closed);
  ws.send(`40/agent,${JSON.stringify({ token, protocolVersion: 2, agentVersion: 'x', hostname: 'h', platform: 'p' })}`);
  await waitFor('the namespace to accept', () => frames.some((f) => f.startsWith('40/agent,')) || closed);
  for (let i = 0; i < 8; i++) await sendWithin(ws, `42/agent,${i}${JSON.stringify(['agent.hello', JSON.parse(hello())])}`, 5000);
  const frame = `42/agent,["execution.output",{"executionId":"${randomUUID()}","pad":"${PAD}"}]`;
  let sent = 0;
  let stopped: 'closed' | 'not read' | 'all sent' = 'all sent';
  for (; sent < messages; sent++) {
    if (closed) {
      stopped = 'closed';
      break;
    }
    if (!(await sendWithin(ws, frame, 3000))) {
      stopped = closed ? 'closed' : 'not read';
      break;
    }
  }
  ws.terminate();
  return { sent, stopped };
}

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url });
  api = new Api(cp.url, cp.adminKey);
  const ws = await api.post('/api/v1/workspaces', { name: 'bystander' });
  const other = new Api(cp.url, ws.body.apiKey);
  const { serverId, scriptId } = await serverAndScript(other, 'bystander');
  bystanderHook = (await createWebhook(other, scriptId, { serverId })).token;
}, 120_000);

afterAll(async () => {
  if (process.env.SHOW_CP_LOGS) process.stdout.write(cp?.proc.logs.slice(-30000) ?? '');
  await cp?.stop();
  await db?.drop();
});

describe('an owner’s agents against the control plane’s memory', () => {
  it('three connections of hellos and 7.5 MiB messages leave it alive, under its RSS bound, serving another workspace', async () => {
    const MESSAGES = 24;
    const BOUND_MIB = 256;
    const servers = await Promise.all([1, 2, 3].map((i) => createServer(api, `attacker-${i}`)));
    const rssBefore = rssMiB();
    let peak = rssBefore;
    const sampler = setInterval(() => {
      if (cp.proc.running) peak = Math.max(peak, rssMiB());
    }, 50);
    const probes: number[] = [];
    let attacking = true;
    const prober = (async () => {
      while (attacking) {
        probes.push((await triggerWith(cp.url, bystanderHook)).status);
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    const results = await Promise.all(servers.map((s) => attack(s.agentToken, MESSAGES)));
    attacking = false;
    await prober;
    clearInterval(sampler);
    expect(cp.proc.running).toBe(true);
    expect((await fetch(`${cp.url}/health/live`)).status).toBe(200);
    expect((await triggerWith(cp.url, bystanderHook)).status).toBe(202);
    expect(probes.length).toBeGreaterThan(0);
    expect(probes.every((s) => s === 202)).toBe(true);
    // What it held for the attack, above what it held before.
    expect(peak - rssBefore).toBeLessThan(BOUND_MIB);
    // The hellos' refusals cut every attacker off, and each hello was refused in one log line.
    expect(results.every((r) => r.stopped !== 'all sent')).toBe(true);
    const helloLines = cp.proc.logs.split('\n').filter((l) => l.includes('refused items of a hello'));
    expect(helloLines.length).toBeGreaterThan(0);
    expect(helloLines.length).toBeLessThanOrEqual(3 * 8);
    expect(cp.proc.logs.split('\n').filter((l) => l.includes('refused a finished report in hello'))).toEqual([]);
    recordFigure('hostile-memory', {
      connections: 3,
      messagesEach: MESSAGES,
      messageMiB: 7.5,
      helloUnknown: UNKNOWN,
      sent: results.map((r) => r.sent),
      stopped: results.map((r) => r.stopped),
      rssBeforeMiB: Math.round(rssBefore),
      rssPeakMiB: Math.round(peak),
      boundMiB: BOUND_MIB,
      probes: probes.length,
    });
  }, 180_000);
});
