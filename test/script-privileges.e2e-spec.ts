// Scripts never run with the agent's or the control plane's privileges by accident (issue 13,
// findings 3 and 4): the tests run as root here, so the agents can switch users, as an installed
// agent does with its unit's capabilities.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { liveGroupMembers } from '../apps/agent/src/testing/process-group.js';
import { AGENT_BUNDLE, type AgentProcess, startAgent } from './support/agent.js';
import { type ControlPlane, ROOT, startControlPlane } from './support/control-plane.js';
import { createServer, getExecution, getOutput, run, waitForStatus, waitForTerminal } from './support/executions.js';
import { FakeAgent } from './support/fake-agent.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { freePort, killGroups, ManagedProcess, waitFor } from './support/processes.js';

const root = process.getuid?.() === 0;
const TEST_USER = `dprun${process.pid % 100000}`;

/** A script with a runAs, created through the API. */
async function script(api: Api, content: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await api.post('/api/v1/scripts', { name: `s-${Math.random().toString(36).slice(2, 10)}`, content, ...extra });
  if (r.status !== 201) throw new Error(`create script: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id as string;
}

/** Each candidate file: READ when the script could read it, DENIED otherwise. */
const probe = (files: string[]) => files.map((f) => `if cat "${f}" >/dev/null 2>&1; then echo "READ ${f}"; else echo "DENIED ${f}"; fi`).join('\n');

function environ(pid: number): string {
  return readFileSync(`/proc/${pid}/environ`, 'utf8');
}

(root ? describe : describe.skip)('npm start as root: the local agent', () => {
  let dataDir: string;
  let port: number;
  let proc: ManagedProcess | undefined;
  let api: Api;
  let key: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-privs-'));
    port = await freePort();
    const env = {
      ...process.env,
      PORT: String(port),
      DEVPILOT_DATA_DIR: dataDir,
      DATABASE_URL: '',
      TEST_DATABASE_URL: '',
      DEVPILOT_ADMIN_API_KEY: '',
      // Something of the control plane's environment that its local agent must not get.
      DEVPILOT_PRIVS_CANARY: 'control-plane-environment-canary',
    };
    proc = new ManagedProcess(spawn('npm', ['start', '--silent'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] }));
    const p = proc;
    await waitFor('GET /health = 200', async () => {
      if (!p.running) throw new Error(`npm start exited:\n${p.logs}`);
      return (await fetch(`http://127.0.0.1:${port}/health`)).status === 200;
    }, 90_000);
    key = readFileSync(path.join(dataDir, 'admin-api-key'), 'utf8').trim();
    api = new Api(`http://127.0.0.1:${port}`, key);
  });

  afterAll(async () => {
    if (!proc?.running) return;
    process.kill(-proc.child.pid!, 'SIGINT');
    const timer = setTimeout(() => process.kill(-proc!.child.pid!, 'SIGKILL'), 20_000);
    await proc.exited;
    clearTimeout(timer);
  });

  it('runs a script with a non-zero uid that cannot read the agent token, the admin key or the master key', async () => {
    const local = await waitFor('the server local online', async () => {
      const servers = await api.get('/api/v1/servers');
      return servers.body.items.find((s: { name: string; status: string }) => s.name === 'local' && s.status === 'online');
    }, 30_000);

    const files = ['/proc/$PPID/environ', '/proc/$PPID/fd/3', ...['admin-api-key', 'master.key', 'postgres-password'].map((f) => path.join(dataDir, f))];
    const id = await script(api, ['echo "uid=$(id -u) user=$(id -un)"', 'echo "agent=$PPID"', probe(files), 'env | grep -c CANARY || true'].join('\n'));
    const { executionId } = await run(api, id, local.id);
    expect((await waitForTerminal(api, executionId)).status).toBe('succeeded');
    const out = (await getOutput(api, executionId)).bytes.toString();

    expect(out).not.toContain('READ ');
    expect(out).toContain('user=devpilot-run');
    expect(Number(/uid=(\d+)/.exec(out)![1])).toBeGreaterThan(0);
    expect(out.match(/DENIED /g)).toHaveLength(files.length);
    // The files exist (what is denied is not just missing), and the agent holds no token in its environment.
    for (const f of files.slice(2)) expect(readFileSync(f, 'utf8').length).toBeGreaterThan(0);
    const agentPid = Number(/agent=(\d+)/.exec(out)![1]);
    expect(readFileSync(`/proc/${agentPid}/cmdline`, 'utf8')).toContain('devpilot-agent.cjs');
    expect(environ(agentPid)).not.toContain('DEVPILOT_AGENT_TOKEN=');
    expect(environ(agentPid)).not.toContain('CANARY');
    expect(out).toMatch(/^0$/m); // the script's own environment has no canary either
    expect(local).toMatchObject({ runsScriptsAs: 'devpilot-run', switchesUsers: true });
  });
});

