// The real agent process (dist/agent/devpilot-agent.cjs) against the real control plane: what a
// script writes comes back byte for byte, and every way a run ends gets its status.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type AgentProcess, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getExecution, getOutput, outputOf, readEvents, run, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
let server: { id: string; agentToken: string };
let agent: AgentProcess;
const started: AgentProcess[] = [];
const tmpFiles: string[] = [];

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
function tmpFile(ext: string): string {
  const f = path.join(os.tmpdir(), `devpilot-e2e-${randomBytes(6).toString('hex')}.${ext}`);
  tmpFiles.push(f);
  return f;
}

async function runScript(content: string, opts: Parameters<typeof createScript>[2] = {}, serverId = server.id) {
  const script = await createScript(api, content, opts);
  return run(api, script.id, serverId);
}

/** True while a process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_SWEEP_INTERVAL_MS: '500' } });
  api = new Api(cp.url, cp.adminKey);
  server = await createServer(api, 'real-1');
  agent = await startAgent({ url: cp.url, token: server.agentToken });
  started.push(agent);
  await waitFor('the agent online', async () => (await api.get(`/api/v1/servers/${server.id}`)).body.status === 'online');
});

afterAll(async () => {
  if (process.env.SHOW_CP_LOGS) process.stdout.write(`${cp?.proc.logs.slice(-20000)}\n---agent---\n${agent?.proc.logs.slice(-20000)}`);
  for (const a of started) await a.stop();
  await cp?.stop();
  await db?.drop();
  for (const f of tmpFiles) await rm(f, { force: true });
});

describe('output', () => {
  it('keeps stdout and stderr interleaved in the order written', async () => {
    const { executionId, status } = await runScript(
      'for i in 1 2 3 4 5 6; do echo "out $i"; sleep 0.05; echo "err $i" >&2; sleep 0.05; done',
    );
    expect(['dispatched', 'running']).toContain(status);
    expect((await waitForTerminal(api, executionId)).status).toBe('succeeded');
    const expected = [1, 2, 3, 4, 5, 6].map((i) => `out ${i}\nerr ${i}\n`).join('');
    expect((await getOutput(api, executionId)).bytes.toString()).toBe(expected);
    expect((await getOutput(api, executionId, 'stdout')).bytes.toString()).toBe([1, 2, 3, 4, 5, 6].map((i) => `out ${i}\n`).join(''));
    expect((await getOutput(api, executionId, 'stderr')).bytes.toString()).toBe([1, 2, 3, 4, 5, 6].map((i) => `err ${i}\n`).join(''));
    const events = await readEvents(api, executionId);
    expect(outputOf(events.events).bytes.toString()).toBe(expected);
  });

  it('returns 1 MiB of random binary output byte-identical', async () => {
    const file = tmpFile('bin');
    const { executionId } = await runScript(`head -c 1048576 /dev/urandom | tee '${file}'`);
    const e = await waitForTerminal(api, executionId);
    expect(e).toMatchObject({ status: 'succeeded', outputBytes: 1048576, outputTruncated: false });
    const written = readFileSync(file);
    expect(written.length).toBe(1048576);
    expect(sha256((await getOutput(api, executionId)).bytes)).toBe(sha256(written));
  });

  it('stops keeping output past maxOutputBytes, reports truncated, and still finishes', async () => {
    const { executionId } = await runScript("head -c 300000 /dev/zero | tr '\\0' a; echo done >&2", { maxOutputBytes: 1000 });
    const e = await waitForTerminal(api, executionId);
    expect(e).toMatchObject({ status: 'succeeded', outputTruncated: true, outputBytes: 1000 });
    expect((await getOutput(api, executionId)).bytes.toString()).toBe('a'.repeat(1000));
  });

  it('gives the script the execution env and none of the agent’s secrets', async () => {
    const { executionId } = await runScript('echo "$DEVPILOT_EXECUTION_ID $DEVPILOT_TRIGGER"; env | grep -c DEVPILOT_AGENT_TOKEN || true');
    await waitForTerminal(api, executionId);
    expect((await getOutput(api, executionId)).bytes.toString()).toBe(`${executionId} manual\n0\n`);
  });
});

describe('how a run ends', () => {
  it('exit 0: succeeded; exit 3: failed with exit code 3', async () => {
    const ok = await runScript('echo fine; exit 0');
    const bad = await runScript('echo broken >&2; exit 3');
    expect(await waitForTerminal(api, ok.executionId)).toMatchObject({ status: 'succeeded', exitCode: 0 });
    expect(await waitForTerminal(api, bad.executionId)).toMatchObject({ status: 'failed', exitCode: 3 });
    expect((await getOutput(api, bad.executionId)).bytes.toString()).toBe('broken\n');
  });

  it('a missing interpreter: failed, with a message', async () => {
    const bare = await createServer(api, 'real-no-interpreters');
    const a = await startAgent({ url: cp.url, token: bare.agentToken, withoutInterpreters: true });
    started.push(a);
    const { executionId } = await runScript('print("never")', { interpreter: 'python3' }, bare.id);
    const e = await waitForTerminal(api, executionId);
    expect(e.status).toBe('failed');
    expect(e.exitCode).toBeNull();
    expect(e.error).toMatch(/interpreter not found: python3/);
  });

  it('past its timeout: timed_out, with the output so far', async () => {
    const { executionId } = await runScript('echo begun; sleep 30; echo never', { timeoutSeconds: 1 });
    const e = await waitForTerminal(api, executionId);
    expect(e.status).toBe('timed_out');
    expect((await getOutput(api, executionId)).bytes.toString()).toBe('begun\n');
  });

  it('cancelled while running: cancelled, and its child processes are gone', async () => {
    const pidFile = tmpFile('pids');
    const { executionId } = await runScript(
      `sleep 300 & echo $! > '${pidFile}'; (sleep 301 & echo $! >> '${pidFile}'; wait) & echo $$ >> '${pidFile}'; echo ready; wait`,
    );
    await waitFor('the script to be ready', async () => (await getOutput(api, executionId)).bytes.toString() === 'ready\n');
    const pids = readFileSync(pidFile, 'utf8').trim().split('\n').map(Number);
    expect(pids).toHaveLength(3);
    expect(pids.every(alive)).toBe(true);
    const r = await api.post(`/api/v1/executions/${executionId}/cancel`);
    expect(r.status).toBe(202);
    expect((await waitForTerminal(api, executionId)).status).toBe('cancelled');
    await waitFor('every process of the script to be gone', () => pids.every((p) => !alive(p)), 10_000);
  });

  it('queued while its agent is away, run once it connects', async () => {
    const later = await createServer(api, 'real-later');
    const { executionId, status } = await runScript('echo "late but here"', {}, later.id);
    expect(status).toBe('queued');
    expect((await getExecution(api, executionId)).status).toBe('queued');
    started.push(await startAgent({ url: cp.url, token: later.agentToken }));
    expect((await waitForTerminal(api, executionId)).status).toBe('succeeded');
    expect((await getOutput(api, executionId)).bytes.toString()).toBe('late but here\n');
  });
});

describe('the agent', () => {
  it('reports itself: hostname, platform and version on the server row', async () => {
    const s = (await api.get(`/api/v1/servers/${server.id}`)).body;
    expect(s.status).toBe('online');
    expect(s.hostname).toBe(os.hostname());
    expect(s.platform).toBe(`${process.platform}-${process.arch}`);
    expect(s.agentVersion).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('gets a refused token and stops (exit 2) instead of retrying', async () => {
    const a = await startAgent({ url: cp.url, token: 'dpa_not-a-real-token' });
    const exit = await a.proc.exited;
    expect(exit.code).toBe(2);
    expect(a.proc.logs).toContain('unauthorized');
  });

  it('is told to stop when its token is rotated', async () => {
    const s = await createServer(api, 'real-rotated');
    const a = await startAgent({ url: cp.url, token: s.agentToken });
    started.push(a);
    await waitFor('online', async () => (await api.get(`/api/v1/servers/${s.id}`)).body.status === 'online');
    await api.post(`/api/v1/servers/${s.id}/agent-token`);
    expect((await a.proc.exited).code).toBe(2);
  });
});
