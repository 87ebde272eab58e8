// Operating it over months: output and delivery records pruned after their retention (set to
// seconds here), a workspace's storage quota, and /metrics. Real control plane, agent, PostgreSQL
// and a real browser for what the dashboard says.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { CHROMIUM, launchChromium } from './support/browser.js';
import { type AgentProcess, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getExecution, getOutput, run, waitForStatus, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { createWebhook, triggerWith } from './support/webhook-fixtures.js';

const QUOTA = 1024 * 1024;
const METRICS_TOKEN = 'metrics-token-0123456789abcdef';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
const agents: AgentProcess[] = [];

async function agentFor(a: Api, name: string): Promise<{ id: string }> {
  const server = await createServer(a, name);
  agents.push(await startAgent({ url: cp.url, token: server.agentToken }));
  await waitFor('the agent online', async () => (await a.get(`/api/v1/servers/${server.id}`)).body.status === 'online', 30_000);
  return server;
}

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({
    databaseUrl: db.url,
    env: {
      DEVPILOT_RETENTION_OUTPUT_DAYS: '3s',
      DEVPILOT_RETENTION_DELIVERIES_DAYS: '3s',
      DEVPILOT_PRUNE_INTERVAL_SECONDS: '1',
      DEVPILOT_WORKSPACE_OUTPUT_QUOTA_BYTES: String(QUOTA),
      DEVPILOT_METRICS_TOKEN: METRICS_TOKEN,
    },
  });
  api = new Api(cp.url, cp.adminKey);
});

afterAll(async () => {
  if (process.env.SHOW_CP_LOGS) (await import('node:fs')).writeFileSync('/tmp/retention-cp.log', cp?.proc.logs ?? '');
  for (const a of agents) await a.stop();
  await cp?.stop();
  await db?.drop();
});

describe('retention', () => {
  it("prunes an ended run's output and old deliveries, never a running run's output; API and dashboard say expired", async () => {
    const server = await agentFor(api, 'r-retention');
    const short = await createScript(api, 'printf hello');
    const done = await run(api, short.id, server.id);
    expect((await waitForTerminal(api, done.executionId)).status).toBe('succeeded');
    const hook = await createWebhook(api, short.id, { serverId: server.id });
    expect((await triggerWith(cp.url, hook.token)).status).toBe(202);
    expect((await api.get(`/api/v1/webhooks/${hook.id}/deliveries`)).body.items.length).toBeGreaterThan(0);

    const long = await createScript(api, 'echo started; sleep 60');
    const running = await run(api, long.id, server.id);
    await waitFor('the long run wrote', async () => (await getOutput(api, running.executionId)).bytes.toString() === 'started\n', 30_000);

    const expired = await waitFor(
      'the ended run pruned',
      async () => {
        const e = await getExecution(api, done.executionId);
        return e.outputExpiredAt ? e : undefined;
      },
      60_000,
    );
    // The row stays, with its status, exit code and byte count.
    expect(expired).toMatchObject({ status: 'succeeded', exitCode: 0, outputBytes: 5 });
    const output = await getOutput(api, done.executionId);
    expect(output.status).toBe(410);
    expect(JSON.parse(output.bytes.toString())).toMatchObject({ statusCode: 410, code: 'OUTPUT_EXPIRED' });
    const events = await api.get(`/api/v1/executions/${done.executionId}/events`);
    expect(events.status).toBe(410);
    expect(events.body.code).toBe('OUTPUT_EXPIRED');
    await waitFor('old deliveries pruned', async () => (await api.get(`/api/v1/webhooks/${hook.id}/deliveries`)).body.items.length === 0, 30_000);

    // The running run is older than the retention too, and keeps its output.
    const still = await getExecution(api, running.executionId);
    expect(still.status).toBe('running');
    expect(still.outputExpiredAt).toBeNull();
    expect((await getOutput(api, running.executionId)).bytes.toString()).toBe('started\n');

    if (existsSync(CHROMIUM)) await dashboardSaysExpired(done.executionId);
    await api.post(`/api/v1/executions/${running.executionId}/cancel`);
    await waitForStatus(api, running.executionId, 'cancelled');
  });

  it('lets an owner shorten its retention but not lengthen it past the instance value; a viewer cannot change it', async () => {
    const current = await api.get('/api/v1/workspaces/current');
    expect(current.status).toBe(200);
    expect(current.body).toMatchObject({ outputRetention: '3s', deliveryRetention: '3s', instanceOutputRetention: '3s', outputQuotaBytes: QUOTA });
    const shorter = await api.patch('/api/v1/workspaces/current', { outputRetention: '2s' });
    expect(shorter.status).toBe(200);
    expect(shorter.body).toMatchObject({ outputRetention: '2s', outputRetentionSeconds: 2, deliveryRetention: '3s' });
    const longer = await api.patch('/api/v1/workspaces/current', { deliveryRetention: '30d' });
    expect(longer.status).toBe(400);
    expect(longer.body).toMatchObject({ code: 'VALIDATION_ERROR', message: "deliveryRetention may not be longer than the instance's 3s" });
    expect((await api.patch('/api/v1/workspaces/current', { outputRetention: 'soon' })).body.code).toBe('VALIDATION_ERROR');
    const key = await api.post('/api/v1/api-keys', { name: 'reader', role: 'viewer' });
    const viewer = new Api(cp.url, key.body.key);
    expect((await viewer.get('/api/v1/workspaces/current')).status).toBe(200);
    expect((await viewer.patch('/api/v1/workspaces/current', { outputRetention: '1s' })).status).toBe(403);
    expect((await api.patch('/api/v1/workspaces/current', { outputRetention: null })).body.outputRetention).toBe('3s');
  });
});