(root ? describe : describe.skip)('an agent that can switch users', () => {
  let db: TestDatabase;
  let cp: ControlPlane;
  let api: Api;
  let server: { id: string; agentToken: string };
  let agent: AgentProcess;

  beforeAll(async () => {
    execFileSync('useradd', ['--user-group', '--create-home', '--home-dir', `/tmp/${TEST_USER}-home`, '--shell', '/bin/sh', TEST_USER]);
    db = await createTestDatabase();
    cp = await startControlPlane({ databaseUrl: db.url });
    api = new Api(cp.url, cp.adminKey);
    server = await createServer(api, 'switching');
    // The token in the environment, as a hand-run agent gets it.
    agent = await startAgent({ url: cp.url, token: server.agentToken, env: { DEVPILOT_ALLOW_RUN_AS: TEST_USER } });
    await waitFor('the agent online', async () => (await api.get(`/api/v1/servers/${server.id}`)).body.status === 'online', 30_000);
  });

  afterAll(async () => {
    await agent?.stop();
    await cp?.stop();
    await db?.drop();
    try {
      execFileSync('userdel', ['--remove', TEST_USER], { stdio: 'ignore' });
    } catch {
      // Not created.
    }
  });

  it('tells the control plane who runs its scripts', async () => {
    const view = (await api.get(`/api/v1/servers/${server.id}`)).body;
    expect(view).toMatchObject({ runsScriptsAs: 'devpilot-run', switchesUsers: true, allowRunAs: ['devpilot-run', TEST_USER] });
  });

  it('holds no agent token in its environment after start, though it was given one there', async () => {
    const id = await script(api, 'echo "agent=$PPID"');
    const { executionId } = await run(api, id, server.id);
    expect((await waitForTerminal(api, executionId)).status).toBe('succeeded');
    const agentPid = Number(/agent=(\d+)/.exec((await getOutput(api, executionId)).bytes.toString())![1]);
    expect(readFileSync(`/proc/${agentPid}/cmdline`, 'utf8')).toContain('devpilot-agent.cjs');
    expect(environ(agentPid)).not.toContain('DEVPILOT_AGENT_TOKEN=');
    if (typeof (process as { execve?: unknown }).execve === 'function') {
      // Re-executed in place: the process started with the token is this one, and holds it no more.
      expect(agentPid).toBe(agent.proc.child.pid);
    } else {
      // Node without process.execve: a supervisor keeps it, and the agent says so.
      expect(agent.proc.logs).toContain('cannot re-execute in place');
    }
  });

  it('runs a script as the runAs user the agent allows, with its HOME', async () => {
    const id = await script(api, 'echo "$(id -un) $HOME $(basename "$PWD" | cut -c1-4) $(stat -c %U .)"', { runAs: TEST_USER });
    expect((await api.get(`/api/v1/scripts/${id}`)).body.runAs).toBe(TEST_USER);
    const { executionId } = await run(api, id, server.id);
    expect((await waitForTerminal(api, executionId)).status).toBe('succeeded');
    expect((await getOutput(api, executionId)).bytes.toString()).toBe(`${TEST_USER} /tmp/${TEST_USER}-home run- ${TEST_USER}\n`);
  });

  it('fails a run whose runAs the agent does not allow before it starts, with the reason', async () => {
    const id = await script(api, 'echo RAN', { runAs: 'root' });
    const { executionId } = await run(api, id, server.id);
    const done = await waitForTerminal(api, executionId);
    expect(done.status).toBe('failed');
    expect(done.error).toContain('"root", which this agent does not allow');
    expect(done.startedAt ?? null).toBeNull();
    expect((await getOutput(api, executionId)).bytes.toString()).not.toContain('RAN');
  });

  it('a change of runAs is a new script version', async () => {
    const id = await script(api, 'true');
    const patched = await api.patch(`/api/v1/scripts/${id}`, { runAs: TEST_USER });
    expect(patched.body).toMatchObject({ version: 2, runAs: TEST_USER });
    expect((await api.get(`/api/v1/scripts/${id}/versions/1`)).body.runAs).toBeNull();
    expect((await api.patch(`/api/v1/scripts/${id}`, { runAs: 'not a user!' })).status).toBe(400);
    expect((await api.patch(`/api/v1/scripts/${id}`, { runAs: 'a'.repeat(33) })).status).toBe(400);
  });

  it.each(['timeout', 'cancel'] as const)('stops a script running as another user on %s, its whole process group', async (how) => {
    const id = await script(api, 'echo "pgid=$$"; sleep 60 & sleep 60', { timeoutSeconds: how === 'timeout' ? 1 : 60 });
    const { executionId } = await run(api, id, server.id);
    const pgid = await waitFor('the script running', async () => {
      const m = /pgid=(\d+)/.exec((await getOutput(api, executionId)).bytes.toString());
      return m ? Number(m[1]) : undefined;
    });
    expect(execFileSync('ps', ['-o', 'user=', '-p', String(pgid)], { encoding: 'utf8' }).trim()).toBe('devpilot-run');
    if (how === 'cancel') expect((await api.post(`/api/v1/executions/${executionId}/cancel`)).status).toBeLessThan(300);
    const done = await waitForStatus(api, executionId, how === 'timeout' ? 'timed_out' : 'cancelled');
    expect(done.status).toBe(how === 'timeout' ? 'timed_out' : 'cancelled');
    await waitFor('the process group gone', () => liveGroupMembers(pgid).length === 0, 10_000);
    expect((await getExecution(api, executionId)).status).toBe(done.status);
  });
});

