// The faults of relay-faults.e2e-spec, each repeated with random timing: the control plane
// SIGKILLed at a random point of a stream while triggers keep arriving, the agent's connection cut
// at random moments, the agent SIGKILLed at a random point of a run. Nothing accepted is
// forgotten, output stays byte-identical, no run stays `running`.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type AgentProcess, CuttableProxy, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getExecution, getOutput, run, waitForStatus, waitForTerminal } from './support/executions.js';
import { recordFigure } from './support/figures.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { killGroups, sleep, waitFor } from './support/processes.js';
import { createWebhook, triggerWith } from './support/webhook-fixtures.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
const agents: AgentProcess[] = [];
const tmpFiles: string[] = [];
const orphanGroups: number[] = [];
const figures: Record<string, unknown> = {};

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const rand = (min: number, max: number) => min + Math.random() * (max - min);
function tmpFile(ext: string): string {
  const f = path.join(os.tmpdir(), `devpilot-rep-${randomBytes(6).toString('hex')}.${ext}`);
  tmpFiles.push(f);
  return f;
}
/** `chunks` x 64 KiB of random bytes, paced, also written to `file` to compare with. */
const paced = (file: string, chunks: number, pause: string) =>
  `for i in $(seq 1 ${chunks}); do head -c 65536 /dev/urandom; sleep ${pause}; done | tee '${file}'`;

async function agentFor(name: string, url = cp.url) {
  const server = await createServer(api, name);
  const agent = await startAgent({ url, token: server.agentToken, concurrency: 8 });
  agents.push(agent);
  await waitFor('the agent online', async () => (await api.get(`/api/v1/servers/${server.id}`)).body.status === 'online', 30_000);
  return { server, agent };
}

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_SWEEP_INTERVAL_MS: '500' } });
  api = new Api(cp.url, cp.adminKey);
});

afterAll(async () => {
  recordFigure('faults-repeated', figures);
  killGroups(orphanGroups);
  for (const a of agents) await a.stop();
  await cp?.stop();
  await db?.drop();
  for (const f of tmpFiles) await rm(f, { force: true });
});

describe('repeated with random timing', () => {
  it('control plane SIGKILLed 3 times at random points of streams, triggers arriving throughout: nothing accepted forgotten, output byte-identical', async () => {
    const { server } = await agentFor('rep-cp-kill');
    const quick = await createScript(api, 'echo quick');
    const hook = await createWebhook(api, quick.id, { serverId: server.id });
    const accepted: string[] = [];
    let refusedWhileDown = 0;
    let running = true;
    // Triggers all along: while it is down they cannot connect (that is not an acceptance).
    const caller = (async () => {
      for (let i = 0; running && i < 10_000; i++) {
        const r = await triggerWith(cp.url, hook.token).catch(() => null);
        if (r?.status === 202) accepted.push(r.body.executionId);
        else refusedWhileDown++;
        await sleep(rand(20, 80));
      }
    })();
    const streams: { id: string; file: string; chunks: number }[] = [];
    const killPoints: number[] = [];
    try {
      for (let round = 0; round < 3; round++) {
        const file = tmpFile('bin');
        const chunks = 60;
        const script = await createScript(api, paced(file, chunks, '0.03'));
        const { executionId } = await run(api, script.id, server.id);
        streams.push({ id: executionId, file, chunks });
        const atBytes = Math.floor(rand(0.1, 2.5) * 1024 * 1024);
        killPoints.push(atBytes);
        await waitFor('output to the kill point', async () => (await getExecution(api, executionId)).outputBytes >= atBytes, 30_000);
        expect((await cp.stop('SIGKILL')).signal).toBe('SIGKILL');
        await sleep(rand(0, 1500));
        await cp.restart();
      }
    } finally {
      running = false;
      await caller;
    }
    for (const s of streams) {
      const e = await waitForTerminal(api, s.id, 90_000);
      expect(e.status).toBe('succeeded');
      const written = readFileSync(s.file);
      expect(written.length).toBe(s.chunks * 65536);
      expect(sha256((await getOutput(api, s.id)).bytes)).toBe(sha256(written));
    }
    expect(accepted.length).toBeGreaterThan(10);
    for (const id of accepted) expect((await waitForTerminal(api, id, 90_000)).status).toBe('succeeded');
    figures.controlPlaneKills = { rounds: 3, killAtBytes: killPoints, acceptedTriggers: accepted.length, callsWhileDown: refusedWhileDown, streams: streams.length };
  }, 200_000);

  it('agent connection cut 6 times at random moments of one stream: complete and in order', async () => {
    const proxy = await CuttableProxy.start(cp.port);
    try {
      const { server } = await agentFor('rep-cut', proxy.url);
      const file = tmpFile('bin');
      const chunks = 80;
      const script = await createScript(api, paced(file, chunks, '0.04'));
      const { executionId } = await run(api, script.id, server.id);
      await waitFor('output', async () => (await getExecution(api, executionId)).outputBytes > 0, 30_000);
      const gaps: number[] = [];
      for (let cut = 0; cut < 6; cut++) {
        const gap = Math.round(rand(100, 600));
        gaps.push(gap);
        await sleep(gap);
        proxy.cut();
        await waitFor('the agent back', () => proxy.connections > 0, 30_000);
      }
      const e = await waitForTerminal(api, executionId, 60_000);
      expect(e.status).toBe('succeeded');
      expect(e.outputBytes).toBe(chunks * 65536);
      expect(sha256((await getOutput(api, executionId)).bytes)).toBe(sha256(readFileSync(file)));
      const [{ n, max }] = await db.query<{ n: number; max: number }>('SELECT count(*)::int AS n, max(seq)::int AS max FROM execution_output WHERE execution_id = $1', [executionId]);
      expect(n).toBe(max! + 1);
      figures.connectionCuts = { cuts: 6, msBetween: gaps };
    } finally {
      await proxy.close();
    }
  }, 120_000);

  it('agent SIGKILLed 3 times at random points of a run: each run lost, none stuck running', async () => {
    const server = await createServer(api, 'rep-agent-kill');
    const delays: number[] = [];
    for (let round = 0; round < 3; round++) {
      const agent = await startAgent({ url: cp.url, token: server.agentToken });
      agents.push(agent);
      await waitFor('the agent online', async () => (await api.get(`/api/v1/servers/${server.id}`)).body.status === 'online', 30_000);
      const pidFile = tmpFile('pid');
      const script = await createScript(api, `echo $$ > '${pidFile}'; i=0; while [ $i -lt 600 ]; do echo "tick $i"; i=$((i+1)); sleep 0.1; done`);
      const { executionId } = await run(api, script.id, server.id);
      await waitForStatus(api, executionId, 'running', 20_000);
      // Read only once the script made it: a file this (root) test created first would not be
      // writable by the script's unprivileged user, and the pid would never arrive.
      await waitFor('the pid file', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '');
      orphanGroups.push(Number(readFileSync(pidFile, 'utf8').trim()));
      const delay = Math.round(rand(0, 1500));
      delays.push(delay);
      await sleep(delay);
      await agent.stop('SIGKILL');
      agents.push(await startAgent({ url: cp.url, token: server.agentToken }));
      const e = await waitForStatus(api, executionId, 'lost', 30_000);
      expect(e.finishedAt).toBeTruthy();
      await agents.pop()!.stop();
    }
    const stuck = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM execution WHERE server_id = $1 AND status IN ('running', 'dispatched')`, [server.id]);
    expect(stuck[0]!.n).toBe(0);
    figures.agentKills = { rounds: 3, killAfterMs: delays };
  }, 120_000);
});
