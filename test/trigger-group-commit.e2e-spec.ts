// Group commit of accepts: the calls for one server that arrive while its accept statement runs
// are accepted together in the next statement. Bursts of concurrent calls against the real control
// plane and PostgreSQL, repeated until /metrics shows that groups of several calls formed; every
// call of every burst must get exactly what it would have got alone: its own execution, its own
// request (passPayload), its delivery row, one count each, a delivery id run once.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createServer } from './support/executions.js';
import { FakeAgent } from './support/fake-agent.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
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

describe('the call counter', () => {
  it('is spread over a few tally rows and adds the count a node of the previous release kept on the webhook row', async () => {
    const { serverId, scriptId } = await serverAndScript(owner, 'tally');
    const hook = await owner.post(`/api/v1/scripts/${scriptId}/webhooks`, { name: 'tally', serverId });
    // What an older node moves during a rolling upgrade: the webhook row's own counter.
    await db.query(`UPDATE webhook SET call_count = 5, last_called_at = '2020-01-01T00:00:00Z' WHERE id = $1`, [hook.body.id]);
    const answers = await burstsUntilGrouped(() => callTrigger(cp.url, undefined, {}, hook.body.token as string));
    const accepted = answers.filter((r) => r.status === 202).length;
    expect(accepted).toBe(answers.length);
    const view = (await owner.get(`/api/v1/webhooks/${hook.body.id as string}`)).body;
    expect(view.callCount).toBe(5 + accepted);
    // An ISO 8601 time like every other in the API, the later of the row's own and the tally's.
    expect(view.lastCalledAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(new Date(view.lastCalledAt as string).getTime()).toBeGreaterThan(Date.parse('2026-01-01T00:00:00Z'));
    const [tally] = await db.query<{ rows: number; calls: string }>(`SELECT count(*)::int AS rows, sum(calls) AS calls FROM webhook_call_tally WHERE webhook_id = $1`, [hook.body.id]);
    expect(Number(tally!.calls)).toBe(accepted);
    expect(tally!.rows).toBeLessThanOrEqual(32);
    // The listing shows the same sum.
    const listed = (await owner.get(`/api/v1/scripts/${scriptId}/webhooks`)).body.items as { id: string; callCount: number }[];
    expect(listed.find((w) => w.id === hook.body.id)?.callCount).toBe(5 + accepted);
  });

  it('an edit of the webhook in progress is waited for, alone or in a group: calls are checked against its outcome', async () => {
    const { serverId, scriptId } = await serverAndScript(owner, 'tally-edit');
    const hook = await owner.post(`/api/v1/scripts/${scriptId}/webhooks`, { name: 'edit', serverId });
    const token = hook.body.token as string;
    // The node now knows the webhook as active and goes straight to the accept statement.
    expect((await callTrigger(cp.url, undefined, {}, token)).status).toBe(202);
    const waiting = (like: string) =>
      waitFor(`a statement like ${like} waiting on a lock`, async () => {
        const [w] = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1`,
          [`%${like}%`],
        );
        return w!.n > 0;
      });
    const holder = new pg.Client({ connectionString: db.url });
    const editor = new pg.Client({ connectionString: db.url });
    await holder.connect();
    await editor.connect();
    try {
      // The server row held: the next accept statement stops at its run's reference to the server,
      // holding its share of the webhook row; the calls after it gather for the next statement.
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM server WHERE id = $1 FOR UPDATE`, [serverId]);
      const first = callTrigger(cp.url, undefined, {}, token);
      await waiting('INSERT INTO execution');
      const groupedBefore = await groupedAccepts(cp.url, METRICS_TOKEN);
      const calls = Array.from({ length: 15 }, () => callTrigger(cp.url, undefined, {}, token));
      // The edit waits for that accept (it holds a share of the row)...
      await editor.query('BEGIN');
      const edit = editor.query(`UPDATE webhook SET active = false WHERE id = $1`, [hook.body.id]);
      await waiting('UPDATE webhook SET active');
      await holder.query('COMMIT');
      // ...which commits first: it was decided before the edit.
      expect((await first).status).toBe(202);
      await edit;
      // The group statement after it waits for the edit, not yet committed.
      await waiting('jsonb_to_recordset');
      await editor.query('COMMIT');
      const answers = await Promise.all(calls);
      expect(answers.map((r) => r.status)).toEqual(answers.map(() => 404));
      expect(answers.every((r) => r.body.code === 'INVALID_TOKEN')).toBe(true);
      expect(await groupedAccepts(cp.url, METRICS_TOKEN)).toBeGreaterThan(groupedBefore);
    } finally {
      await holder.end();
      await editor.end();
    }
    expect((await owner.get(`/api/v1/webhooks/${hook.body.id as string}`)).body.callCount).toBe(2);
    const [runs] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM execution WHERE webhook_id = $1`, [hook.body.id]);
    expect(runs!.n).toBe(2);
  });
});
