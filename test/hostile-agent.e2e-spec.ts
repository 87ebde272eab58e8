// A malicious agent: it holds a valid token for server A and uses it against everything else.
// Forged and foreign execution ids, out-of-range and gapped seqs, oversized and malformed
// messages, floods. It is refused or disconnected; nothing of server B (same workspace) or of
// server C (another workspace) changes; the control plane stays up and keeps serving B.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { AgentEvents, MAX_CHUNKS_PER_BATCH } from '@app/protocol';
import { randomUUID } from 'node:crypto';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getExecution, getOutput, run, waitForStatus } from './support/executions.js';
import { recordFigure } from './support/figures.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { sleep, waitFor } from './support/processes.js';
import { ProtocolAgent } from './support/protocol-agent.js';
import { createWebhook, triggerWith } from './support/webhook-fixtures.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
let otherApi: Api;
const sockets: ProtocolAgent[] = [];
const tried: Record<string, number> = {};
const count = (what: string, n = 1) => (tried[what] = (tried[what] ?? 0) + n);

/** Server B's honest agent and one running execution of B with two stored chunks. */
let victim: { serverId: string; agent: ProtocolAgent; executionId: string; hookToken: string };
/** Server C, in another workspace, the same. */
let foreign: { agent: ProtocolAgent; executionId: string };
/**
 * Server A, the attacker's: a new one per test, since the limits (rightly) remember what an
 * agent did and the tests must not depend on each other's order.
 */
let attacker: { serverId: string; token: string };
async function newAttacker(name: string) {
  const a = await createServer(api, name);
  attacker = { serverId: a.id, token: a.agentToken };
}

async function connect(token: string, opts?: Parameters<typeof ProtocolAgent.connect>[2]) {
  const a = await ProtocolAgent.connect(cp.url, token, opts);
  sockets.push(a);
  return a;
}

async function runningOn(owner: Api, serverId: string, agent: ProtocolAgent): Promise<string> {
  const script = await createScript(owner, 'echo x');
  const { executionId } = await run(owner, script.id, serverId);
  await agent.waitForStart(executionId);
  await waitForStatus(owner, executionId, 'running');
  return executionId;
}

const outputRows = async (id: string) => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM execution_output WHERE execution_id = $1', [id]))[0]!.n;

/** Nothing of B or C changed: same status, same stored bytes, agents still connected. */
async function othersUntouched() {
  const b = await getExecution(api, victim.executionId);
  expect(b).toMatchObject({ status: 'running', outputBytes: 6 });
  expect((await getOutput(api, victim.executionId)).bytes.toString()).toBe('b0\nb1\n');
  expect(await outputRows(victim.executionId)).toBe(2);
  const c = await getExecution(otherApi, foreign.executionId);
  expect(c).toMatchObject({ status: 'running', outputBytes: 0 });
  expect(victim.agent.connected).toBe(true);
  expect(foreign.agent.connected).toBe(true);
}

/** The control plane serves others: /health, and a trigger of B's webhook that B's agent gets. */
async function servesOthers() {
  expect(cp.proc.running).toBe(true);
  expect((await fetch(`${cp.url}/health`)).status).toBe(200);
  const r = await triggerWith(cp.url, victim.hookToken);
  expect(r.status).toBe(202);
  await victim.agent.waitForStart(r.body.executionId);
  return r.body.executionId as string;
}

beforeAll(async () => {
  db = await createTestDatabase();
  // A short grace so a run held open by a gap is given up on within the test.
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_REPORT_GRACE_SECONDS: '1', DEVPILOT_SWEEP_INTERVAL_MS: '250' } });
  api = new Api(cp.url, cp.adminKey);
  const ws = await api.post('/api/v1/workspaces', { name: 'someone else' });
  otherApi = new Api(cp.url, ws.body.apiKey);

  const b = await createServer(api, 'victim-b');
  const bAgent = await connect(b.agentToken);
  const bExec = await runningOn(api, b.id, bAgent);
  expect(await bAgent.output(bExec, [{ seq: 0, stream: 'stdout', data: 'b0\n' }, { seq: 1, stream: 'stdout', data: 'b1\n' }])).toEqual({ ackedSeq: 1 });
  const hookScript = await createScript(api, 'echo hook');
  const hook = await createWebhook(api, hookScript.id, { serverId: b.id });
  victim = { serverId: b.id, agent: bAgent, executionId: bExec, hookToken: hook.token };

  const c = await createServer(otherApi, 'foreign-c');
  const cAgent = await connect(c.agentToken);
  foreign = { agent: cAgent, executionId: await runningOn(otherApi, c.id, cAgent) };
});

