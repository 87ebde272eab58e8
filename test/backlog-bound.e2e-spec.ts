// A bounded backlog: past DEVPILOT_MAX_QUEUED_PER_SERVER runs waiting for one server, calls answer
// 503 OVERLOADED with Retry-After and nothing is written (no run, no counted call); other servers
// are not affected, and room comes back as runs leave the queue.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { createWebhook, groupedAccepts, serverAndScript, triggerWith } from './support/webhook-fixtures.js';

const BOUND = 3;
const METRICS_TOKEN = 'metrics-token-backlog-bound-0123456789';
let db: TestDatabase;
let cp: ControlPlane;
let owner: Api;

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_MAX_QUEUED_PER_SERVER: String(BOUND), DEVPILOT_METRICS_TOKEN: METRICS_TOKEN } });
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
});
