import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type AgentProcess, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getOutput, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { triggerWith } from './support/webhook-fixtures.js';

/** The trigger's answer says where the run is: sent to an online agent at once, or queued for an offline one. */
let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
let agent: AgentProcess | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url });
  api = new Api(cp.url, cp.adminKey);
});

afterAll(async () => {
  await agent?.stop();
  await cp?.stop();
  await db?.drop();
});

async function webhookOn(serverId: string, content: string): Promise<string> {
  const script = await createScript(api, content);
  const r = await api.post(`/api/v1/scripts/${script.id}/webhooks`, { name: 'dispatch', serverId });
  expect(r.status).toBe(201);
  return r.body.token;
}

describe('trigger dispatch', () => {
  it('answers dispatched when the agent is online, and the run completes with its output', async () => {
    const server = await createServer(api, 'online');
    agent = await startAgent({ url: cp.url, token: server.agentToken });
    const token = await webhookOn(server.id, 'echo "run $DEVPILOT_TRIGGER"');
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 20_000;
      const poll = async () => {
        const s = await api.get(`/api/v1/servers/${server.id}`);
        if (s.body.status === 'online') return resolve();
        if (Date.now() > deadline) return reject(new Error('agent never came online'));
        setTimeout(() => void poll(), 50);
      };
      void poll();
    });
    // The server turns online at connect; give the hello a moment to make the agent ready.
    let r = await triggerWith(cp.url, token);
    for (let i = 0; i < 40 && r.body.status === 'queued'; i++) {
      await waitForTerminal(api, r.body.executionId);
      r = await triggerWith(cp.url, token);
    }
    expect(r.status).toBe(202);
    expect(r.body.status).toBe('dispatched');
    const done = await waitForTerminal(api, r.body.executionId);
    expect(done).toMatchObject({ status: 'succeeded', exitCode: 0, trigger: 'webhook' });
    expect((await getOutput(api, r.body.executionId)).bytes.toString()).toBe('run webhook\n');
  });

  it('answers queued when the agent is offline, and never sends it twice once it connects', async () => {
    const server = await createServer(api, 'offline');
    const token = await webhookOn(server.id, 'echo once');
    const calls = await Promise.all(Array.from({ length: 5 }, () => triggerWith(cp.url, token)));
    expect(calls.map((c) => [c.status, c.body.status])).toEqual(Array(5).fill([202, 'queued']));
    const late = await startAgent({ url: cp.url, token: server.agentToken });
    try {
      for (const c of calls) {
        const done = await waitForTerminal(api, c.body.executionId);
        expect(done.status).toBe('succeeded');
        expect((await getOutput(api, c.body.executionId)).bytes.toString()).toBe('once\n');
      }
      const rows = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM execution WHERE server_id = $1 AND status = 'succeeded'`, [server.id]);
      expect(rows[0]!.n).toBe(5);
    } finally {
      await late.stop();
    }
  });
});