afterEach(async () => {
  // The attacker's sockets go; B's and C's stay for the whole file.
  for (const s of sockets.splice(2)) s.close();
});

afterAll(async () => {
  recordFigure('hostile-agent', { tried });
  if (process.env.SHOW_CP_LOGS) process.stdout.write(cp?.proc.logs.slice(-20000) ?? '');
  for (const s of sockets) s.close();
  await cp?.stop();
  await db?.drop();
});

describe('forged ids and seqs', () => {
  it('cannot report on forged ids, on B’s or on another workspace’s executions, in output, finished or hello', async () => {
    await newAttacker('a-forged-ids');
    const a = await connect(attacker.token);
    const targets = [randomUUID(), victim.executionId, foreign.executionId, '00000000-0000-0000-0000-000000000000'];
    for (const id of targets) {
      for (const seq of [0, 2, 1000]) {
        const r = await a.output(id, [{ seq, stream: 'stdout', data: 'forged' }]);
        expect(r).toEqual({ error: { code: 'UNKNOWN_EXECUTION', message: expect.any(String) } });
        count('forged or foreign execution id');
      }
      for (const [exitCode, extra] of [[0, {}], [1, { cancelled: true }], [null, { timedOut: true, signal: 'SIGKILL' }]] as const) {
        expect(await a.finished(id, 1, { exitCode, ...extra })).toEqual({ error: { code: 'UNKNOWN_EXECUTION', message: expect.any(String) } });
        count('forged or foreign execution id');
      }
    }
    for (const id of ['not-a-uuid', '', 'x'.repeat(10_000), "'; DROP TABLE execution; --"]) {
      expect(await a.output(id, [{ seq: 0, stream: 'stdout', data: 'x' }])).toEqual({ error: { code: 'INVALID_PAYLOAD', message: expect.any(String) } });
      count('malformed execution id');
    }
    // A hello that claims B's and C's executions as its own, running or finished.
    const report = (executionId: string) => ({ executionId, exitCode: 0, signal: null, timedOut: false, cancelled: false, lastSeq: 5, outputBytes: 1, truncated: false, error: null });
    const claims = await connect(attacker.token, {
      hello: { running: [{ executionId: victim.executionId, nextSeq: 0 }], finished: [report(foreign.executionId), report(randomUUID())] },
    });
    count('hello claiming others’ executions');
    expect(claims.helloReply).toEqual({ resend: [] });
    await othersUntouched();
    await servesOthers();
  });

  it('refuses negative, fractional, huge and out-of-order seqs on its own execution; a gap never completes it', async () => {
    await newAttacker('a-seqs');
    const a = await connect(attacker.token);
    const own = await runningOn(api, attacker.serverId, a);
    const bad: unknown[][] = [
      [{ seq: -1 }],
      [{ seq: -2_147_483_648 }],
      [{ seq: 0.5 }],
      [{ seq: 2_147_483_648 }],
      [{ seq: Number.MAX_SAFE_INTEGER }],
      [{ seq: 1e308 }],
      [{ seq: null }],
      [{ seq: '0' }],
      [{ seq: 3 }, { seq: 3 }],
      [{ seq: 5 }, { seq: 4 }],
    ];
    for (const chunks of bad) {
      const r = await a.request(AgentEvents.output, {
        executionId: own,
        chunks: chunks.map((c) => ({ stream: 'stdout', data: Buffer.from('x'), ...(c as object) })),
      });
      expect(r).toEqual({ error: { code: 'INVALID_PAYLOAD', message: expect.any(String) } });
      count('out-of-range or out-of-order seq');
    }
    for (const lastSeq of [-2, 2_147_483_648, 1.5, Number.MAX_SAFE_INTEGER]) {
      expect(await a.finished(own, lastSeq)).toEqual({ error: { code: 'INVALID_PAYLOAD', message: expect.any(String) } });
      count('out-of-range or out-of-order seq');
    }
    expect(await outputRows(own)).toBe(0);
    // The largest seq the column holds is stored; a gap before it holds the execution open.
    expect(await a.output(own, [{ seq: 0, stream: 'stdout', data: 'a' }])).toEqual({ ackedSeq: 0 });
    expect(await a.output(own, [{ seq: 2_147_483_647, stream: 'stdout', data: 'z' }])).toEqual({ ackedSeq: 2_147_483_647 });
    expect(await a.finished(own, 2_147_483_647)).toEqual({ ok: true });
    count('gapped seqs', 3);
    // The ack is sent once the report is either held or has completed the run: it is held.
    const [held] = await db.query<{ held: boolean }>(`SELECT finish_report IS NOT NULL AS held FROM execution WHERE id = $1`, [own]);
    expect(held?.held).toBe(true);
    expect((await getExecution(api, own)).status).toBe('running');
    // It stays open until the grace runs out without the missing output; an end is final, so ending
    // `lost` proves it never completed in between.
    expect((await waitForStatus(api, own, 'lost', 20_000)).error).toMatch(/not all of its output arrived/);
    await othersUntouched();
  });
});

