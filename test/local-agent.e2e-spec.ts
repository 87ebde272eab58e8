// DEVPILOT_LOCAL_AGENT=true (what `npm start` sets): the control plane runs an agent for its own
// machine as the server `local`, restarts it when it dies, and stops it when it stops.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, getOutput, run, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;

/** The agent processes the control plane started (its children running the bundle). */
function agentPids(): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(cp.proc.child.pid), '-f', 'devpilot-agent.cjs'], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

async function localServers(): Promise<{ id: string; name: string; status: string; hostname: string | null }[]> {
  return (await api.get('/api/v1/servers?limit=200')).body.items.filter((s: { name: string }) => s.name === 'local');
}

async function localOnline() {
  return waitFor('server local online', async () => {
    const [s, ...more] = await localServers();
    if (more.length) throw new Error('more than one server named local');
    return s?.status === 'online' ? s : undefined;
  }, 30_000);
}

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_LOCAL_AGENT: 'true' } });
  api = new Api(cp.url, cp.adminKey);
});

afterAll(async () => {
  await cp?.stop();
  await db?.drop();
});

describe('the local agent', () => {
  it('registers this machine as the server local, online, and runs scripts on it', async () => {
    const local = await localOnline();
    expect(local.hostname).toBeTruthy();
    const script = await createScript(api, 'echo "hello from $(hostname)"');
    const { executionId } = await run(api, script.id, local.id);
    expect((await waitForTerminal(api, executionId)).status).toBe('succeeded');
    expect((await getOutput(api, executionId)).bytes.toString()).toMatch(/^hello from /);
  });

  it('gets its token on a pipe, never in the environment or on the command line', async () => {
    const [pid] = agentPids();
    expect(pid).toBeDefined();
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    expect(cmdline).toContain('devpilot-agent.cjs');
    expect(cmdline).not.toMatch(/dpa_/);
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
    expect(environ).not.toMatch(/dpa_/);
    expect(environ.split('\0')).toContain('DEVPILOT_AGENT_TOKEN_FD=3');
  });

  it('is started again when it dies', async () => {
    const [pid] = agentPids();
    process.kill(pid!, 'SIGKILL');
    await waitFor('a new agent process', () => {
      const now = agentPids();
      return now.length === 1 && now[0] !== pid;
    }, 20_000);
    const local = await localOnline();
    const script = await createScript(api, 'echo again');
    const { executionId } = await run(api, script.id, local.id);
    expect((await waitForTerminal(api, executionId)).status).toBe('succeeded');
  });

  it('keeps one server local across restarts (the token is rotated, not a new server)', async () => {
    const [before] = await localServers();
    await cp.restart();
    const after = await localOnline();
    expect(after.id).toBe(before!.id);
  });

  it('is stopped with the control plane', async () => {
    const pids = agentPids();
    expect(pids).toHaveLength(1);
    const exit = await cp.stop();
    expect(exit.code).toBe(0);
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(pids.filter(alive)).toEqual([]);
  });
});
