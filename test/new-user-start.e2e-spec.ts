import { afterAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './support/control-plane.js';
import { Api } from './support/http.js';
import { freePort, ManagedProcess, waitFor } from './support/processes.js';
import { spawn } from 'node:child_process';

/** `npm start` as a new user runs it: embedded PostgreSQL, generated admin key, Ctrl-C to stop. */
describe('npm start on the embedded default', () => {
  let dataDir: string;
  let port: number;
  let proc: ManagedProcess | undefined;

  const start = async (command = ['npm', 'start', '--silent'], extraEnv: NodeJS.ProcessEnv = {}) => {
    const env = { ...process.env, PORT: String(port), DEVPILOT_DATA_DIR: dataDir, DATABASE_URL: '', TEST_DATABASE_URL: '', DEVPILOT_ADMIN_API_KEY: '', ...extraEnv };
    // Its own process group, so the test can send SIGINT to all of it, as a terminal's Ctrl-C does.
    proc = new ManagedProcess(spawn(command[0]!, command.slice(1), { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] }));
    const p = proc;
    await waitFor('GET /health = 200', async () => {
      if (!p.running) throw new Error(`npm start exited:\n${p.logs}`);
      return (await fetch(`http://127.0.0.1:${port}/health`)).status === 200;
    }, 90_000);
  };

  const ctrlC = async () => {
    const p = proc!;
    process.kill(-p.child.pid!, 'SIGINT');
    const timer = setTimeout(() => process.kill(-p.child.pid!, 'SIGKILL'), 20_000);
    const r = await p.exited;
    clearTimeout(timer);
    // npm re-raises the SIGINT it got; the control plane under it must have exited on its own.
    return r.code === 0 || r.signal === 'SIGINT' ? 'stopped' : `ended with ${JSON.stringify(r)}`;
  };

  const pgrep = (...args: string[]) => {
    try {
      return execFileSync('pgrep', args, { encoding: 'utf8' }).trim();
    } catch {
      return ''; // pgrep exits 1 when nothing matches
    }
  };
  /** Processes of the npm start group, and any process (PostgreSQL, say) still using the data dir. */
  const leftovers = () => [pgrep('-ag', String(proc!.child.pid)), pgrep('-af', dataDir)].filter(Boolean).join('\n');

  /** Like a terminal after Ctrl-C: within 15 s, nothing of the app (its agent, its PostgreSQL) runs. */
  const expectNothingLeft = async () => {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && leftovers() !== '') await new Promise((r) => setTimeout(r, 100));
    expect(leftovers()).toBe('');
  };

  afterAll(async () => {
    if (proc?.running) await ctrlC();
  });

  it('comes up with nothing installed, keeps its data across restarts and leaves no process behind', async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-newuser-'));
    port = await freePort();
    await start();

    const keyFile = path.join(dataDir, 'admin-api-key');
    const key = readFileSync(keyFile, 'utf8').trim();
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dataDir, 'master.key')).mode & 0o777).toBe(0o600);
    expect(proc!.logs).toContain(key); // printed once for the new user
    expect(proc!.logs).toContain(`http://localhost:${port}/`);

    const api = new Api(`http://127.0.0.1:${port}`, key);
    const me = await api.get('/api/v1/me');
    expect(me.status).toBe(200);
    expect(me.body.isAdmin).toBe(true);
    const script = await api.post('/api/v1/scripts', { name: 'kept', content: 'echo kept' });
    expect(script.status).toBe(201);

    // The local agent: this machine is the server `local`, online, and runs a script on the first try.
    const local = await waitFor('the server local online', async () => {
      const servers = await api.get('/api/v1/servers');
      return servers.body.items.find((s: any) => s.name === 'local' && s.status === 'online');
    }, 30_000);
    const run = await api.post(`/api/v1/scripts/${script.body.id}/executions`, { serverId: local.id });
    expect(run.status).toBe(202);
    const done = await waitFor('the run to end', async () => {
      const e = await api.get(`/api/v1/executions/${run.body.executionId}`);
      return ['succeeded', 'failed'].includes(e.body.status) ? e.body : undefined;
    });
    expect(done.status).toBe('succeeded');
    const out = await fetch(`http://127.0.0.1:${port}/api/v1/executions/${run.body.executionId}/output`, { headers: { authorization: `Bearer ${key}` } });
    expect(await out.text()).toBe('kept\n');

    expect(await ctrlC()).toBe('stopped');
    await expectNothingLeft();
    expect(proc!.logs).toContain('SIGINT: shutting down');

    await start();
    expect(proc!.logs).not.toContain(key); // the key is printed on the first start only
    const scripts = await api.get('/api/v1/scripts');
    expect(scripts.status).toBe(200);
    expect(scripts.body.items.map((s: any) => s.name)).toContain('kept');
    expect(await ctrlC()).toBe('stopped');
    await expectNothingLeft();
    expect(proc!.logs).toContain('SIGINT: shutting down');
  });

  /** What a service manager or `kill <pid>` does: the signal goes to the started process only. */
  const signalStartedProcess = async (signal: NodeJS.Signals) => {
    const p = proc!;
    process.kill(p.child.pid!, signal);
    const timer = setTimeout(() => process.kill(-p.child.pid!, 'SIGKILL'), 30_000);
    const r = await p.exited;
    clearTimeout(timer);
    return r;
  };

  it('SIGTERM or SIGINT to the npm start process alone stops everything it started', async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-newuser-'));
    port = await freePort();
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      await start();
      // The local agent is up: there is a grandchild to lose.
      await waitFor('the local agent', () => pgrep('-g', String(proc!.child.pid), '-f', 'devpilot-agent.cjs'), 30_000);
      const r = await signalStartedProcess(signal);
      // npm re-raises the signal its script died of, or exits 0 after a clean stop.
      expect(r.code === 0 || r.signal === signal).toBe(true);
      await expectNothingLeft();
      expect(proc!.logs).toContain(`${signal}: shutting down`);
    }
    // The start banner is not buried under Nest's route table, and names the real listening address.
    expect(proc!.logs).not.toContain('"context":"RoutesResolver"');
    expect(proc!.logs).not.toContain('"context":"RouterExplorer"');
    expect(proc!.logs).toContain(`listening on 0.0.0.0:${port} (all IPv4 interfaces)`);
  });

  it('the devpilot command runs the control plane in the foreground and SIGTERM stops all of it', async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-bin-'));
    port = await freePort();
    // A dangerous trust setting: every loopback address trusted while listening on all interfaces.
    await start([process.execPath, 'scripts/devpilot.mjs'], { DEVPILOT_LOCAL_AGENT: 'true', DEVPILOT_TRUST_PROXY: 'loopback' });
    await waitFor('the local agent', () => pgrep('-g', String(proc!.child.pid), '-f', 'devpilot-agent.cjs'), 30_000);
    expect(proc!.logs).toContain('DEVPILOT_TRUST_PROXY=loopback trusts every address in loopback while HOST=0.0.0.0');
    expect(await signalStartedProcess('SIGTERM')).toEqual({ code: 0, signal: null });
    await expectNothingLeft();
  });
});