describe('seqs past what is stored', () => {
  it('a seq of 2^31 anywhere (output, finished, hello) is refused with INVALID_PAYLOAD; the connection survives and keeps working', async () => {
    await newAttacker('a-seq-2-31');
    const a = await connect(attacker.token);
    const own = await runningOn(api, attacker.serverId, a);
    const invalid = { error: { code: 'INVALID_PAYLOAD', message: expect.any(String) } };
    expect(await a.output(own, [{ seq: 2 ** 31, stream: 'stdout', data: 'x' }])).toEqual(invalid);
    expect(await a.finished(own, 2 ** 31)).toEqual(invalid);
    expect(await a.request(AgentEvents.hello, { running: [{ executionId: own, nextSeq: 2 ** 31 }], finished: [] })).toEqual(invalid);
    count('seq 2^31', 3);
    expect(a.connected).toBe(true);
    expect(await outputRows(own)).toBe(0);
    // Still served on the same connection.
    expect(await a.output(own, [{ seq: 0, stream: 'stdout', data: 'ok' }])).toEqual({ ackedSeq: 0 });
    expect(await a.finished(own, 0, { outputBytes: 2 })).toEqual({ ok: true });
    expect(await getExecution(api, own)).toMatchObject({ status: 'succeeded', outputBytes: 2 });
    expect(a.connected).toBe(true);
    await othersUntouched();
  });
});

describe('runs it never ends', () => {
  it('a run held open by a gap is lost once no more output came for the grace, and the agent is told to stop it', async () => {
    await newAttacker('a-overdue');
    const a = await connect(attacker.token);
    const script = await createScript(api, 'sleep 100');
    const { executionId: own } = await run(api, script.id, attacker.serverId);
    await a.waitForStart(own);
    await waitForStatus(api, own, 'running');
    expect(await a.output(own, [{ seq: 0, stream: 'stdout', data: 'a' }])).toEqual({ ackedSeq: 0 });
    expect(await a.output(own, [{ seq: 2, stream: 'stdout', data: 'c' }])).toEqual({ ackedSeq: 2 });
    expect(await a.finished(own, 2)).toEqual({ ok: true });
    count('gapped run never completed');
    // A grace of 1 s without more output, then the next sweep.
    const lost = await waitForStatus(api, own, 'lost', 20_000);
    expect(lost.error).toMatch(/reported the end of this run, but not all of its output arrived/);
    await waitFor('the agent told to stop it', () => a.cancels.includes(own), 10_000);
    // What was stored stays; the history says why it ended.
    expect(await outputRows(own)).toBe(2);
    await othersUntouched();
  });

  it('an honest agent away longer than the grace with output still to send completes the run when it comes back', async () => {
    await newAttacker('a-honest-away');
    const a = await connect(attacker.token);
    const own = await runningOn(api, attacker.serverId, a);
    expect(await a.output(own, [{ seq: 0, stream: 'stdout', data: 'first\n' }])).toEqual({ ackedSeq: 0 });
    // The end is reported before the last chunk got through; then the connection drops.
    const report = { executionId: own, exitCode: 0, signal: null, timedOut: false, cancelled: false, lastSeq: 1, outputBytes: 12, truncated: false, error: null };
    expect(await a.finished(own, 1, { outputBytes: 12 })).toEqual({ ok: true });
    a.close();
    await sleep(2500); // well past the grace of 1 s, with sweeps every 250 ms
    expect((await getExecution(api, own)).status).toBe('running');
    // Back: its hello holds the report again and learns where to resend from.
    const back = await connect(attacker.token, { hello: { running: [], finished: [report] } });
    expect(back.helloReply).toEqual({ resend: [{ executionId: own, fromSeq: 1 }] });
    expect(await back.output(own, [{ seq: 1, stream: 'stdout', data: 'second\n' }])).toEqual({ ackedSeq: 1 });
    await waitForStatus(api, own, 'succeeded');
    expect((await getOutput(api, own)).bytes.toString()).toBe('first\nsecond\n');
  });
});

