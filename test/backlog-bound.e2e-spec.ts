// A bounded backlog: past DEVPILOT_MAX_QUEUED_PER_SERVER runs waiting for one server, calls answer
// 503 OVERLOADED with Retry-After and nothing is written (no run, no counted call); other servers
// are not affected, and room comes back as runs leave the queue. The requests kept for waiting runs
// (passPayload) are bounded too, in bytes per server (DEVPILOT_MAX_QUEUED_REQUEST_BYTES_PER_SERVER).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { callTrigger, createWebhook, groupedAccepts, serverAndScript, triggerWith } from './support/webhook-fixtures.js';

const BOUND = 3;
/** Two requests of 2,000 bytes fit once sealed, a third does not. */
const REQUEST_BYTES_BOUND = 4500;
const METRICS_TOKEN = 'metrics-token-backlog-bound-0123456789';
let db: TestDatabase;
let cp: ControlPlane;
let owner: Api;

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({
    databaseUrl: db.url,
    env: {
      DEVPILOT_MAX_QUEUED_PER_SERVER: String(BOUND),
      DEVPILOT_MAX_QUEUED_REQUEST_BYTES_PER_SERVER: String(REQUEST_BYTES_BOUND),
      DEVPILOT_METRICS_TOKEN: METRICS_TOKEN,
    },
  });
  owner = new Api(cp.url, cp.adminKey);
});

afterAll(async () => {
  await cp?.stop();
  await db?.drop();
});

