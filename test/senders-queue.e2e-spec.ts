import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type AgentProcess, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getExecution, waitForStatus, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { TRIGGER_PATH } from './support/webhook-fixtures.js';

/**
 * The `queue` concurrency policy with a real agent (which would run eight at once): one run of the
 * webhook at a time, in acceptance order; any end of the run ahead (failed, cancelled) lets the
 * next one go; PATCH turns it on and off; a run waiting behind the policy never expires as
 * undeliverable. The scripts record their own start and end, so overlap is read from what ran.
 */
interface Node {
  db: TestDatabase;
  cp: ControlPlane;
  api: Api;
  agent: AgentProcess;
  serverId: string;
}

/** Sweeps every ten minutes: only the live paths (a run's end, a PATCH) can hand the next run over. */
let live: Node;
/** Sweeps five times a second with a 2 s delivery deadline, for the deadline tests. */
let swept: Node;
let cp: ControlPlane;
let api: Api;
let serverId: string;
/** Scripts run as another user: they write their records and read their gates here. */
let dir: string;

const DEADLINE_SECONDS = 2;

/** A control plane on a database of its own, with an agent. */
async function startNode(env: NodeJS.ProcessEnv): Promise<Node> {
  const db = await createTestDatabase();
  const node = await startControlPlane({ databaseUrl: db.url, env });
  const nodeApi = new Api(node.url, node.adminKey);
  const server = await createServer(nodeApi, 'queueing');
  const agent = await startAgent({ url: node.url, token: server.agentToken, concurrency: 8 });
  await waitFor('the agent online', async () => (await nodeApi.get(`/api/v1/servers/${server.id}`)).body.status === 'online');
  return { db, cp: node, api: nodeApi, agent, serverId: server.id };
}

beforeAll(async () => {
  live = await startNode({ DEVPILOT_SWEEP_INTERVAL_MS: '600000' });
  ({ cp, api, serverId } = live);
  dir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-queue-'));
  await chmod(dir, 0o777);
});