describe('oversized and malformed messages', () => {
  it('is disconnected for a message past the size limit, too many attachments, or nesting past 32 levels; others are not', async () => {
    await newAttacker('a-oversized');
    const a0 = await connect(attacker.token);
    const own = await runningOn(api, attacker.serverId, a0);
    a0.close();
    const attempts: [string, (a: ProtocolAgent) => void][] = [
      ['over 8 MiB', (a) => a.socket.emit(AgentEvents.output, { executionId: own, chunks: [{ seq: 0, stream: 'stdout', data: Buffer.alloc(9 * 1024 * 1024) }] }, () => undefined)],
      [
        'too many binary attachments',
        (a) =>
          a.socket.emit(
            AgentEvents.output,
            { executionId: own, chunks: Array.from({ length: MAX_CHUNKS_PER_BATCH + 100 }, (_, seq) => ({ seq, stream: 'stdout', data: Buffer.from('x') })) },
            () => undefined,
          ),
      ],
      ['a 7 MiB string', (a) => a.socket.emit(AgentEvents.output, { executionId: 'x'.repeat(7 * 1024 * 1024), chunks: [] }, () => undefined)],
    ];
    for (const [what, send] of attempts) {
      const a = await connect(attacker.token);
      send(a);
      // Either refused with an error ack or disconnected: what matters is that it ends and nothing is stored.
      await waitFor(`${what}: disconnected or refused`, async () => !a.connected || (await a.request(AgentEvents.output, null).then((r) => 'error' in r, () => true)), 20_000);
      count('oversized message');
    }
    // Nesting past the protocol's depth limit costs the connection before it is parsed.
    let deep: unknown = { seq: 0, stream: 'stdout', data: Buffer.from('x') };
    for (let i = 0; i < 2000; i++) deep = [deep];
    for (const payload of [deep, { executionId: own, chunks: deep }]) {
      const d = await connect(attacker.token);
      d.socket.emit(AgentEvents.output, payload, () => undefined);
      await waitFor('deep nesting: disconnected', () => !d.connected);
      count('deeply nested message');
    }
    // Odd shapes: refused with an error ack, the connection stays.
    const a = await connect(attacker.token);
    for (const payload of [{ executionId: own, chunks: [{ seq: 0, stream: 'stdout', data: { type: 'Buffer', data: [1] } }] }, { __proto__: { executionId: own } }, [[[]]]]) {
      const r = await a.request(AgentEvents.output, payload);
      expect(r).toEqual({ error: { code: 'INVALID_PAYLOAD', message: expect.any(String) } });
      count('malformed message');
    }
    expect(a.connected).toBe(true);
    expect(await outputRows(own)).toBe(0);
    await othersUntouched();
    await servesOthers();
  });
});