describe('storage quota', () => {
  it('truncates a run that crosses its workspace quota at the quota, with the reason as a field, and the run completes', async () => {
    const ws = await api.post('/api/v1/workspaces', { name: 'quota-team' });
    const team = new Api(cp.url, ws.body.apiKey);
    const server = await agentFor(team, 'q-server');
    // 3 MiB of 'a' (no text is ever inserted into the output: the cut is a field).
    const script = await createScript(team, `head -c ${3 * QUOTA} /dev/zero | tr '\\0' a; echo; echo done >&2`);
    const { executionId } = await run(team, script.id, server.id);
    const e = await waitForTerminal(team, executionId);
    expect(e.status).toBe('succeeded');
    expect(e.outputTruncated).toBe(true);
    expect(e.outputTruncatedBy).toBe('workspace_quota');
    expect(e.outputBytes).toBe(QUOTA);
    const out = await getOutput(team, executionId);
    expect(out.bytes.length).toBe(QUOTA);
    expect(out.bytes.equals(Buffer.alloc(QUOTA, 'a'))).toBe(true);
    expect((await team.get('/api/v1/workspaces/current')).body).toMatchObject({ outputBytes: QUOTA, outputQuotaBytes: QUOTA });
    // Full: the next run stores nothing, and says why.
    const next = await run(team, (await createScript(team, 'echo more')).id, server.id);
    const e2 = await waitForTerminal(team, next.executionId);
    expect(e2).toMatchObject({ status: 'succeeded', outputBytes: 0, outputTruncated: true, outputTruncatedBy: 'workspace_quota' });
  });
});

describe('usage after deletions', () => {
  it("deleting a script or a server gives its runs' stored output back to the workspace at once", async () => {
    const ws = await api.post('/api/v1/workspaces', { name: 'usage-team' });
    const team = new Api(cp.url, ws.body.apiKey);
    const server = await agentFor(team, 'u-server');
    const usage = async () => (await team.get('/api/v1/workspaces/current')).body.outputBytes as number;
    // Running runs are never pruned: what they stored stays until their script or server goes.
    const seven = await createScript(team, 'printf 1234567; sleep 60');
    const three = await createScript(team, 'printf 123; sleep 60');
    await run(team, seven.id, server.id);
    await run(team, three.id, server.id);
    await waitFor('both runs stored their output', async () => (await usage()) === 10, 30_000);
    expect((await team.delete(`/api/v1/scripts/${seven.id}`)).status).toBe(204);
    expect(await usage()).toBe(3);
    expect((await team.delete(`/api/v1/servers/${server.id}`)).status).toBe(204);
    expect(await usage()).toBe(0);
    expect((await team.delete(`/api/v1/servers/${server.id}`)).status).toBe(404);
    expect((await team.delete(`/api/v1/scripts/${seven.id}`)).status).toBe(404);
  });
});

describe('metrics', () => {
  it('refuses an anonymous caller and answers the documented series with the token', async () => {
    const anonymous = await fetch(`${cp.url}/metrics`);
    expect(anonymous.status).toBe(401);
    expect((await fetch(`${cp.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);

    const server = await agentFor(api, 'm-server');
    const script = await createScript(api, 'echo metrics');
    const hook = await createWebhook(api, script.id, { serverId: server.id });
    for (let i = 0; i < 3; i++) expect((await triggerWith(cp.url, hook.token)).status).toBe(202);
    expect((await triggerWith(cp.url, 'f'.repeat(64))).status).toBe(404);
    await waitFor('the runs done', async () => (await api.get(`/api/v1/executions?webhookId=${hook.id}&status=succeeded`)).body.items.length === 3, 30_000);

    const r = await fetch(`${cp.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await r.text();
    const value = (series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    expect(value('devpilot_trigger_calls_total{code="ACCEPTED"}')).toBeGreaterThanOrEqual(3);
    expect(value('devpilot_trigger_calls_total{code="INVALID_TOKEN"}')).toBeGreaterThanOrEqual(1);
    expect(value('devpilot_trigger_accept_seconds_count')).toBeGreaterThanOrEqual(3);
    expect(value('devpilot_executions_finished_total{status="succeeded"}')).toBeGreaterThanOrEqual(3);
    expect(value('devpilot_executions_queued')).toBe(0);
    expect(value('devpilot_executions_oldest_queued_seconds')).toBe(0);
    expect(value('devpilot_agents_connected')).toBeGreaterThanOrEqual(1);
    expect(value('devpilot_viewers_connected')).toBe(0);
    expect(value('devpilot_sse_streams')).toBe(0);
    expect(value('devpilot_output_bytes_stored_total')).toBeGreaterThan(0);
    expect(value('devpilot_prune_executions_expired')).toBeGreaterThanOrEqual(1);
    expect(value('devpilot_db_pool_connections{state="max"}')).toBe(20);
    expect(value('nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    // No tenant names or ids in any series.
    expect(text).not.toContain('quota-team');
    expect(text).not.toContain(server.id);
  });
});

async function dashboardSaysExpired(executionId: string): Promise<void> {
  let browser: Browser | undefined;
  try {
    browser = await launchChromium();
    const page = await browser.newPage();
    page.setDefaultTimeout(20_000);
    await page.goto(cp.url);
    await page.getByTestId('signin-api-key').fill(cp.adminKey);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('nav-scripts').waitFor();
    await page.goto(`${cp.url}/executions/${executionId}`);
    await expect(page.getByTestId('execution-output-expired').innerText()).resolves.toMatch(/Output expired: removed by retention/);
    await page.goto(`${cp.url}/executions`);
    await expect(page.getByTestId('storage-usage').innerText()).resolves.toMatch(/Output stored: .* of 1(\.0)? MiB/);
  } finally {
    await browser?.close();
  }
}
