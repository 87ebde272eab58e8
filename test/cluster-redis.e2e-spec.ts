// REDIS_URL moves the socket.io adapter between nodes to Redis: two nodes, the agent on one, the
// trigger, the viewer and the cancel on the other. Skipped (and says so) without a Redis on
// 127.0.0.1:6379 (.ci/run installs redis-server).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { type AgentProcess, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getOutput, run, waitForStatus, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { ViewerClient } from './support/viewer.js';
import { createWebhook, triggerWith } from './support/webhook-fixtures.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const adminKey = `test-admin-${randomBytes(24).toString('hex')}`;
let db: TestDatabase;
const nodes: ControlPlane[] = [];
let agent: AgentProcess | undefined;
const viewers: ViewerClient[] = [];

function redisAnswers(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port || 6379), u.hostname, () => s.write('PING\r\n'));
    s.once('data', (d) => {
      resolve(d.toString().startsWith('+PONG'));
      s.destroy();
    });
    s.once('error', () => resolve(false));
  });
}

const haveRedis = await redisAnswers(REDIS_URL);
if (!haveRedis) process.stderr.write(`cluster-redis: no Redis answers at ${REDIS_URL}: skipped\n`);
// In CI a missing Redis is a failure (.ci/run starts one), not a skip.
const describeRedis = haveRedis || process.env.CI ? describe : describe.skip;

beforeAll(async () => {
  if (!haveRedis && !process.env.CI) return;
  db = await createTestDatabase();
  const env = { REDIS_URL, DEVPILOT_ADMIN_API_KEY: adminKey, DEVPILOT_MASTER_KEY: randomBytes(32).toString('hex'), DEVPILOT_SWEEP_INTERVAL_MS: '600000' };
  for (let i = 0; i < 2; i++) nodes.push(await startControlPlane({ databaseUrl: db.url, env }));
}, 120_000);

afterAll(async () => {
  for (const v of viewers) v.close();
  await agent?.stop();
  for (const n of nodes) await n.stop();
  await db?.drop();
});

describeRedis('two nodes over Redis', () => {
  it('a trigger on node B runs at once on the agent of node A; a viewer on B sees it live; a cancel on B stops it', async () => {
    const [a, b] = nodes.map((n) => new Api(n.url, adminKey));
    const server = await createServer(a, 'redis');
    agent = await startAgent({ url: nodes[0].url, token: server.agentToken });
    await waitFor('the agent online', async () => (await b.get(`/api/v1/servers/${server.id}`)).body.status === 'online', 30_000);

    const quick = await createScript(a, 'echo via redis');
    const hook = await createWebhook(a, quick.id, { serverId: server.id });
    const accepted = await triggerWith(nodes[1].url, hook.token);
    expect(accepted.status).toBe(202);
    expect((await waitForTerminal(b, accepted.body.executionId as string, 20_000)).status).toBe('succeeded');
    expect((await getOutput(b, accepted.body.executionId as string)).bytes.toString()).toBe('via redis\n');

    const long = await createScript(a, 'echo first; sleep 600');
    const { executionId } = await run(b, long.id, server.id);
    const viewer = await ViewerClient.connect(nodes[1].url, adminKey);
    viewers.push(viewer);
    expect(await viewer.subscribe(executionId)).toEqual({ ok: true });
    await waitForStatus(b, executionId, 'running');
    await waitFor('the chunk on node B', () => viewer.bytes(executionId).toString() === 'first\n', 10_000);
    expect((await b.post(`/api/v1/executions/${executionId}/cancel`, {})).status).toBe(202);
    expect((await viewer.waitTerminal(executionId, 20_000)).status).toBe('cancelled');
  });
});