describe('floods', () => {
  async function transactions(): Promise<number> {
    // Statistics are flushed at most once a second per backend: wait for them to settle.
    await sleep(1500);
    const [r] = await db.query<{ n: string }>(`SELECT (xact_commit + xact_rollback)::text AS n FROM pg_stat_database WHERE datname = $1`, [db.name]);
    return Number(r!.n);
  }

  it('a flood of reports on unknown executions is cut off: bounded database work, B keeps being served', async () => {
    await newAttacker('a-flood-unknown');
    const a = await connect(attacker.token);
    const before = await transactions();
    const FLOOD = 5000;
    let acks = 0;
    for (let i = 0; i < FLOOD; i++) {
      a.socket.emit(AgentEvents.output, { executionId: randomUUID(), chunks: [{ seq: 0, stream: 'stdout', data: Buffer.from('x') }] }, () => acks++);
    }
    count('flood: unknown-execution reports', FLOOD);
    // Meanwhile B is served: triggers are accepted and reach B's agent.
    const served = await Promise.all(Array.from({ length: 5 }, () => servesOthers()));
    await waitFor('the attacker disconnected', () => !a.connected, 30_000);
    const after = await transactions();
    const spent = after - before;
    // B's five triggers and their dispatch cost a few dozen; the flood may cost a small part of itself.
    expect(spent).toBeLessThan(FLOOD / 5);
    expect(acks).toBeLessThan(FLOOD);
    await othersUntouched();
    expect(served).toHaveLength(5);
    recordFigure('hostile-agent-flood', { flood: FLOOD, acked: acks, transactions: spent });
  });

  it('a flood of malformed messages and unknown events is cut off too; B keeps being served', async () => {
    await newAttacker('a-flood-garbage');
    const a = await connect(attacker.token);
    const FLOOD = 20_000;
    for (let i = 0; i < FLOOD; i++) {
      if (i % 2) a.socket.emit(AgentEvents.finished, { garbage: i }, () => undefined);
      else a.socket.emit(`no.such.event.${i % 7}`, i);
    }
    count('flood: malformed messages', FLOOD);
    await servesOthers();
    await waitFor('the attacker disconnected', () => !a.connected, 30_000);
    await othersUntouched();
  });

  it('a well-behaved agent with many batches in flight is never cut off by the limits', async () => {
    await newAttacker('a-honest-burst');
    const a = await connect(attacker.token);
    const own = await runningOn(api, attacker.serverId, a);
    // A fast but honest stream: 2000 batches, many in flight at once, each acked.
    const replies = await Promise.all(
      Array.from({ length: 2000 }, (_, seq) => a.output(own, [{ seq, stream: 'stdout', data: `${seq}\n` }])),
    );
    expect(replies.every((r, seq) => r.ackedSeq === seq)).toBe(true);
    expect(a.connected).toBe(true);
    expect(await outputRows(own)).toBe(2000);
    count('honest burst: batches in flight', 2000);
    await othersUntouched();
  });

  it('batches in flight at once that repeat a seq (a resend racing the original) store it once, the first bytes kept, each batch acked on its own', async () => {
    await newAttacker('a-overlap');
    const a = await connect(attacker.token);
    const own = await runningOn(api, attacker.serverId, a);
    const replies = await Promise.all([
      a.output(own, [{ seq: 0, stream: 'stdout', data: 'zero\n' }]),
      a.output(own, [{ seq: 1, stream: 'stdout', data: 'one\n' }, { seq: 2, stream: 'stdout', data: 'two\n' }]),
      a.output(own, [{ seq: 2, stream: 'stdout', data: 'TWO\n' }, { seq: 3, stream: 'stderr', data: 'three\n' }]),
      a.output(own, [{ seq: 1, stream: 'stdout', data: 'ONE\n' }]),
    ]);
    expect(replies).toEqual([{ ackedSeq: 0 }, { ackedSeq: 2 }, { ackedSeq: 3 }, { ackedSeq: 1 }]);
    expect(await outputRows(own)).toBe(4);
    expect(await a.finished(own, 3, { outputBytes: 19 })).toEqual({ ok: true });
    await waitForStatus(api, own, 'succeeded');
    expect((await getOutput(api, own)).bytes.toString()).toBe('zero\none\ntwo\nthree\n');
    expect((await getExecution(api, own)).outputBytes).toBe(19);
  });
});