/**
 * What the installed unit does, without systemd: the agent as an unprivileged user holding only
 * CAP_SETUID, CAP_SETGID and CAP_KILL as ambient capabilities, with no_new_privs; and the same
 * user without them.
 */
(root ? describe : describe.skip)('an unprivileged agent', () => {
  let db: TestDatabase;
  let cp: ControlPlane;
  let api: Api;
  const agents: ManagedProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    cp = await startControlPlane({ databaseUrl: db.url });
    api = new Api(cp.url, cp.adminKey);
  });

  afterAll(async () => {
    for (const a of agents) await a.stop();
    await cp?.stop();
    await db?.drop();
  });

  async function agentAsNobody(name: string, caps: boolean, extraEnv: Record<string, string> = {}): Promise<{ id: string; agent: ManagedProcess }> {
    const server = await createServer(api, name);
    const capArgs = caps
      ? ['--inh-caps=+setuid,+setgid,+kill', '--ambient-caps=+setuid,+setgid,+kill', '--bounding-set=-all,+setuid,+setgid,+kill']
      : ['--inh-caps=-all', '--bounding-set=-all'];
    const env = {
      PATH: process.env.PATH,
      HOME: '/',
      DEVPILOT_URL: cp.url,
      DEVPILOT_AGENT_TOKEN: server.agentToken,
      DEVPILOT_AGENT_KILL_GRACE_MS: '1000',
      DEVPILOT_AGENT_SHUTDOWN_GRACE_MS: '2000',
      ...extraEnv,
    };
    // A copy nobody can read: the checkout may sit under a folder only root can enter (CI's mktemp).
    const bundleDir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-bundle-'));
    await chmod(bundleDir, 0o755);
    const bundle = path.join(bundleDir, 'devpilot-agent.cjs');
    await copyFile(AGENT_BUNDLE, bundle);
    await chmod(bundle, 0o644);
    const agent = ManagedProcess.spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', ...capArgs, '--no-new-privs', '--', process.execPath, bundle], env, '/');
    agents.push(agent);
    await waitFor(`${name} online`, async () => {
      if (!agent.running) throw new Error(`the agent exited:\n${agent.logs}`);
      return (await api.get(`/api/v1/servers/${server.id}`)).body.status === 'online';
    }, 30_000);
    return { id: server.id, agent };
  }

  it('with the unit\'s capabilities runs scripts as devpilot-run, without capabilities, and stops them on timeout', async () => {
    const { id } = await agentAsNobody('with-caps', true);
    expect((await api.get(`/api/v1/servers/${id}`)).body).toMatchObject({ runsScriptsAs: 'devpilot-run', switchesUsers: true });
    const who = await script(api, 'echo "$(id -un) $(grep CapEff /proc/self/status | cut -f2)"; echo "agent=$(stat -c %U /proc/$PPID)"');
    const { executionId } = await run(api, who, id);
    expect((await waitForTerminal(api, executionId)).status).toBe('succeeded');
    expect((await getOutput(api, executionId)).bytes.toString()).toBe('devpilot-run 0000000000000000\nagent=nobody\n');

    const long = await script(api, 'echo "pgid=$$"; sleep 60 & sleep 60', { timeoutSeconds: 1 });
    const timed = await run(api, long, id);
    const pgid = await waitFor('the script running', async () => {
      const m = /pgid=(\d+)/.exec((await getOutput(api, timed.executionId)).bytes.toString());
      return m ? Number(m[1]) : undefined;
    });
    expect((await waitForStatus(api, timed.executionId, 'timed_out')).status).toBe('timed_out');
    await waitFor('the process group gone', () => liveGroupMembers(pgid).length === 0, 10_000);
  });

  it('a killed agent\'s folder, with the run folders its scripts\' user owns, is removed by the next agent', async () => {
    // A temp dir of their own, so only these agents' folders are at stake.
    const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-killed-'));
    await chmod(tmpDir, 0o1777);
    const first = await agentAsNobody('killed-first', true, { TMPDIR: tmpDir });
    const long = await script(api, 'echo "pgid=$$"; exec sleep 60');
    const { executionId } = await run(api, long, first.id);
    const pgid = await waitFor('the script running', async () => {
      const m = /pgid=(\d+)/.exec((await getOutput(api, executionId)).bytes.toString());
      return m ? Number(m[1]) : undefined;
    });
    const [folder] = readdirSync(tmpDir).filter((n) => n.startsWith('devpilot-agent-')).map((n) => path.join(tmpDir, n));
    const runDir = readdirSync(folder!).find((n) => n.startsWith('run-'));
    expect(statSync(path.join(folder!, runDir!)).uid).not.toBe(statSync(folder!).uid); // devpilot-run's, not the agent's

    first.agent.child.kill('SIGKILL');
    await first.agent.exited;
    killGroups([pgid]);
    await waitFor('the script gone', () => liveGroupMembers(pgid).length === 0, 10_000);
    expect(existsSync(folder!)).toBe(true); // nothing ran to remove it

    const second = await agentAsNobody('killed-second', true, { TMPDIR: tmpDir });
    await waitFor('the next agent to clean up', () => second.agent.logs.includes('removed script files left by agents that were killed'), 30_000);
    expect(existsSync(folder!)).toBe(false);
  });

  it('a runAs is never sent to an agent too old to honour it (it would run the script as its default user)', async () => {
    const server = await createServer(api, 'old-agent');
    // A protocol-level agent whose handshake, like an older agent's, says nothing about users.
    const fake = await FakeAgent.connect(cp.url, server.agentToken);
    try {
      const id = await script(api, 'echo RAN', { runAs: 'deploy' });
      const { executionId } = await run(api, id, server.id);
      const done = await waitForTerminal(api, executionId);
      expect(done.status).toBe('failed');
      expect(done.error).toContain('too old to run scripts as another user');
      expect(fake.started.map((s) => s.executionId)).not.toContain(executionId);
    } finally {
      fake.socket.disconnect();
    }
  });

  it('without them runs scripts as itself, and says so in its log and to the control plane', async () => {
    const { id, agent } = await agentAsNobody('no-caps', false);
    expect((await api.get(`/api/v1/servers/${id}`)).body).toMatchObject({ runsScriptsAs: 'nobody', switchesUsers: false, allowRunAs: ['nobody'] });
    expect(agent.logs).toContain('this agent cannot switch users');
    const who = await script(api, 'id -un');
    const { executionId } = await run(api, who, id);
    expect((await waitForTerminal(api, executionId)).status).toBe('succeeded');
    expect((await getOutput(api, executionId)).bytes.toString()).toBe('nobody\n');
  });
});
