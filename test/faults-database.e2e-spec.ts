// PostgreSQL away under load: a network partition (connections hang), the server refusing, and a
// real restart of the server, each once per round at a random point of a streaming run while
// triggers and management calls keep coming. While it is away every answer is a quick 503
// DATABASE_UNAVAILABLE (never a hang, never a 500); afterwards the same control plane process
// serves again, the agent delivers what it held, and nothing is lost or stored twice.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { type AgentProcess, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { DatabaseGate, OwnPostgres } from './support/db-gate.js';
import { createScript, createServer, getExecution, getOutput, run, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { sleep, waitFor } from './support/processes.js';
import { createWebhook, TRIGGER_PATH } from './support/webhook-fixtures.js';
import { recordFigure } from './support/figures.js';

let ownPg: OwnPostgres;
let gate: DatabaseGate;
let cp: ControlPlane;
let api: Api;
let agent: AgentProcess;
let serverId: string;
let token: string;
let webhookId: string;
const tmpFiles: string[] = [];
/** Callers still running: stopped before the processes go, also when a test failed midway. */
const loads = new Set<{ stop(): Promise<Answer[]> }>();

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const rand = (min: number, max: number) => min + Math.random() * (max - min);

/** A hang detector, not a speed check: the pool gives up on a connection after 3 s. */
const HANG_MS = 20_000;

interface Answer {
  what: 'trigger' | 'management' | 'health';
  status: number;
  code?: string;
  ms: number;
  executionId?: string;
  body: string;
}

async function call(what: Answer['what']): Promise<Answer> {
  const t0 = performance.now();
  const init: RequestInit =
    what === 'trigger'
      ? { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) }
      : what === 'management'
        ? { headers: { authorization: `Bearer ${cp.adminKey}` } }
        : {};
  const url = `${cp.url}${what === 'trigger' ? TRIGGER_PATH : what === 'management' ? `/api/v1/servers/${serverId}` : '/health'}`;
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(HANG_MS) });
    const body = await res.text();
    let parsed: { code?: string; executionId?: string } = {};
    try {
      parsed = JSON.parse(body) as typeof parsed;
    } catch {
      /* not JSON: kept as text */
    }
    return { what, status: res.status, code: parsed.code, executionId: parsed.executionId, ms: performance.now() - t0, body: body.slice(0, 300) };
  } catch (e) {
    return { what, status: 0, code: `NO ANSWER: ${String(e)}`, ms: performance.now() - t0, body: '' };
  }
}

/** Keeps `lanes` callers busy with triggers and management calls until stopped. */
function traffic(lanes: number) {
  const answers: Answer[] = [];
  let running = true;
  const loops = Array.from({ length: lanes }, async (_, lane) => {
    for (let i = 0; running && i < 100_000; i++) {
      answers.push(await call(lane % 2 === 0 ? 'trigger' : 'management'));
      await sleep(rand(10, 60));
    }
  });
  const load = {
    answers,
    async stop() {
      running = false;
      loads.delete(load);
      await Promise.all(loops);
      return answers;
    },
  };
  loads.add(load);
  return load;
}

function tmpFile(ext: string): string {
  const f = path.join(os.tmpdir(), `devpilot-dbfault-${randomBytes(6).toString('hex')}.${ext}`);
  tmpFiles.push(f);
  return f;
}

beforeAll(async () => {
  ownPg = await OwnPostgres.start();
  gate = await DatabaseGate.start(ownPg.port);
  cp = await startControlPlane({ databaseUrl: gate.via(ownPg.url), env: { DEVPILOT_SWEEP_INTERVAL_MS: '500' } });
  api = new Api(cp.url, cp.adminKey);
  const server = await createServer(api, 'db-faults');
  serverId = server.id;
  agent = await startAgent({ url: cp.url, token: server.agentToken, concurrency: 8 });
  await waitFor('the agent online', async () => (await api.get(`/api/v1/servers/${serverId}`)).body.status === 'online', 30_000);
  const quick = await createScript(api, 'echo triggered');
  const hook = await createWebhook(api, quick.id, { serverId });
  token = hook.token;
  webhookId = hook.id;
}, 120_000);

