// A bounded backlog: past DEVPILOT_MAX_QUEUED_PER_SERVER runs waiting for one server, calls answer
// 503 OVERLOADED with Retry-After and nothing is written (no run, no counted call); other servers
// are not affected, and room comes back as runs leave the queue.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { createWebhook, serverAndScript, triggerWith } from './support/webhook-fixtures.js';

const BOUND = 3;
let db: TestDatabase;
let cp: ControlPlane;
let owner: Api;

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_MAX_QUEUED_PER_SERVER: String(BOUND) } });
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
});
