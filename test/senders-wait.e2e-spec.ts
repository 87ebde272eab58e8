import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type AgentProcess, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { TRIGGER_PATH } from './support/webhook-fixtures.js';

/** Waiting for the result (`Prefer: wait=N`, `?wait=N`) with a real agent running the scripts. */
let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
let agent: AgentProcess;
let serverId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url });
  api = new Api(cp.url, cp.adminKey);
  const server = await createServer(api, 'waiting');
  serverId = server.id;
  agent = await startAgent({ url: cp.url, token: server.agentToken });
  await waitFor('the agent online', async () => (await api.get(`/api/v1/servers/${serverId}`)).body.status === 'online');
});

afterAll(async () => {
  await agent?.stop();
  await cp?.stop();
  await db?.drop();
});

async function hook(content: string): Promise<string> {
  const script = await createScript(api, content);
  const r = await api.post(`/api/v1/scripts/${script.id}/webhooks`, { name: 'wait', serverId });
  expect(r.status).toBe(201);
  return r.body.token as string;
}

async function call(token: string, headers: Record<string, string> = {}, query = '') {
  const res = await fetch(`${cp.url}${TRIGGER_PATH}/${token}${query}`, { method: 'POST', headers });
  return { status: res.status, body: (await res.json()) as any, headers: res.headers };
}

describe('wait mode', () => {
  it('Prefer: wait=N answers 200 with the exit code, duration and output of a short run', async () => {
    const token = await hook('echo "out $DEVPILOT_TRIGGER $DEVPILOT_WEBHOOK_NAME"; echo "id $DEVPILOT_EXECUTION_ID"; echo err >&2; exit 3');
    const r = await call(token, { prefer: 'respond-async, wait=30' });
    expect(r.status).toBe(200);
    expect(r.headers.get('preference-applied')).toBe('wait=30');
    expect(r.body).toMatchObject({ status: 'failed', exitCode: 3, signal: null, outputTruncated: false, outputBytes: 61 });
    // Every webhook run sees its execution id, its trigger and its webhook's name.
    expect(r.body.output).toContain('out webhook wait\n');
    expect(r.body.output).toContain(`id ${r.body.executionId as string}\n`);
    expect(r.body.output).toContain('err\n');
    expect(r.body.durationMs).toEqual(expect.any(Number));
    expect(r.body.links.execution).toBe(`/api/v1/executions/${r.body.executionId}`);
  });

  it('?wait=N works too; the output is the last 64 KiB, invalid UTF-8 replaced', async () => {
    const token = await hook(`printf 'a%.0s' $(seq 1 70000); printf '\\377end'`);
    const r = await call(token, {}, '?wait=30');
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('succeeded');
    expect(r.body.exitCode).toBe(0);
    expect(r.body.outputBytes).toBe(70004);
    expect(r.body.output.endsWith('a\uFFFDend')).toBe(true);
    expect(Buffer.byteLength(r.body.output)).toBeLessThanOrEqual(64 * 1024 + 2);
    expect(r.body.output.length).toBeGreaterThan(64 * 1024 - 10);
  });

  it('a run longer than the wait answers the usual 202', async () => {
    const token = await hook('sleep 30');
    const r = await call(token, { prefer: 'wait=1' });
    expect(r.status).toBe(202);
    expect(r.headers.get('preference-applied')).toBeNull();
    expect(['dispatched', 'running', 'queued']).toContain(r.body.status);
    expect((await api.post(`/api/v1/executions/${r.body.executionId}/cancel`)).status).toBe(202);
    await waitForTerminal(api, r.body.executionId);
  });

  it('without a wait preference the answer does not wait', async () => {
    const token = await hook('sleep 30');
    const r = await call(token);
    expect(r.status).toBe(202);
    await api.post(`/api/v1/executions/${r.body.executionId}/cancel`);
  });
});