afterAll(async () => {
  if (process.env.SHOW_CP_LOGS) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`/tmp/dbfaults-cp-${process.pid}.log`, cp?.proc.logs ?? '');
    writeFileSync(`/tmp/dbfaults-agent-${process.pid}.log`, agent?.proc.logs ?? '');
  }
  for (const load of [...loads]) await load.stop();
  await agent?.stop();
  await cp?.stop();
  await gate?.close();
  await ownPg?.destroy();
  for (const f of tmpFiles) await rm(f, { force: true });
});

type Fault = 'partition' | 'refused' | 'restart';

async function outage(fault: Fault, downMs: number): Promise<Answer[]> {
  const during: Answer[] = [];
  if (fault === 'partition') gate.blackhole();
  else if (fault === 'refused') gate.refuse();
  else await ownPg.stop();
  const until = Date.now() + downMs;
  // The health check is probed while it is down (one at a time, it may take up to its timeout).
  while (Date.now() < until) {
    during.push(await call('health'));
    await sleep(50);
  }
  if (fault === 'restart') gate.open((await ownPg.restart(), ownPg.port));
  else gate.open();
  return during;
}

/** What to look at when the control plane does not come back: its process, its health's details, the database's sessions, its last log lines. */
async function diagnosis(): Promise<string> {
  const health = await fetch(`${cp.url}/health`, { headers: { authorization: `Bearer ${cp.adminKey}` }, signal: AbortSignal.timeout(5_000) })
    .then(async (r) => `${r.status} ${await r.text()}`)
    .catch((e: unknown) => String(e));
  let sessions: string;
  const direct = new pg.Client({ connectionString: ownPg.url });
  try {
    await direct.connect();
    const found = await direct.query(
      `SELECT application_name, state, wait_event_type, wait_event, (now() - xact_start)::text AS in_transaction, left(query, 160) AS query
       FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`,
    );
    sessions = JSON.stringify(found.rows);
  } catch (e) {
    sessions = String(e);
  } finally {
    await direct.end().catch(() => undefined);
  }
  const tail = cp.proc.logs.split('\n').slice(-40).join('\n');
  return `control plane exit code: ${cp.proc.child.exitCode ?? 'still running'}\n/health with a key: ${health}\nsessions: ${sessions}\nlast log lines:\n${tail}`;
}