describe('the backlog bound per server', () => {
  it('answers 503 OVERLOADED with Retry-After past the bound, writes nothing, and takes calls again once there is room', async () => {
    // No agent: every accepted run waits in the queue.
    const { serverId, scriptId } = await serverAndScript(owner, 'bound');
    const w = await createWebhook(owner, scriptId, { serverId });
    const accepted: string[] = [];
    for (let i = 0; i < BOUND; i++) {
      const r = await triggerWith(cp.url, w.token);
      expect([r.status, r.body.status]).toEqual([202, 'queued']);
      accepted.push(r.body.executionId);
    }
    const full = await triggerWith(cp.url, w.token);
    expect([full.status, full.body.code]).toEqual([503, 'OVERLOADED']);
    expect(Number(full.headers.get('retry-after'))).toBeGreaterThan(0);
    const manual = await owner.post(`/api/v1/scripts/${scriptId}/executions`, { serverId });
    expect([manual.status, manual.body.code]).toEqual([503, 'OVERLOADED']);
    expect((await owner.get(`/api/v1/webhooks/${w.id}`)).body.callCount).toBe(BOUND);
    expect((await owner.get(`/api/v1/executions?serverId=${serverId}`)).body.items).toHaveLength(BOUND);
    const deliveries = (await owner.get(`/api/v1/webhooks/${w.id}/deliveries`)).body.items as { statusCode: number; code: string }[];
    expect(deliveries.filter((d) => d.statusCode === 503).map((d) => d.code)).toEqual(['OVERLOADED']);

    // Another server has its own room.
    const other = await serverAndScript(owner, 'bound-other');
    expect((await owner.post(`/api/v1/scripts/${other.scriptId}/executions`, { serverId: other.serverId })).status).toBe(202);

    // One run leaves the queue: one call fits again.
    expect((await owner.post(`/api/v1/executions/${accepted[0]}/cancel`)).body.status).toBe('cancelled');
    expect((await triggerWith(cp.url, w.token)).status).toBe(202);
    expect((await triggerWith(cp.url, w.token)).status).toBe(503);
  });

  it('concurrent calls accepted together: the calls queued ahead in the same statement count toward the bound', async () => {
    const groupedCalls = () => groupedAccepts(cp.url, METRICS_TOKEN);
    const before = await groupedCalls();
    // A fresh server for each burst (no agent: every run waits), until a burst went in groups.
    for (let burst = 0; (await groupedCalls()) === before; burst++) {
      if (burst === 10) throw new Error('no group of several calls formed in 10 bursts');
      const { serverId, scriptId } = await serverAndScript(owner, `bound-burst-${burst}`);
      const w = await createWebhook(owner, scriptId, { serverId });
      const answers = await Promise.all(Array.from({ length: 30 }, () => triggerWith(cp.url, w.token)));
      expect(answers.filter((r) => r.status === 202)).toHaveLength(BOUND);
      expect(answers.filter((r) => r.status === 503 && r.body.code === 'OVERLOADED')).toHaveLength(30 - BOUND);
      expect((await owner.get(`/api/v1/webhooks/${w.id}`)).body.callCount).toBe(BOUND);
      expect((await owner.get(`/api/v1/executions?serverId=${serverId}`)).body.items).toHaveLength(BOUND);
    }
  });

  it('bounds the bytes of the requests kept for waiting runs: a request past it is 503 OVERLOADED, a call keeping none still fits', async () => {
    const { serverId, scriptId } = await serverAndScript(owner, 'bound-bytes');
    const keeps = (await owner.post(`/api/v1/scripts/${scriptId}/webhooks`, { name: 'keeps', serverId, passPayload: true })).body as { id: string; token: string };
    const plain = await createWebhook(owner, scriptId, { serverId, name: 'plain' });
    const send = (bytes: number) => callTrigger(cp.url, 'x'.repeat(bytes), { 'content-type': 'text/plain' }, keeps.token);
    expect([(await send(2000)).status, (await send(2000)).status]).toEqual([202, 202]);
    const full = await send(2000);
    expect([full.status, full.body.code]).toEqual([503, 'OVERLOADED']);
    expect(Number(full.headers.get('retry-after'))).toBeGreaterThan(0);
    const kept = async () =>
      Number((await db.query<{ n: string }>(`SELECT coalesce(sum(octet_length(p.body_encrypted)), 0) AS n FROM execution_payload p JOIN execution e ON e.id = p.execution_id WHERE e.server_id = $1`, [serverId]))[0]!.n);
    expect(await kept()).toBeLessThanOrEqual(REQUEST_BYTES_BOUND);
    expect((await owner.get(`/api/v1/webhooks/${keeps.id}`)).body.callCount).toBe(2);
    // Two runs wait (under the bound of 3): a call that keeps no request is taken.
    const noRequest = await triggerWith(cp.url, plain.token);
    expect(noRequest.status).toBe(202);
    // A smaller request fits once a run left the queue.
    expect((await owner.post(`/api/v1/executions/${noRequest.body.executionId as string}/cancel`)).body.status).toBe('cancelled');
    expect((await send(300)).status).toBe(202);
    expect(await kept()).toBeLessThanOrEqual(REQUEST_BYTES_BOUND);
  });

  it('concurrent calls with requests accepted together: the requests queued ahead in the same statement count toward the bytes', async () => {
    const groupedCalls = () => groupedAccepts(cp.url, METRICS_TOKEN);
    const before = await groupedCalls();
    for (let burst = 0; (await groupedCalls()) === before; burst++) {
      if (burst === 10) throw new Error('no group of several calls formed in 10 bursts');
      const { serverId, scriptId } = await serverAndScript(owner, `bound-bytes-burst-${burst}`);
      const w = (await owner.post(`/api/v1/scripts/${scriptId}/webhooks`, { name: 'keeps', serverId, passPayload: true })).body as { id: string; token: string };
      const answers = await Promise.all(Array.from({ length: 30 }, () => callTrigger(cp.url, 'y'.repeat(2000), { 'content-type': 'text/plain' }, w.token)));
      expect(answers.filter((r) => r.status === 202)).toHaveLength(2);
      expect(answers.filter((r) => r.status === 503 && r.body.code === 'OVERLOADED')).toHaveLength(28);
      expect((await owner.get(`/api/v1/webhooks/${w.id}`)).body.callCount).toBe(2);
      expect((await owner.get(`/api/v1/executions?serverId=${serverId}`)).body.items).toHaveLength(2);
    }
  });
});
