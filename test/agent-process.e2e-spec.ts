// The agent as an operator runs it: its output piped into something that goes away, killed without
// notice, restarted. It must keep running scripts, stay idle, stop on one SIGTERM and leave no
// script (which may hold secrets) on disk after a crash.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AGENT_BUNDLE, type AgentProcess, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getOutput, run, waitForStatus, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { sleep, waitFor } from './support/processes.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
let tmp: string;
const started: AgentProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url });
  api = new Api(cp.url, cp.adminKey);
  tmp = await mkdtemp(path.join(os.tmpdir(), 'devpilot-agent-process-'));
});

afterAll(async () => {
  // Whatever a failed test left: agents, and scripts orphaned by the killed one (own process groups).
  for (const a of started) if (a.proc.running) a.proc.child.kill('SIGKILL');
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (tmp && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(tmp)) process.kill(-Number(pid), 'SIGKILL');
    } catch {
      // Gone while /proc was read, or not a group leader.
    }
  }
  await cp?.stop();
  await db?.drop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** CPU seconds (user + system) the process has used, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command: state is field 3, utime 14 and stime 15 (1-based), in clock ticks (100 Hz on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function serverOnline(id: string): Promise<void> {
  await waitFor('the agent online', async () => (await api.get(`/api/v1/servers/${id}`)).body.status === 'online', 30_000);
}

async function runOk(serverId: string, content: string): Promise<string> {
  const script = await createScript(api, content);
  const { executionId } = await run(api, script.id, serverId);
  const done = await waitForTerminal(api, executionId);
  expect(done.status).toBe('succeeded');
  return (await getOutput(api, executionId)).bytes.toString();
}

describe('agent with its stdout and stderr closed', () => {
  it('keeps running scripts without spinning, and stops on the first SIGTERM', async () => {
    const server = await createServer(api, 'closed-pipes');
    const child = spawn(process.execPath, [AGENT_BUNDLE], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DEVPILOT_URL: cp.url, DEVPILOT_AGENT_TOKEN: server.agentToken, DEVPILOT_AGENT_SHUTDOWN_GRACE_MS: '2000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    try {
      let logs = '';
      child.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
      await waitFor('the agent to log "hello done"', () => logs.includes('hello done'), 30_000);
      // What `agent 2>&1 | head -n 2` does once head has its lines: the read ends close.
      child.stdout!.destroy();
      child.stderr!.destroy();

      // Its next log lines (accepting a run) now fail with EPIPE.
      expect(await runOk(server.id, 'echo first')).toBe('first\n');
      const before = cpuSeconds(child.pid!);
      await sleep(3_000);
      const used = cpuSeconds(child.pid!) - before;
      // Spinning burns ~3 s of CPU in 3 s; idle is a few hundredths.
      expect(used).toBeLessThan(0.5);
      expect(await runOk(server.id, 'echo second')).toBe('second\n');

      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const r = await exited;
      clearTimeout(timer);
      expect(r).toEqual({ code: 0, signal: null });
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});

describe('script files of an agent that was killed', () => {
  it('are removed by the next agent, and a live agent’s folder is left alone', async () => {
    const server = await createServer(api, 'killed');
    const tmpDir = path.join(tmp, 'tmpdir');
    await mkdir(tmpDir);
    // Scripts run as devpilot-run (the agent is root here), which must be able to enter the agent's folder.
    await chmod(tmp, 0o711);
    const env = { TMPDIR: tmpDir };

    // A folder named after a live process (this test runner) stands for another agent still running.
    const live = path.join(tmpDir, `devpilot-agent-${process.pid}-Abc123`);
    await mkdir(live, { mode: 0o700 });
    await writeFile(path.join(live, `script-${process.pid}-1.sh`), 'echo secret', { mode: 0o600 });

    const first = await startAgent({ url: cp.url, token: server.agentToken, env });
    started.push(first);
    await serverOnline(server.id);
    const script = await createScript(api, 'echo started; sleep 20');
    const { executionId } = await run(api, script.id, server.id);
    await waitForStatus(api, executionId, 'running');
    // The script file is written just before the spawn, which `running` may precede.
    const { folder, scriptFile } = await waitFor('the script file of the first agent', () => {
      // Named after the agent's pid: the one started, or its child where Node cannot re-execute in place.
      const name = readdirSync(tmpDir).find((n) => n.startsWith('devpilot-agent-') && path.join(tmpDir, n) !== live);
      const entry = name && readdirSync(path.join(tmpDir, name))[0];
      if (!name || !entry) return undefined;
      // A run as another user (the agent runs as root here) has its own working directory inside.
      const inner = statSync(path.join(tmpDir, name, entry)).isDirectory() ? readdirSync(path.join(tmpDir, name, entry))[0] : '';
      const file = inner === undefined ? undefined : inner ? path.join(entry, inner) : entry;
      return file ? { folder: path.join(tmpDir, name), scriptFile: file } : undefined;
    });
    expect(statSync(path.join(folder, scriptFile)).mode & 0o777).toBe(0o600);

    first.proc.child.kill('SIGKILL');
    await first.proc.exited;
    // Where the agent runs under a supervisor (Node without process.execve), it follows it shortly.
    const agentPid = Number(/^devpilot-agent-(\d+)-/.exec(path.basename(folder))![1]);
    await waitFor('the killed agent gone', () => !existsSync(`/proc/${agentPid}`), 10_000);
    expect(existsSync(path.join(folder, scriptFile))).toBe(true); // nothing ran to remove it

    const second = await startAgent({ url: cp.url, token: server.agentToken, env });
    started.push(second);
    await waitFor('the new agent to clean up', () => second.proc.logs.includes('removed script files left by agents that were killed'), 30_000);
    expect(existsSync(folder)).toBe(false);
    expect(existsSync(path.join(live, `script-${process.pid}-1.sh`))).toBe(true);
    await second.stop();
  });
});