describe('PostgreSQL away under load', () => {
  const pid = () => cp.proc.child.pid;

  it('answers 503 DATABASE_UNAVAILABLE while it is away, recovers without a restart, loses nothing', async () => {
    const startPid = pid();
    const faults: Fault[] = ['partition', 'refused', 'restart'];
    const all: Answer[] = [];
    const healthDuring: Answer[] = [];
    const streams: { executionId: string; file: string; chunks: number }[] = [];
    for (const [round, fault] of faults.entries()) {
      const file = tmpFile('bin');
      const chunks = 50;
      const script = await createScript(api, `for i in $(seq 1 ${chunks}); do head -c 32768 /dev/urandom; sleep 0.1; done | tee '${file}'`);
      const { executionId } = await run(api, script.id, serverId);
      streams.push({ executionId, file, chunks });
      const load = traffic(6);
      // A random point of the run: after some output is stored, before the script ends.
      await waitFor('some output stored', async () => (await getExecution(api, executionId)).outputBytes > 0, 30_000);
      await sleep(rand(0, 1500));
      const downMs = rand(2500, 5000);
      healthDuring.push(...(await outage(fault, downMs)));
      await waitFor(`healthy again after the ${fault} (round ${round + 1})`, async () => (await call('health')).status === 200, 60_000).catch(async (e: unknown) => {
        throw new Error(`${(e as Error).message}\n${await diagnosis()}`);
      });
      await sleep(1000);
      all.push(...(await load.stop()));
    }

    // Never a hang, never a 500, never anything but 2xx or a 503 with the code.
    const bad = all.filter((a) => !(a.status >= 200 && a.status < 300) && !(a.status === 503 && a.code === 'DATABASE_UNAVAILABLE'));
    expect({ count: bad.length, first: bad.slice(0, 5) }).toEqual({ count: 0, first: [] });
    const unavailable = all.filter((a) => a.status === 503);
    // It was really tested: both kinds of call met the outage, and so did the health check.
    expect(unavailable.filter((a) => a.what === 'trigger').length).toBeGreaterThan(0);
    expect(unavailable.filter((a) => a.what === 'management').length).toBeGreaterThan(0);
    expect(healthDuring.filter((a) => a.status === 503).length).toBeGreaterThan(0);
    expect(healthDuring.filter((a) => a.status !== 503 && a.status !== 200)).toEqual([]);
    // A 503 body is the one error shape, with no stack.
    for (const a of unavailable.slice(0, 5)) {
      expect(JSON.parse(a.body)).toEqual({ statusCode: 503, code: 'DATABASE_UNAVAILABLE', message: expect.any(String) });
    }
    expect(all.some((a) => /at \w+ \(|\.js:\d+/.test(a.body))).toBe(false);

    // The same process served throughout.
    expect(pid()).toBe(startPid);
    expect(cp.proc.running).toBe(true);
    expect(cp.proc.logs).not.toContain('unexpected error');

    // Every accepted trigger ran to the end; nothing accepted was forgotten.
    const accepted = all.filter((a) => a.what === 'trigger' && a.status === 202).map((a) => a.executionId!);
    expect(new Set(accepted).size).toBe(accepted.length);
    for (const id of accepted) expect((await waitForTerminal(api, id, 90_000)).status).toBe('succeeded');
    // A trigger that got a 503 may have committed just before the connection died (the answer
    // was lost, not the row); none beyond that, and every one of them runs too.
    const db = new pg.Client({ connectionString: ownPg.url });
    await db.connect();
    try {
      const rows = (await db.query<{ id: string; status: string }>(`SELECT id, status FROM execution WHERE webhook_id = $1`, [webhookId])).rows;
      const triggerUnavailable = unavailable.filter((a) => a.what === 'trigger').length;
      expect(rows.length).toBeGreaterThanOrEqual(accepted.length);
      expect(rows.length - accepted.length).toBeLessThanOrEqual(triggerUnavailable);
      await waitFor('every webhook execution terminal', async () => {
        const r = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM execution WHERE webhook_id = $1 AND status <> 'succeeded'`, [webhookId]);
        return r.rows[0]!.n === 0;
      }, 90_000);

      // Each stream: complete, byte-identical, every seq once.
      for (const s of streams) {
        const e = await waitForTerminal(api, s.executionId, 90_000);
        expect(e.status).toBe('succeeded');
        const written = readFileSync(s.file);
        expect(written.length).toBe(s.chunks * 32768);
        expect(e.outputBytes).toBe(written.length);
        expect(sha256((await getOutput(api, s.executionId)).bytes)).toBe(sha256(written));
        const [{ n, max }] = (
          await db.query<{ n: number; max: number }>('SELECT count(*)::int AS n, max(seq)::int AS max FROM execution_output WHERE execution_id = $1', [s.executionId])
        ).rows as [{ n: number; max: number }];
        expect(n).toBe(max + 1);
      }
    } finally {
      await db.end();
    }
    const times = all.filter((a) => a.status === 503).map((a) => a.ms);
    recordFigure('database-away', {
      rounds: faults.length,
      faults,
      calls: all.length,
      accepted: accepted.length,
      unavailable: unavailable.length,
      slowest503Ms: Math.round(Math.max(0, ...times)),
      slowestAnswerMs: Math.round(Math.max(0, ...all.map((a) => a.ms))),
      streams: streams.length,
    });
  }, 240_000);
});
