// Group commit of accepts: the calls for one server that arrive while its accept statement runs
// are accepted together in the next statement. Bursts of concurrent calls against the real control
// plane and PostgreSQL, repeated until /metrics shows that groups of several calls formed; every
// call of every burst must get exactly what it would have got alone: its own execution, its own
// request (passPayload), its delivery row, one count each, a delivery id run once.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createServer } from './support/executions.js';
import { FakeAgent } from './support/fake-agent.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { callTrigger, groupedAccepts, serverAndScript, type TriggerResponse } from './support/webhook-fixtures.js';

const METRICS_TOKEN = 'metrics-token-group-commit-0123456789';
const BURST = 40;
const MAX_BURSTS = 10;

let db: TestDatabase;
let cp: ControlPlane;
let owner: Api;

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_METRICS_TOKEN: METRICS_TOKEN } });
  owner = new Api(cp.url, cp.adminKey);
});

afterAll(async () => {
  await cp?.stop();
  await db?.drop();
});

/** Bursts of `BURST` concurrent calls made by `call(i)`, until some went in groups; every answer. */
async function burstsUntilGrouped(call: (i: number) => Promise<TriggerResponse>): Promise<TriggerResponse[]> {
  const groupedCalls = () => groupedAccepts(cp.url, METRICS_TOKEN);
  const before = await groupedCalls();
  const answers: TriggerResponse[] = [];
  for (let b = 0; b < MAX_BURSTS; b++) {
    answers.push(...(await Promise.all(Array.from({ length: BURST }, (_, i) => call(b * BURST + i)))));
    if ((await groupedCalls()) > before) return answers;
  }
  throw new Error(`no group of several calls formed in ${MAX_BURSTS} bursts of ${BURST}`);
}

describe('accepting concurrent calls together', () => {
  it('each call gets its own execution with its own request, its delivery row and one count', async () => {
    const server = await createServer(owner, 'group-commit');
    const agent = await FakeAgent.connect(cp.url, server.agentToken);
    try {
      const script = await owner.post('/api/v1/scripts', { name: 'group-commit', content: 'cat "$DEVPILOT_PAYLOAD_FILE"' });
      const hook = await owner.post(`/api/v1/scripts/${script.body.id as string}/webhooks`, { name: 'group', serverId: server.id, passPayload: true });
      expect(hook.status).toBe(201);
      const bodyOf = (i: number) => JSON.stringify({ call: i, pad: 'x'.repeat(i % 7) });
      const sent = new Map<string, string>();
      const answers = await burstsUntilGrouped(async (i) => {
        const r = await callTrigger(cp.url, bodyOf(i), { 'content-type': 'application/json', 'user-agent': `caller-${i}` }, hook.body.token as string);
        if (r.status === 202) sent.set(r.body.executionId as string, bodyOf(i));
        return r;
      });
      expect(answers.map((r) => r.status)).toEqual(answers.map(() => 202));
      expect(answers.every((r) => r.body.status === 'dispatched')).toBe(true);
      expect(sent.size).toBe(answers.length);
      for (const [id, body] of sent) {
        const start = await agent.waitStarted(id);
        expect(Buffer.from(start.payload!.body).toString()).toBe(body);
      }
      // Created dispatched, alone or in a group: never dispatched before it was queued.
      const times = await db.query<{ late: boolean }>(`SELECT dispatched_at < queued_at AS late FROM execution WHERE id = ANY($1::uuid[])`, [[...sent.keys()]]);
      expect(times.filter((t) => t.late)).toHaveLength(0);
      expect((await owner.get(`/api/v1/webhooks/${hook.body.id as string}`)).body.callCount).toBe(answers.length);
      const delivered = await db.query<{ execution_id: string; user_agent: string }>(
        `SELECT execution_id, user_agent FROM webhook_delivery WHERE webhook_id = $1 AND status_code = 202`,
        [hook.body.id],
      );
      expect(delivered.map((d) => d.execution_id).sort()).toEqual([...sent.keys()].sort());
      // Each delivery row is its own call's (the user agent names the body it sent).
      const callOf = new Map([...sent].map(([id, body]) => [id, `caller-${(JSON.parse(body) as { call: number }).call}`]));
      for (const d of delivered) expect(d.user_agent).toBe(callOf.get(d.execution_id));
    } finally {
      agent.socket.disconnect();
    }
  });

  it('a delivery id sent by several concurrent calls runs once; the others answer 200 naming its execution', async () => {
    const { serverId, scriptId } = await serverAndScript(owner, 'group-ids');
    const hook = await owner.post(`/api/v1/scripts/${scriptId}/webhooks`, { name: 'ids', serverId });
    const keys = Array.from({ length: 10 }, () => randomUUID());
    const answers = await burstsUntilGrouped((i) =>
      callTrigger(cp.url, undefined, { 'idempotency-key': `${keys[i % keys.length]!}-${Math.floor(i / BURST)}` }, hook.body.token as string),
    );
    const byKey = new Map<string, Set<string>>();
    answers.forEach((r, i) => {
      const key = `${i % keys.length}-${Math.floor(i / BURST)}`;
      byKey.set(key, (byKey.get(key) ?? new Set()).add(r.body.executionId as string));
    });
    // Every key: one execution, whichever call created it.
    expect([...byKey.values()].every((ids) => ids.size === 1)).toBe(true);
    expect(answers.filter((r) => r.status === 202)).toHaveLength(byKey.size);
    expect(answers.filter((r) => r.status === 200 && r.body.duplicate === true)).toHaveLength(answers.length - byKey.size);
    const rows = await db.query<{ n: string }>(`SELECT count(*) AS n FROM execution WHERE webhook_id = $1`, [hook.body.id]);
    expect(Number(rows[0]!.n)).toBe(byKey.size);
    expect((await owner.get(`/api/v1/webhooks/${hook.body.id as string}`)).body.callCount).toBe(byKey.size);
  });
});
