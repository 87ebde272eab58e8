// The real agent and control plane when things go wrong: the control plane SIGKILLed mid-output,
// the agent's connection cut, the agent SIGKILLed, and 100 runs at once on a concurrency of 4.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type AgentProcess, CuttableProxy, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getExecution, getOutput, run, waitForStatus, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { killGroups, sleep, waitFor } from './support/processes.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
const agents: AgentProcess[] = [];
const tmpFiles: string[] = [];
const orphanGroups: number[] = [];

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
function tmpFile(ext: string): string {
  const f = path.join(os.tmpdir(), `devpilot-e2e-${randomBytes(6).toString('hex')}.${ext}`);
  tmpFiles.push(f);
  return f;
}

async function online(serverId: string) {
  await waitFor('the agent online', async () => (await api.get(`/api/v1/servers/${serverId}`)).body.status === 'online', 30_000);
}

async function agentFor(name: string, opts: { concurrency?: number; url?: string } = {}) {
  const server = await createServer(api, name);
  const agent = await startAgent({ url: opts.url ?? cp.url, token: server.agentToken, concurrency: opts.concurrency });
  agents.push(agent);
  await online(server.id);
  return { server, agent };
}

/** A script writing `chunks` x 128 KiB of random bytes, paced, also into `file` to compare with. */
const paced = (file: string, chunks: number, pause: string) =>
  `for i in $(seq 1 ${chunks}); do head -c 131072 /dev/urandom; sleep ${pause}; done | tee '${file}'`;

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_SWEEP_INTERVAL_MS: '500' } });
  api = new Api(cp.url, cp.adminKey);
});

afterAll(async () => {
  if (process.env.SHOW_CP_LOGS) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync('/tmp/faults-cp.log', cp?.proc.logs ?? '');
    writeFileSync('/tmp/faults-agents.log', agents.map((a) => a.proc.logs).join('\n=====\n'));
  }
  killGroups(orphanGroups);
  for (const a of agents) await a.stop();
  await cp?.stop();
  await db?.drop();
  for (const f of tmpFiles) await rm(f, { force: true });
});

describe('lossless under failures', () => {
  it('completes byte-identical when the control plane is SIGKILLed mid-output and started again', async () => {
    const { server } = await agentFor('f-restart');
    const file = tmpFile('bin');
    const script = await createScript(api, paced(file, 120, '0.02'));
    const { executionId } = await run(api, script.id, server.id);
    await waitFor('some output stored', async () => (await getExecution(api, executionId)).outputBytes >= 2 * 1024 * 1024, 30_000);
    const killed = await cp.stop('SIGKILL');
    expect(killed.signal).toBe('SIGKILL');
    await sleep(1000);
    await cp.restart();
    const e = await waitForTerminal(api, executionId, 60_000);
    expect(e.status).toBe('succeeded');
    const written = readFileSync(file);
    expect(written.length).toBe(120 * 131072);
    expect(e.outputBytes).toBe(written.length);
    expect(sha256((await getOutput(api, executionId)).bytes)).toBe(sha256(written));
  });

  it('completes byte-identical when the agent’s connection is cut mid-run, twice', async () => {
    const proxy = await CuttableProxy.start(cp.port);
    try {
      const { server } = await agentFor('f-cut', { url: proxy.url });
      const file = tmpFile('bin');
      const script = await createScript(api, paced(file, 60, '0.03'));
      const { executionId } = await run(api, script.id, server.id);
      for (const atLeast of [1, 4]) {
        await waitFor('more output stored', async () => (await getExecution(api, executionId)).outputBytes >= atLeast * 1024 * 1024, 30_000);
        proxy.cut();
        await waitFor('the agent back', () => proxy.connections > 0, 30_000);
      }
      const e = await waitForTerminal(api, executionId, 60_000);
      expect(e.status).toBe('succeeded');
      expect(sha256((await getOutput(api, executionId)).bytes)).toBe(sha256(readFileSync(file)));
      expect(e.outputBytes).toBe(60 * 131072);
    } finally {
      await proxy.close();
    }
  });

  it('marks a run lost when its agent was SIGKILLed and comes back without it', async () => {
    const { server, agent } = await agentFor('f-agent-kill');
    const pidFile = tmpFile('pid');
    const script = await createScript(api, `echo $$ > '${pidFile}'; echo started; sleep 60`);
    const { executionId } = await run(api, script.id, server.id);
    await waitFor('the script started', async () => (await getOutput(api, executionId)).bytes.toString() === 'started\n');
    orphanGroups.push(Number(readFileSync(pidFile, 'utf8').trim()));
    await agent.stop('SIGKILL');
    // Meanwhile it is still `running` here: nobody has said otherwise.
    expect((await getExecution(api, executionId)).status).toBe('running');
    agents.push(await startAgent({ url: cp.url, token: server.agentToken }));
    const e = await waitForStatus(api, executionId, 'lost');
    expect(e.error).toMatch(/reconnected without/);
    expect(e.finishedAt).toBeTruthy();
  });
});

describe('concurrency', () => {
  it('runs 100 manual runs at once on a concurrency of 4: all finish, never more than 4 at a time', async () => {
    const { server } = await agentFor('f-100', { concurrency: 4 });
    const log = tmpFile('log');
    const script = await createScript(api, `echo "s $DEVPILOT_EXECUTION_ID" >> '${log}'; sleep 0.2; echo "e $DEVPILOT_EXECUTION_ID" >> '${log}'; echo ok`);
    const accepted = await Promise.all(Array.from({ length: 100 }, () => run(api, script.id, server.id)));
    // The answer tells where each run is when it is sent; on a loaded machine a short run may be over already.
    for (const a of accepted) expect(['dispatched', 'running', 'queued', 'succeeded']).toContain(a.status);
    await waitFor(
      'all 100 succeeded',
      async () => (await api.get(`/api/v1/executions?scriptId=${script.id}&status=succeeded&limit=200`)).body.items.length === 100,
      80_000,
    );
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(200);
    let now = 0;
    let max = 0;
    for (const line of lines) {
      now += line.startsWith('s ') ? 1 : -1;
      max = Math.max(max, now);
    }
    expect(max).toBeLessThanOrEqual(4);
    expect(max).toBeGreaterThan(1);
    expect(new Set(lines.map((l) => l.slice(2))).size).toBe(100);
  }, 110_000);
});
