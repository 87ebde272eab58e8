#!/usr/bin/env node
// Soak: a real control plane, a real agent and a real PostgreSQL under a steady mix of webhook
// triggers (quick runs and streaming runs), management reads and dashboard viewers (some of them
// reconnecting), for SOAK_SECONDS (default 300). The RSS of every process is sampled every
// SOAK_SAMPLE_MS; it fails when memory grows past the bound below or when anything goes wrong
// (a refused call, a run that does not succeed, output not byte-exact, a viewer gap, an error
// logged, a process exiting). Prints a summary and writes test-artifacts/soak.json.
//
// Memory bound, per process: the median of the last quarter of the samples may exceed the median
// of the second quarter (the first is warm-up) by at most max(48 MiB, 25 %). Node processes are
// measured by VmRSS; PostgreSQL by the private memory (RssAnon) of the postmaster and all its
// backends, since its shared buffers count in RSS as they are touched, which is not growth.
//
// Everything it talks to is on 127.0.0.1. Environment: SOAK_SECONDS, SOAK_RATE (triggers per
// second, default 8), SOAK_VIEWERS (default 4), SOAK_SAMPLE_MS (default 3000), TEST_DATABASE_URL
// (else an embedded PostgreSQL of its own).
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { io } from 'socket.io-client';
import { EMBEDDED_PG_MODULE, ROOT } from '../bench/lib/paths.mjs';
import { ensureBuilt, startAgent, startControlPlane, TRIGGER_PATH } from '../bench/lib/stack.mjs';
import { ensureScriptUser } from '../scripts/script-user.mjs';
import { envInt, liveProcesses, median, sleep } from '../bench/lib/util.mjs';

const SECONDS = envInt('SOAK_SECONDS', 300);
const RATE = envInt('SOAK_RATE', 8);
const VIEWERS = envInt('SOAK_VIEWERS', 4);
const SAMPLE_MS = envInt('SOAK_SAMPLE_MS', 3000);
const MiB = 1024 * 1024;
const GROWTH_MIB = 48;
const GROWTH_RATIO = 0.25;
/** Lines of the streaming script, and their exact bytes. */
const STREAM_LINES = 100;
const PAD = 'x'.repeat(200);
const STREAM_BYTES = STREAM_LINES * Buffer.byteLength(`line 00000 ${PAD}\n`);

const log = (m) => process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const errors = [];
const fail = (what) => {
  if (errors.length < 200) errors.push(what);
  log(`ERROR ${what}`);
};

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    for (const p of liveProcesses) p.child.kill('SIGKILL');
    process.exit(130);
  });
}

// ---- the stack ----