afterAll(async () => {
  for (const n of [live, swept]) {
    await n?.agent.stop();
    await n?.cp.stop();
    await n?.db.drop();
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function queueHook(content: string, concurrency = 'queue'): Promise<{ id: string; token: string }> {
  const script = await createScript(api, content);
  const r = await api.post(`/api/v1/scripts/${script.id}/webhooks`, { name: 'queued deploys', serverId, concurrency });
  expect(r.status).toBe(201);
  expect(r.body.concurrency).toBe(concurrency);
  return { id: r.body.id as string, token: r.body.token as string };
}

async function call(token: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${cp.url}${TRIGGER_PATH}/${token}`, { method: 'POST' });
  return { status: res.status, body: await res.json() };
}

/** Each run appends `start <id>` and `end <id>` (one short O_APPEND write each: no lock needed). */
const recorder = (file: string, body: string) =>
  `echo "start $DEVPILOT_EXECUTION_ID" >> ${file}\n${body}\necho "end $DEVPILOT_EXECUTION_ID" >> ${file}\n`;

/** Blocks until the test writes the run's gate file; exits with the code written in it. */
const gated = (gates: string) => `while [ ! -s "${gates}/$DEVPILOT_EXECUTION_ID" ]; do sleep 0.05; done\nexit "$(cat "${gates}/$DEVPILOT_EXECUTION_ID")"`;

const open = (gates: string, id: string, exitCode: number) => writeFile(path.join(gates, id), String(exitCode));

async function newGates(name: string): Promise<string> {
  const gates = path.join(dir, name);
  await mkdir(gates);
  await chmod(gates, 0o777);
  return gates;
}

describe('queue: one run of the webhook at a time, in acceptance order', () => {
  it('5 concurrent calls are all accepted and run one after the other, in the order of their queuedAt', async () => {
    const record = path.join(dir, 'five.log');
    const hook = await queueHook(recorder(record, 'sleep 0.4'));
    const answers = await Promise.all(Array.from({ length: 5 }, () => call(hook.token)));
    expect(answers.map((a) => a.status)).toEqual(Array(5).fill(202));
    // Only the first accepted can have gone to the agent at once; the others wait.
    expect(answers.filter((a) => a.body.status !== 'queued').length).toBeLessThanOrEqual(1);
    const ids = answers.map((a) => a.body.executionId as string);
    const runs = await Promise.all(ids.map((id) => waitForTerminal(api, id)));
    expect(runs.map((r) => r.status)).toEqual(Array(5).fill('succeeded'));

    const lines = (await readFile(record, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(10);
    // No overlap: every start is followed by the same run's end.
    const order: string[] = [];
    for (let i = 0; i < lines.length; i += 2) {
      const [start, end] = [lines[i]!.split(' '), lines[i + 1]!.split(' ')];
      expect({ start: start[0], end: end[0], same: start[1] === end[1] }).toEqual({ start: 'start', end: 'end', same: true });
      order.push(start[1]!);
    }
    // In acceptance order: the order of queuedAt (ties, which a lock makes impossible, by id).
    const accepted = [...runs].sort((a, b) => Date.parse(a.queuedAt) - Date.parse(b.queuedAt) || (a.id < b.id ? -1 : 1)).map((r) => r.id as string);
    expect(new Set(accepted.map((id) => runs.find((r) => r.id === id)!.queuedAt)).size).toBe(5);
    expect(order).toEqual(accepted);
  });

  it('a failed head, then a cancelled one, each let the next run go', async () => {
    const gates = await newGates('ends');
    const record = path.join(dir, 'ends.log');
    const hook = await queueHook(recorder(record, gated(gates)));
    const a = (await call(hook.token)).body.executionId as string;
    await waitForStatus(api, a, 'running');
    const b = (await call(hook.token)).body.executionId as string;
    const c = (await call(hook.token)).body.executionId as string;
    expect((await getExecution(api, b)).status).toBe('queued');

    await open(gates, a, 3);
    expect((await waitForTerminal(api, a)).status).toBe('failed');
    await waitForStatus(api, b, 'running');
    expect((await getExecution(api, c)).status).toBe('queued');

    expect((await api.post(`/api/v1/executions/${b}/cancel`)).status).toBe(202);
    expect((await waitForTerminal(api, b)).status).toBe('cancelled');
    await waitForStatus(api, c, 'running');
    await open(gates, c, 0);
    expect((await waitForTerminal(api, c)).status).toBe('succeeded');

    // Each started after the one ahead of it ended.
    const [ra, rb, rc] = await Promise.all([a, b, c].map((id) => getExecution(api, id)));
    expect(Date.parse(rb.startedAt)).toBeGreaterThanOrEqual(Date.parse(ra.finishedAt));
    expect(Date.parse(rc.startedAt)).toBeGreaterThanOrEqual(Date.parse(rb.finishedAt));
    const starts = (await readFile(record, 'utf8')).trim().split('\n').filter((l) => l.startsWith('start ')).map((l) => l.slice(6));
    expect(starts).toEqual([a, b, c]);
  });

  it('PATCH: leaving queue lets the waiting runs go at once; turning it on makes new calls wait', async () => {
    const gates = await newGates('patch');
    const hook = await queueHook(gated(gates));
    const a = (await call(hook.token)).body.executionId as string;
    await waitForStatus(api, a, 'running');
    const b = (await call(hook.token)).body.executionId as string;
    const c = (await call(hook.token)).body.executionId as string;
    expect((await getExecution(api, c)).status).toBe('queued');

    const edited = await api.patch(`/api/v1/webhooks/${hook.id}`, { concurrency: 'parallel' });
    expect(edited.status).toBe(200);
    expect(edited.body.concurrency).toBe('parallel');
    // Both run while the first still runs.
    await waitForStatus(api, b, 'running');
    await waitForStatus(api, c, 'running');
    expect((await getExecution(api, a)).status).toBe('running');

    expect((await api.patch(`/api/v1/webhooks/${hook.id}`, { concurrency: 'queue' })).body.concurrency).toBe('queue');
    const d = await call(hook.token);
    expect(d.status).toBe(202);
    expect(d.body.status).toBe('queued');
    for (const id of [a, b, c]) await open(gates, id, 0);
    await waitForStatus(api, d.body.executionId, 'running');
    for (const id of [a, b, c]) expect((await getExecution(api, id)).status).toBe('succeeded');
    await open(gates, d.body.executionId, 0);
    expect((await waitForTerminal(api, d.body.executionId)).status).toBe('succeeded');
  });

  it('deleting the webhook cancels the runs waiting behind it (nothing would keep them in turn); the running one goes on', async () => {
    const gates = await newGates('delete');
    const hook = await queueHook(gated(gates));
    const a = (await call(hook.token)).body.executionId as string;
    await waitForStatus(api, a, 'running');
    const waiting = [(await call(hook.token)).body.executionId as string, (await call(hook.token)).body.executionId as string];
    expect((await api.delete(`/api/v1/webhooks/${hook.id}`)).status).toBe(204);
    for (const id of waiting) {
      const run = await getExecution(api, id);
      expect([run.status, run.error]).toEqual(['cancelled', 'its webhook was deleted while it waited for the runs ahead of it (queue policy)']);
    }
    expect((await getExecution(api, a)).status).toBe('running');
    await open(gates, a, 0);
    expect((await waitForTerminal(api, a)).status).toBe('succeeded');
  });
});

describe('queue and the delivery deadline', () => {
  beforeAll(async () => {
    swept = await startNode({ DEVPILOT_SWEEP_INTERVAL_MS: '200', DEVPILOT_DELIVERY_DEADLINE_SECONDS: String(DEADLINE_SECONDS) });
    ({ cp, api, serverId } = swept);
  });

  it('a run waiting behind the policy longer than the delivery deadline is not undeliverable', async () => {
    const gates = await newGates('deadline');
    const hook = await queueHook(gated(gates));
    const head = await call(hook.token);
    await waitForStatus(api, head.body.executionId, 'running');
    const behind = await call(hook.token);
    expect(behind.status).toBe(202);
    expect(behind.body.status).toBe('queued');
    // Proof that a sweep ran after the waiting run's deadline: a run made later for a server with
    // no agent becomes undeliverable (its deadline is later than the waiting run's).
    const offline = await createServer(api, 'never-online');
    const orphan = await api.post(`/api/v1/scripts/${(await createScript(api, 'true')).id}/executions`, { serverId: offline.id });
    expect(orphan.status).toBe(202);
    const expired = await waitForTerminal(api, orphan.body.executionId, 30_000);
    expect(expired.status).toBe('undeliverable');
    const waiting = await getExecution(api, behind.body.executionId);
    expect(Date.parse(waiting.queuedAt) + DEADLINE_SECONDS * 1000).toBeLessThan(Date.parse(expired.finishedAt));
    expect(waiting.status).toBe('queued');

    await open(gates, head.body.executionId, 0);
    expect((await waitForTerminal(api, head.body.executionId)).status).toBe('succeeded');
    await open(gates, behind.body.executionId, 0);
    expect((await waitForTerminal(api, behind.body.executionId)).status).toBe('succeeded');
  });

  it('with the agent offline, the deadline of a waiting run starts when the run ahead of it expires', async () => {
    const offline = await createServer(api, 'offline-queue');
    const script = await createScript(api, 'true');
    const created = await api.post(`/api/v1/scripts/${script.id}/webhooks`, { name: 'offline', serverId: offline.id, concurrency: 'queue' });
    const [head, behind] = [await call(created.body.token), await call(created.body.token)];
    expect([head.body.status, behind.body.status]).toEqual(['queued', 'queued']);
    const expired = await waitForTerminal(api, head.body.executionId, 30_000);
    expect(expired.status).toBe('undeliverable');
    // Its own deadline counts from there: it was waiting behind the policy until then.
    const next = await waitForTerminal(api, behind.body.executionId, 30_000);
    expect(next.status).toBe('undeliverable');
    expect(Date.parse(next.deliverBy)).toBeGreaterThanOrEqual(Date.parse(expired.finishedAt) + DEADLINE_SECONDS * 1000);
    expect(Date.parse(next.finishedAt)).toBeGreaterThanOrEqual(Date.parse(expired.finishedAt) + DEADLINE_SECONDS * 1000);
  });
});
