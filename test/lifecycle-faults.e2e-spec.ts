// No run stays open for ever: an agent that never comes back, a cancel while the agent is away,
// a connected agent that never reports. Real control plane, real agent process, real PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type AgentProcess, CuttableProxy, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getExecution, getOutput, run, waitForStatus } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { ProtocolAgent } from './support/protocol-agent.js';
import { killGroups, waitFor } from './support/processes.js';

const LOST_SECONDS = 4;
let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
const agents: AgentProcess[] = [];
const tmpFiles: string[] = [];
const groups: number[] = [];

function tmpFile(ext: string): string {
  const f = path.join(os.tmpdir(), `devpilot-e2e-${randomBytes(6).toString('hex')}.${ext}`);
  tmpFiles.push(f);
  return f;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function serverStatus(serverId: string): Promise<string> {
  return (await api.get(`/api/v1/servers/${serverId}`)).body.status;
}

/** A script that says it started and records its pid (its process group, for cleanup). */
async function longScript(pidFile: string, opts: { timeoutSeconds?: number } = {}) {
  return createScript(api, `echo $$ > '${pidFile}'; echo started; sleep 120`, opts);
}

async function started(executionId: string, pidFile: string): Promise<number> {
  await waitFor('the script started', async () => (await getOutput(api, executionId)).bytes.toString() === 'started\n', 30_000);
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  groups.push(pid);
  return pid;
}

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({
    databaseUrl: db.url,
    env: { DEVPILOT_SWEEP_INTERVAL_MS: '250', DEVPILOT_AGENT_LOST_SECONDS: String(LOST_SECONDS), DEVPILOT_RUN_TIMEOUT_GRACE_SECONDS: '1' },
  });
  api = new Api(cp.url, cp.adminKey);
});

afterAll(async () => {
  killGroups(groups);
  for (const a of agents) await a.stop();
  await cp?.stop();
  await db?.drop();
  for (const f of tmpFiles) await rm(f, { force: true });
});

describe('running means spawned (protocol 2)', () => {
  it("keeps a run the agent accepted into its own queue dispatched, with no start time, until its process is spawned", async () => {
    const server = await createServer(api, 'l-queue');
    agents.push(await startAgent({ url: cp.url, token: server.agentToken, concurrency: 1 }));
    await waitFor('online', async () => (await serverStatus(server.id)) === 'online', 30_000);
    const pidFile = tmpFile('pid');
    const first = await run(api, (await createScript(api, `echo $$ > '${pidFile}'; echo started; sleep 3`)).id, server.id);
    await started(first.executionId, pidFile);
    const second = await run(api, (await createScript(api, 'echo second')).id, server.id);
    // The agent has accepted it (its answer is recorded), but it waits behind the first.
    await waitFor('the agent accepted the second start', async () => {
      const [row] = await db.query<{ accepted_at: Date | null }>(`SELECT accepted_at FROM execution WHERE id = $1`, [second.executionId]);
      return row?.accepted_at ? true : undefined;
    });
    const queued = await getExecution(api, second.executionId);
    expect(queued.status).toBe('dispatched');
    expect(queued.startedAt).toBeNull();
    const done = await waitForStatus(api, second.executionId, 'succeeded');
    expect(Date.parse(done.startedAt)).toBeGreaterThan(Date.parse((await getExecution(api, first.executionId)).finishedAt) - 1000);
  });
});

describe('no run left open for ever', () => {
  it('marks a run lost, with its reason, when its agent was SIGKILLed and never comes back', async () => {
    const server = await createServer(api, 'l-killed');
    const agent = await startAgent({ url: cp.url, token: server.agentToken });
    agents.push(agent);
    await waitFor('online', async () => (await serverStatus(server.id)) === 'online', 30_000);
    const pidFile = tmpFile('pid');
    const { executionId } = await run(api, (await longScript(pidFile)).id, server.id);
    await started(executionId, pidFile);
    await agent.stop('SIGKILL');
    await waitFor('offline', async () => (await serverStatus(server.id)) === 'offline', 30_000);
    const e = await waitForStatus(api, executionId, 'lost', 60_000);
    expect(e.error).toBe(`its agent was disconnected for more than ${LOST_SECONDS} s`);
    expect(e.finishedAt).toBeTruthy();
    expect(e.durationMs).toBeGreaterThan(0);
  });

  it('cancels a run at once while its agent is offline, and the agent kills it when it returns', async () => {
    const proxy = await CuttableProxy.start(cp.port);
    try {
      const server = await createServer(api, 'l-cancel-offline');
      agents.push(await startAgent({ url: proxy.url, token: server.agentToken }));
      await waitFor('online', async () => (await serverStatus(server.id)) === 'online', 30_000);
      const pidFile = tmpFile('pid');
      const { executionId } = await run(api, (await longScript(pidFile)).id, server.id);
      const pid = await started(executionId, pidFile);

      proxy.block();
      await waitFor('offline', async () => (await serverStatus(server.id)) === 'offline', 30_000);
      const r = await api.post(`/api/v1/executions/${executionId}/cancel`);
      expect(r.status).toBe(202);
      expect(r.body.status).toBe('cancelled');
      expect(r.body.error).toMatch(/agent was offline/);
      expect(alive(pid)).toBe(true); // nobody could tell the agent yet

      proxy.resume();
      await waitFor('the script killed by its returning agent', () => !alive(pid), 30_000);
      const e = await getExecution(api, executionId);
      expect(e.status).toBe('cancelled');
      expect(await serverStatus(server.id)).toBe('online');
    } finally {
      await proxy.close();
    }
  });

  it('ends a run timed_out when its connected agent never reports, and tells the agent to stop it', async () => {
    const server = await createServer(api, 'l-silent');
    const agent = await ProtocolAgent.connect(cp.url, server.agentToken);
    try {
      const script = await createScript(api, 'sleep 100', { timeoutSeconds: 1 });
      const { executionId } = await run(api, script.id, server.id);
      await agent.waitForStart(executionId);
      const e = await waitForStatus(api, executionId, 'timed_out', 60_000);
      expect(e.error).toMatch(/no end was reported within its timeout/);
      await waitFor('execution.cancel sent to the agent', () => agent.cancels.includes(executionId), 30_000);
      // A report that comes after the control plane ended it changes nothing.
      expect(await agent.finished(executionId, -1, { exitCode: 0 })).toEqual({ ok: true });
      expect((await getExecution(api, executionId)).status).toBe('timed_out');
    } finally {
      agent.close();
    }
  });
});
