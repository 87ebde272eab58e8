// Script secrets: write-only values a script declares and gets as environment variables, masked in
// its output before it leaves the agent, the server's value over the workspace's, a missing one
// failing the run before it starts, and the value nowhere afterwards (logs, database, temp files).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { launchChromium } from './support/browser.js';
import { type AgentProcess, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getOutput, outputOf, readEvents, run, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { dumpDatabase, filesText, forms } from './support/secret-scan.js';
import { ViewerClient } from './support/viewer.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
let agentTmp: string;
const agents: AgentProcess[] = [];
const workspaceValue = `ws-${randomBytes(12).toString('hex')}`;
const serverValue = `srv-${randomBytes(12).toString('hex')}`;

async function agentFor(name: string): Promise<{ id: string }> {
  const server = await createServer(api, name);
  agents.push(await startAgent({ url: cp.url, token: server.agentToken, env: { TMPDIR: agentTmp } }));
  await waitFor('the agent online', async () => (await api.get(`/api/v1/servers/${server.id}`)).body.status === 'online', 30_000);
  return server;
}

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_LOG_LEVEL: 'debug' } });
  api = new Api(cp.url, cp.adminKey);
  agentTmp = await mkdtemp(path.join(os.tmpdir(), 'devpilot-secrets-tmp-'));
  // The agents run as root here and their scripts as devpilot-run, which must be able to enter it.
  await chmod(agentTmp, 0o711);
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  await cp?.stop();
  await db?.drop();
  await rm(agentTmp, { recursive: true, force: true });
});

// Whole on stdout, split across two writes with a pause between, and on stderr; then which value it
// got (compared by hash, so the value is not in the script's text).
const PRINTER = `echo "whole: $API_TOKEN"
printf '%s' "\${API_TOKEN:0:7}"; sleep 0.3; printf '%s\\n' "\${API_TOKEN:7}"
echo "err: $API_TOKEN" >&2
[ "$(printf '%s' "$API_TOKEN" | sha256sum | cut -c1-64)" = "${createHash('sha256').update(serverValue).digest('hex')}" ] && echo "server value" || echo "workspace value"`;