async function database() {
  const given = process.env.TEST_DATABASE_URL;
  if (given) {
    const name = `devpilot_soak_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: given });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const u = new URL(given);
    u.pathname = `/${name}`;
    return {
      url: u.toString(),
      postmasterPid: null,
      async stop() {
        const c = new pg.Client({ connectionString: given });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await c.end();
      },
    };
  }
  const { EmbeddedPostgres } = await import(EMBEDDED_PG_MODULE);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-soak-pg-'));
  const embedded = new EmbeddedPostgres({ dataDir: dir, log: () => undefined });
  const url = await embedded.start();
  return {
    url,
    // The class keeps its child process in a private field; the pid is all that is read.
    postmasterPid: embedded.child?.pid ?? null,
    async stop() {
      await embedded.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---- memory ----

function status(pid) {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
}
const kb = (text, key) => Number(text?.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN) * 1024;

/** The postmaster and its children (the backends and background workers). */
function postgresPids(postmaster) {
  const pids = [postmaster];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === postmaster) pids.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return pids;
}

function sampleMemory(procs, postmasterPid) {
  const s = { t: Date.now() };
  for (const [name, p] of Object.entries(procs)) s[name] = kb(status(p.pid), 'VmRSS');
  if (postmasterPid) {
    const pids = postgresPids(postmasterPid);
    s.postgres = pids.reduce((n, pid) => n + (kb(status(pid), 'RssAnon') || 0), 0);
    s.postgresProcesses = pids.length;
  }
  return s;
}

/** Least-squares slope of value over time, in MiB per minute. */
function slopeMiBPerMin(points) {
  if (points.length < 3) return NaN;
  const xs = points.map((p) => p.t / 60_000);
  const ys = points.map((p) => p.v / MiB);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

function judgeMemory(samples, names) {
  const q = Math.floor(samples.length / 4);
  const verdicts = {};
  for (const name of names) {
    const series = samples.map((s) => ({ t: s.t, v: s[name] })).filter((p) => Number.isFinite(p.v));
    if (series.length < 8) {
      verdicts[name] = { ok: false, why: `only ${series.length} samples` };
      continue;
    }
    const second = median(series.slice(q, 2 * q).map((p) => p.v));
    const last = median(series.slice(3 * q).map((p) => p.v));
    const growth = last - second;
    const allowed = Math.max(GROWTH_MIB * MiB, GROWTH_RATIO * second);
    verdicts[name] = {
      ok: growth <= allowed,
      firstMiB: +(series[0].v / MiB).toFixed(1),
      secondQuarterMedianMiB: +(second / MiB).toFixed(1),
      lastQuarterMedianMiB: +(last / MiB).toFixed(1),
      growthMiB: +(growth / MiB).toFixed(1),
      allowedMiB: +(allowed / MiB).toFixed(1),
      slopeSecondHalfMiBPerMin: +slopeMiBPerMin(series.slice(2 * q)).toFixed(2),
      maxMiB: +(Math.max(...series.map((p) => p.v)) / MiB).toFixed(1),
    };
  }
  return verdicts;
}

// ---- traffic ----

async function trigger(url, hook) {
  const body = JSON.stringify({ token: hook.token, ref: 'soak' });
  const sig = createHmac('sha256', hook.hmacSecret).update(body).digest('hex');
  const res = await fetch(`${url}${TRIGGER_PATH}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-webhook-signature': sig },
    body,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`trigger answered ${res.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text).executionId;
}

/** One dashboard viewer following streaming runs, checking seqs and bytes like a strict client. */
class SoakViewer {
  constructor(url, apiKey, stats) {
    this.url = url;
    this.apiKey = apiKey;
    this.stats = stats;
    this.next = new Map();
    this.bytes = new Map();
  }

  async open() {
    // Protocol 4, as the dashboard: output bytes as base64 text.
    this.socket = io(`${this.url}/dashboard`, { path: '/dashboard-io/', auth: { protocolVersion: 4 }, extraHeaders: { authorization: `Bearer ${this.apiKey}` }, transports: ['websocket'], forceNew: true, reconnection: false });
    await new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('connect_error', (e) => reject(new Error(`viewer refused: ${e.message}`)));
    });
    this.socket.on('execution.output', (e) => {
      const next = this.next.get(e.executionId);
      if (next === undefined) return;
      if (e.seq < next) return void this.stats.duplicatesDropped++;
      if (e.seq > next) fail(`viewer gap on ${e.executionId}: expected seq ${next}, got ${e.seq}`);
      this.next.set(e.executionId, e.seq + 1);
      this.bytes.set(e.executionId, (this.bytes.get(e.executionId) ?? 0) + (typeof e.data === 'string' ? Buffer.byteLength(e.data, 'base64') : e.data.byteLength));
      this.stats.chunks++;
    });
    this.socket.on('execution.resubscribe', (e) => {
      if (!this.next.has(e.executionId)) return;
      this.stats.resubscribes++;
      this.subscribe(e.executionId, this.next.get(e.executionId) - 1);
    });
    this.socket.on('execution.status', (e) => {
      if (!this.next.has(e.executionId) || !['succeeded', 'failed', 'timed_out', 'cancelled', 'lost', 'undeliverable'].includes(e.status)) return;
      // The status may pass the last chunks' delivery by a moment: judge a little later.
      setTimeout(() => {
        const got = this.bytes.get(e.executionId) ?? 0;
        if (e.status !== 'succeeded') fail(`viewer saw ${e.executionId} end ${e.status}`);
        else if (got !== STREAM_BYTES) fail(`viewer got ${got} bytes of ${e.executionId}, expected ${STREAM_BYTES}`);
        else this.stats.streamsWatched++;
        this.next.delete(e.executionId);
        this.bytes.delete(e.executionId);
        this.socket.emit('execution.unsubscribe', { executionId: e.executionId }, () => undefined);
      }, 500);
    });
  }

  subscribe(executionId, afterSeq = -1) {
    this.socket
      .timeout(20_000)
      .emitWithAck('execution.subscribe', { executionId, afterSeq })
      .then(
        (r) => {
          if (!r.ok) fail(`subscribe refused: ${JSON.stringify(r)}`);
        },
        (e) => fail(`subscribe: ${e.message}`),
      );
  }

  watch(executionId) {
    if (this.next.size >= 20) return; // a viewer watches a bounded number of runs
    this.next.set(executionId, 0);
    this.subscribe(executionId);
  }

  close() {
    this.socket?.close();
  }
}

// ---- main ----

async function main() {
  ensureScriptUser();
  ensureBuilt(log);
  const started = Date.now();
  log(`soak for ${SECONDS} s at ${RATE} triggers/s with ${VIEWERS} viewers, memory sampled every ${SAMPLE_MS} ms`);
  const db = await database();
  const cp = await startControlPlane({ databaseUrl: db.url, label: 'soak-cp', env: { DEVPILOT_LOG_LEVEL: 'warn' } });
  const api = cp.api;
  const server = await api.post('/api/v1/servers', { name: 'soak' });
  const agent = await startAgent(cp, server, { concurrency: 16, label: 'soak-agent' });
  const hooks = {};
  for (const [kind, content] of [
    ['quick', 'echo "ok $DEVPILOT_EXECUTION_ID"'],
    ['stream', `for i in $(seq 1 ${STREAM_LINES}); do printf 'line %05d %s\\n' "$i" '${PAD}'; sleep 0.02; done`],
  ]) {
    const script = await api.post('/api/v1/scripts', { name: `soak-${kind}`, content });
    const hmacSecret = randomBytes(32).toString('hex');
    const hook = await api.post(`/api/v1/scripts/${script.id}/webhooks`, { name: `soak-${kind}`, serverId: server.id, hmacSecret });
    hooks[kind] = { token: hook.token, hmacSecret, scriptId: script.id };
  }
  const viewerKey = (await api.post('/api/v1/api-keys', { name: 'soak viewer', role: 'viewer' })).key;

  const stats = { triggers: 0, accepted: { quick: 0, stream: 0 }, managementReads: 0, chunks: 0, resubscribes: 0, duplicatesDropped: 0, streamsWatched: 0, viewerReconnects: 0 };
  const accepted = { quick: [], stream: [] };
  const viewers = [];
  for (let i = 0; i < VIEWERS; i++) {
    const v = new SoakViewer(cp.url, viewerKey, stats);
    await v.open();
    viewers.push(v);
  }

  const procs = { controlPlane: cp.proc, agent };
  const samples = [];
  const sampler = setInterval(() => samples.push(sampleMemory(procs, db.postmasterPid)), SAMPLE_MS);
  samples.push(sampleMemory(procs, db.postmasterPid));

  const deadline = Date.now() + SECONDS * 1000;
  const inFlight = new Set();
  const track = (p) => {
    inFlight.add(p);
    p.finally(() => inFlight.delete(p));
  };
  let tick = 0;
  const maxTicks = SECONDS * RATE + 10;
  const interval = 1000 / RATE;
  const t0 = Date.now();
  while (Date.now() < deadline && tick < maxTicks) {
    for (const [name, p] of Object.entries(procs)) if (!p.running) fail(`${name} exited`);
    if (errors.length >= 50) break;
    const kind = tick % 4 === 3 ? 'stream' : 'quick';
    stats.triggers++;
    if (inFlight.size < 100) {
      track(
        trigger(cp.url, hooks[kind]).then(
          (id) => {
            stats.accepted[kind]++;
            accepted[kind].push(id);
            if (kind === 'stream') viewers[Math.floor(Math.random() * viewers.length)].watch(id);
          },
          (e) => fail(`${kind} trigger: ${e.message}`),
        ),
      );
    } else fail('more than 100 triggers in flight: the control plane is not keeping up');
    if (tick % RATE === 0) {
      track(
        api.request('GET', `/api/v1/executions?limit=20&scriptId=${hooks.stream.scriptId}`).then(
          (r) => (r.status === 200 ? stats.managementReads++ : fail(`management read answered ${r.status}`)),
          (e) => fail(`management read: ${e.message}`),
        ),
      );
    }
    // Every 20 s one viewer leaves and a new one comes (connection churn).
    if (tick > 0 && tick % (20 * RATE) === 0) {
      const i = Math.floor(Math.random() * viewers.length);
      viewers[i].close();
      const v = new SoakViewer(cp.url, viewerKey, stats);
      await v.open().catch((e) => fail(e.message));
      viewers[i] = v;
      stats.viewerReconnects++;
    }
    tick++;
    const wait = t0 + tick * interval - Date.now();
    if (wait > 0) await sleep(wait);
  }
  const trafficSeconds = (Date.now() - t0) / 1000;
  await Promise.allSettled([...inFlight]);

  // Every accepted run ends succeeded; each stream's stored output is exactly what it wrote.
  const check = new pg.Client({ connectionString: db.url });
  await check.connect();
  const allIds = [...accepted.quick, ...accepted.stream];
  const drainDeadline = Date.now() + 120_000;
  let pending = allIds.length;
  while (Date.now() < drainDeadline) {
    const r = await check.query(`SELECT count(*)::int AS n FROM execution WHERE id = ANY($1::uuid[]) AND status NOT IN ('succeeded','failed','timed_out','cancelled','lost','undeliverable')`, [allIds]);
    pending = r.rows[0].n;
    if (pending === 0) break;
    await sleep(500);
  }
  if (pending) fail(`${pending} accepted runs did not finish within 2 minutes of the end`);
  const statuses = (await check.query(`SELECT status, count(*)::int AS n FROM execution WHERE id = ANY($1::uuid[]) GROUP BY status`, [allIds])).rows;
  for (const s of statuses) if (s.status !== 'succeeded') fail(`${s.n} accepted runs ended ${s.status}`);
  const wrong = (
    await check.query(`SELECT id, output_bytes FROM execution WHERE id = ANY($1::uuid[]) AND output_bytes <> $2 LIMIT 5`, [accepted.stream, STREAM_BYTES])
  ).rows;
  for (const w of wrong) fail(`stream ${w.id} stored ${w.output_bytes} bytes, expected ${STREAM_BYTES}`);
  const seqs = (
    await check.query(
      `SELECT count(*)::int AS bad FROM (SELECT execution_id, count(*) AS n, max(seq) AS m FROM execution_output WHERE execution_id = ANY($1::uuid[]) GROUP BY execution_id) x WHERE n <> m + 1`,
      [accepted.stream],
    )
  ).rows[0].bad;
  if (seqs) fail(`${seqs} streams have gaps or duplicates in their stored seqs`);
  const all = (await check.query(`SELECT count(*)::int AS n FROM execution`)).rows[0].n;
  await check.end();
  await sleep(1000); // the viewers' last judgements
  clearInterval(sampler);
  samples.push(sampleMemory(procs, db.postmasterPid));

  const cpLog = cp.proc.tail;
  const errorLines = cpLog.split('\n').filter((l) => l.includes('"level":50') || l.includes('"level":60'));
  for (const l of errorLines.slice(0, 5)) fail(`control plane logged an error: ${l.slice(0, 300)}`);
  const warnLines = cpLog.split('\n').filter((l) => l.includes('"level":40')).length;
  for (const v of viewers) v.close();

  const names = ['controlPlane', 'agent', ...(db.postmasterPid ? ['postgres'] : [])];
  const memory = judgeMemory(samples, names);
  for (const [name, v] of Object.entries(memory)) if (!v.ok) fail(`${name} memory grew: ${JSON.stringify(v)}`);

  await agent.stop('SIGTERM');
  await cp.stop();
  await db.stop();

  const summary = {
    ok: errors.length === 0,
    seconds: +trafficSeconds.toFixed(1),
    rate: RATE,
    viewers: VIEWERS,
    triggers: stats.triggers,
    accepted: stats.accepted,
    executionsInDatabase: all,
    statuses: Object.fromEntries(statuses.map((s) => [s.status, s.n])),
    streamBytesEach: STREAM_BYTES,
    viewer: { chunks: stats.chunks, streamsWatched: stats.streamsWatched, resubscribes: stats.resubscribes, duplicatesDropped: stats.duplicatesDropped, reconnects: stats.viewerReconnects },
    managementReads: stats.managementReads,
    controlPlaneWarnings: warnLines,
    memoryBound: `last-quarter median <= second-quarter median + max(${GROWTH_MIB} MiB, ${GROWTH_RATIO * 100}%)`,
    samples: samples.length,
    memory,
    errors,
    tookSeconds: Math.round((Date.now() - started) / 1000),
  };
  mkdirSync(path.join(ROOT, 'test-artifacts'), { recursive: true });
  writeFileSync(path.join(ROOT, 'test-artifacts', process.env.SOAK_RESULT_NAME || 'soak.json'), `${JSON.stringify({ ...summary, samplesMiB: samples.map((s) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, k === 't' || k === 'postgresProcesses' ? v : +(v / MiB).toFixed(1)]))) }, null, 2)}\n`);
  printSummary(summary);
  process.exitCode = summary.ok ? 0 : 1;
}

function printSummary(s) {
  const out = [];
  out.push(`\nSoak ${s.ok ? 'PASSED' : 'FAILED'}: ${s.seconds} s at ${s.rate} triggers/s, ${s.viewers} viewers`);
  out.push(`  triggers sent ${s.triggers}, accepted ${s.accepted.quick} quick + ${s.accepted.stream} streaming; statuses ${JSON.stringify(s.statuses)}`);
  out.push(`  streams: ${s.streamBytesEach} bytes each, stored exactly; viewers: ${s.viewer.chunks} chunks, ${s.viewer.streamsWatched} streams watched whole, ${s.viewer.resubscribes} resubscribes, ${s.viewer.reconnects} reconnects`);
  out.push(`  management reads ${s.managementReads}; control plane warnings ${s.controlPlaneWarnings}`);
  out.push(`  memory (${s.memoryBound}), ${s.samples} samples:`);
  out.push('    process        first  2nd-q median  last-q median  growth  allowed  slope 2nd half  max');
  for (const [name, m] of Object.entries(s.memory)) {
    if (m.why) out.push(`    ${name.padEnd(14)} ${m.why}`);
    else
      out.push(
        `    ${name.padEnd(14)} ${String(m.firstMiB).padStart(5)}  ${String(m.secondQuarterMedianMiB).padStart(12)}  ${String(m.lastQuarterMedianMiB).padStart(13)}  ${String(m.growthMiB).padStart(6)}  ${String(m.allowedMiB).padStart(7)}  ${String(m.slopeSecondHalfMiBPerMin).padStart(9)} MiB/min  ${m.maxMiB} MiB${m.ok ? '' : '  <-- over'}`,
      );
  }
  if (s.errors.length) out.push(`  errors (${s.errors.length}):\n    ${s.errors.slice(0, 20).join('\n    ')}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

main().catch(async (e) => {
  process.stderr.write(`soak aborted: ${e.stack ?? e}\n`);
  for (const p of liveProcesses) p.child.kill('SIGKILL');
  process.exit(1);
});
