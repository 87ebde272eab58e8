import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { copyFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { FakeControlPlane } from './testing/fake-control-plane.js';

// The shipped artifact: one file, run by a bare `node` from a folder without node_modules.
describe('bundled agent (dist/agent/devpilot-agent.cjs)', () => {
  let dir: string;
  let agentFile: string;
  let version: string;

  beforeAll(async () => {
    await execa('node', ['apps/agent/build.mjs']);
    dir = await mkdtemp(join(tmpdir(), 'agent-bundle-'));
    agentFile = join(dir, 'devpilot-agent.cjs');
    await copyFile('dist/agent/devpilot-agent.cjs', agentFile);
    ({ version } = JSON.parse(await readFile('package.json', 'utf8')) as { version: string });
  }, 60_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const runAgent = (args: string[], env: Record<string, string> = {}) =>
    execa('node', [agentFile, ...args], { cwd: dir, env: { PATH: process.env.PATH ?? '', ...env }, extendEnv: false, reject: false });

  it('starts with a shebang, sits alone in its folder and prints its version', async () => {
    expect((await readFile(agentFile, 'utf8')).startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(await readdir(dir)).toEqual(['devpilot-agent.cjs']);
    const r = await runAgent(['--version']);
    expect([r.exitCode, r.stdout]).toEqual([0, version]);
  });

  it('explains a missing url and exits 2', async () => {
    const r = await runAgent([]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('missing --url');
  });

  it('exits 2 with a clear message when the token is refused, without logging the token', async () => {
    const cp = await new FakeControlPlane().listen();
    try {
      const r = await runAgent(['--url', cp.url], { DEVPILOT_AGENT_TOKEN: 'wrong-secret-token' });
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toContain('refused the agent token');
      expect(r.stderr).not.toContain('wrong-secret-token');
    } finally {
      await cp.close();
    }
  });

  it('runs a script for the control plane and exits 0 on SIGTERM', async () => {
    const cp = await new FakeControlPlane().listen();
    try {
      const agent = runAgent(['--url', cp.url, '--token', 'good-token']);
      const id = randomUUID();
      expect(await cp.start({ executionId: id, content: 'echo from the bundle' })).toEqual({ accepted: true });
      expect(await cp.waitFinished(id)).toMatchObject({ exitCode: 0 });
      expect(cp.bytes(id).toString()).toBe('from the bundle\n');
      agent.kill('SIGTERM');
      const r = await agent;
      expect(r.exitCode).toBe(0);
      const logs = r.stderr.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { msg: string });
      expect(logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['connected', 'execution started', 'stopped']));
      expect(r.stderr).not.toContain('echo from the bundle');
    } finally {
      await cp.close();
    }
  });
});