describe('script secrets', () => {
  let plain: { id: string };
  let special: { id: string };

  it('are write-only: created, listed and replaced without their value ever coming back; bad names refused', async () => {
    plain = await agentFor('sec-plain');
    special = await agentFor('sec-special');
    const ws = await api.post('/api/v1/secrets', { name: 'API_TOKEN', value: 'first-value-123' });
    expect(ws.status).toBe(201);
    expect(Object.keys(ws.body).sort()).toEqual(['createdAt', 'id', 'name', 'serverId', 'updatedAt']);
    expect(ws.body).toMatchObject({ name: 'API_TOKEN', serverId: null });
    const replaced = await api.put(`/api/v1/secrets/${ws.body.id}`, { value: workspaceValue });
    expect(replaced.status).toBe(200);
    expect(JSON.stringify(replaced.body)).not.toContain(workspaceValue);
    const srv = await api.post('/api/v1/secrets', { name: 'API_TOKEN', value: serverValue, serverId: special.id });
    expect(srv.status).toBe(201);
    expect(srv.body.serverId).toBe(special.id);

    expect((await api.post('/api/v1/secrets', { name: 'API_TOKEN', value: 'again-and-again' })).body.code).toBe('CONFLICT');
    for (const name of ['PATH', 'DEVPILOT_X', 'LD_PRELOAD', 'lower', '9LIVES', 'A'.repeat(65), 'NODE_OPTIONS']) {
      const r = await api.post('/api/v1/secrets', { name, value: 'whatever-value' });
      expect([r.status, r.body.code]).toEqual([400, 'VALIDATION_ERROR']);
    }
    expect((await api.post('/api/v1/secrets', { name: 'BIG', value: 'x'.repeat(64 * 1024 + 1) })).status).toBe(400);
    expect((await api.post('/api/v1/secrets', { name: 'ELSEWHERE', value: 'whatever-value', serverId: '00000000-0000-4000-8000-000000000000' })).status).toBe(404);

    const list = await api.get('/api/v1/secrets');
    expect(list.status).toBe(200);
    expect(list.body.items.map((s: { name: string }) => s.name)).toEqual(['API_TOKEN', 'API_TOKEN']);
    expect(JSON.stringify(list.body)).not.toMatch(new RegExp(`${workspaceValue}|${serverValue}|first-value`));

    // A viewer key sees names, changes nothing.
    const key = await api.post('/api/v1/api-keys', { name: 'viewer', role: 'viewer' });
    const viewer = new Api(cp.url, key.body.key);
    expect((await viewer.get('/api/v1/secrets')).body.items).toHaveLength(2);
    expect((await viewer.post('/api/v1/secrets', { name: 'MINE', value: 'viewer-value' })).status).toBe(403);
    expect((await viewer.put(`/api/v1/secrets/${ws.body.id}`, { value: 'viewer-value' })).status).toBe(403);
    expect((await viewer.delete(`/api/v1/secrets/${ws.body.id}`)).status).toBe(403);
  });

  it('reach the run as environment variables and are masked everywhere its output goes', async () => {
    const script = await createScript(api, PRINTER, { secrets: ['API_TOKEN'] });
    expect((await api.get(`/api/v1/scripts/${script.id}`)).body.secrets).toEqual(['API_TOKEN']);
    const viewerConn = await ViewerClient.connect(cp.url, cp.adminKey);
    try {
      const { executionId } = await run(api, script.id, plain.id);
      expect(await viewerConn.subscribe(executionId)).toEqual({ ok: true });
      const e = await waitForTerminal(api, executionId);
      expect(e.status).toBe('succeeded');
      const expected = 'whole: ***\n***\nerr: ***\nworkspace value\n';
      const stored = (await getOutput(api, executionId)).bytes.toString();
      expect([...stored].sort().join('')).toBe([...expected].sort().join('')); // stdout and stderr interleave as they came
      expect((await getOutput(api, executionId, 'stdout')).bytes.toString()).toBe('whole: ***\n***\nworkspace value\n');
      expect((await getOutput(api, executionId, 'stderr')).bytes.toString()).toBe('err: ***\n');
      const sse = outputOf((await readEvents(api, executionId)).events);
      expect(sse.bytes.toString()).toBe(stored);
      await waitFor('the viewer got it all', () => viewerConn.bytes(executionId).length === Buffer.byteLength(stored));
      expect(viewerConn.bytes(executionId).toString()).toBe(stored);
    } finally {
      viewerConn.close();
    }

    // The server's own value wins over the workspace's.
    const onSpecial = await run(api, script.id, special.id);
    expect((await waitForTerminal(api, onSpecial.executionId)).status).toBe('succeeded');
    expect((await getOutput(api, onSpecial.executionId, 'stdout')).bytes.toString()).toBe('whole: ***\n***\nserver value\n');
  });

  it('fail a run before it starts when a declared secret does not exist, naming it', async () => {
    const script = await createScript(api, 'echo should-not-run', { secrets: ['API_TOKEN', 'NOT_THERE'] });
    const { executionId } = await run(api, script.id, plain.id);
    const e = await waitForTerminal(api, executionId);
    expect(e.status).toBe('failed');
    expect(e.error).toMatch(/secret NOT_THERE is not defined/);
    expect(e.startedAt).toBeNull();
    expect(e.outputBytes).toBe(0);
    // A change of the declared names is a new version; a reserved name is refused.
    const patched = await api.patch(`/api/v1/scripts/${script.id}`, { secrets: ['API_TOKEN'] });
    expect(patched.body.version).toBe(2);
    expect((await api.get(`/api/v1/scripts/${script.id}/versions/1`)).body.secrets).toEqual(['API_TOKEN', 'NOT_THERE']);
    expect((await api.patch(`/api/v1/scripts/${script.id}`, { secrets: ['PATH'] })).body.code).toBe('VALIDATION_ERROR');
  });

  it('leave their values in no log, nowhere in the database and nowhere in the agent temp folder', async () => {
    const dump = await dumpDatabase(db);
    const tmp = await filesText(agentTmp);
    const places: Record<string, string> = {
      'control plane logs (debug)': cp.proc.logs,
      'agent logs': agents.map((a) => a.proc.logs).join('\n'),
      [`database (${dump.how})`]: dump.text,
      [`agent temp folder (${tmp.files} files)`]: tmp.text,
    };
    expect(dump.text).toContain('API_TOKEN'); // the place is real
    const found: string[] = [];
    for (const [place, text] of Object.entries(places)) {
      for (const v of [workspaceValue, serverValue, 'first-value-123']) for (const f of forms(v)) if (text.includes(f)) found.push(`${v} in ${place}`);
    }
    expect(found).toEqual([]);
  });

  it('are set up in the dashboard: a write-only value, picked by the script editor, warned about where missing', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(20_000);
      await page.goto(cp.url);
      await page.getByTestId('signin-api-key').fill(cp.adminKey);
      await page.getByTestId('signin-submit').click();
      await page.getByTestId('nav-secrets').click();
      await page.getByTestId('secret-list').waitFor();
      const value = `ui-${randomBytes(10).toString('hex')}`;
      await page.getByTestId('secret-name-input').fill('UI_KEY');
      await page.getByTestId('secret-value-input').fill(value);
      await page.getByTestId('secret-create-submit').click();
      await page.getByTestId('secret-name').filter({ hasText: 'UI_KEY' }).waitFor();
      expect(await page.locator('body').innerText()).not.toContain(value);
      expect((await api.get('/api/v1/secrets')).body.items.some((x: { name: string }) => x.name === 'UI_KEY')).toBe(true);

      // The editor offers the names; picking one and saving makes a new version; a server without it is warned about.
      const script = await createScript(api, 'echo "$UI_KEY"');
      await page.goto(`${cp.url}/scripts/${script.id}`);
      await page.getByTestId('script-secret-UI_KEY').check();
      await page.getByTestId('script-save').click();
      await page.getByTestId('script-saved').waitFor();
      expect((await api.get(`/api/v1/scripts/${script.id}`)).body).toMatchObject({ secrets: ['UI_KEY'], version: 2 });
      await api.post('/api/v1/secrets', { name: 'ONLY_SPECIAL', value: 'special-only-value', serverId: special.id });
      await api.patch(`/api/v1/scripts/${script.id}`, { secrets: ['ONLY_SPECIAL', 'UI_KEY'] });
      await page.reload();
      await page.getByTestId('run-server-select').selectOption({ label: `${(await api.get(`/api/v1/servers/${plain.id}`)).body.name} (online)` });
      await expect(page.getByTestId('secrets-missing').first().innerText()).resolves.toMatch(/ONLY_SPECIAL/);
    } finally {
      await browser.close();
    }
  });
});
