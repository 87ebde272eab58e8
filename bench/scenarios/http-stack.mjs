// 7. The HTTP layer: Express vs Fastify under the app's own Nest setup (a stub behind the
// controllers, no database), the request log's cost per call, and what the real control plane
// pays per trigger call with a valid token, an unknown token, and an unknown token from one
// address once its failure limit is reached. Every leg runs once per round, interleaved.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { fire } from '../lib/load.mjs';
import { DIST, PROFILE_DIR, ROOT } from '../lib/paths.mjs';
import { summariseProfile } from '../lib/profile.mjs';
import { figure } from '../lib/report.mjs';
import { openStack } from '../lib/session.mjs';
import { signedCall } from '../lib/sign.mjs';
import { scriptWebhook, createServer, TRIGGER_PATH } from '../lib/stack.mjs';
import { cpuSnapshot, freePort, ManagedProcess, median, waitFor } from '../lib/util.mjs';
import { CONTROL_PLANE_NODE_FLAGS } from '../../scripts/control-plane-node-flags.mjs';

const STUB = path.join(ROOT, 'bench/procs/http-stack-server.mjs');
const SECRET = randomBytes(32).toString('hex');
const STUB_ID = '3f2b8c1e-1111-4222-8333-444455556666';

/**
 * BENCH_FASTIFY_DIR: a folder where `npm install --prefix <dir> --omit=peer @nestjs/platform-fastify@12`
 * ran. Its peers must be the repository's own copies (one @nestjs/core, one @nestjs/common in the
 * process): they are linked in when missing. Null (and why) when there is none.
 */
function fastifyDir() {
  const dir = process.env.BENCH_FASTIFY_DIR;
  if (!dir) return { dir: null, why: 'the Fastify legs were skipped: set BENCH_FASTIFY_DIR to a folder where `npm install --prefix <dir> --omit=peer @nestjs/platform-fastify@12` ran (it is not a dependency of the project)' };
  if (!existsSync(path.join(dir, 'node_modules/@nestjs/platform-fastify/package.json'))) return { dir: null, why: `the Fastify legs were skipped: ${dir} has no node_modules/@nestjs/platform-fastify` };
  for (const peer of ['@nestjs/common', '@nestjs/core', 'rxjs']) {
    const link = path.join(dir, 'node_modules', peer);
    if (existsSync(link)) continue;
    mkdirSync(path.dirname(link), { recursive: true });
    symlinkSync(path.join(ROOT, 'node_modules', peer), link);
  }
  return { dir, why: null };
}

/** One stub server process (with the control plane's Node flags): the app's HTTP stack on `framework` with a request-log variant. */
async function startStub(ctx, framework, logging, statics, fastify) {
  const port = await freePort();
  const label = `stub-${framework}-${logging}-${statics}`;
  const proc = new ManagedProcess(label, process.execPath, [...CONTROL_PLANE_NODE_FLAGS, STUB, String(port), framework, logging, statics], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, HTTP_STACK_DIST: DIST, HTTP_STACK_FASTIFY: fastify ?? '', HTTP_STACK_SECRET: SECRET },
  });
  try {
    await waitFor(`${label} listening`, () => {
      if (!proc.running) throw new Error(`it exited:\n${proc.tail.slice(-3000)}`);
      return proc.tail.includes('listening\n');
    }, 60_000, 100);
  } catch (e) {
    await proc.stop('SIGKILL');
    throw e;
  }
  ctx.log(`http-stack: ${label} on port ${port}`);
  return { proc, url: `http://127.0.0.1:${port}` };
}

/** CPU (ms) of the PostgreSQL backends serving one database, by pid, from /proc. */
async function backendCpu(db) {
  const rows = await db.query('SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [db.name]);
  const out = new Map();
  for (const { pid } of rows) {
    try {
      const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
      out.set(pid, (+f[11] + +f[12]) * 10);
    } catch {
      /* gone */
    }
  }
  return out;
}
const cpuSince = (before, after) => [...after].reduce((a, [pid, ms]) => a + ms - (before.get(pid) ?? 0), 0);

export default {
  name: 'http-stack',
  title: 'HTTP layer: Express vs Fastify under the app\'s Nest setup (stub, no database), request-log cost, and the real trigger with valid and unknown tokens',
  async run(ctx) {
    const notes = [];
    const figures = [];
    const connections = ctx.connectionLevels[0];
    const fastify = fastifyDir();
    if (fastify.why) notes.push(fastify.why);
    const procs = [];
    let real = null;
    let limited = null;
    try {
      const stub = async (...a) => {
        const s = await startStub(ctx, ...a);
        procs.push(s.proc);
        return s;
      };
      const express = await stub('express', 'shipped', 'static');
      const expressBare = await stub('express', 'shipped', 'nostatic');
      const every = await stub('express', 'every', 'static');
      const sampled = await stub('express', 'sampled', 'static');
      const none = await stub('express', 'none', 'static');
      const absent = await stub('express', 'absent', 'static');
      const fast = fastify.dir ? await stub('fastify', 'shipped', 'nostatic', fastify.dir) : null;

      // The real control plane: one with the failure limit out of reach (a flood from many
      // addresses, each under its limit), one with the default limit (a flood from one address).
      // Both log at info, as shipped (the other scenarios run the control plane at warn).
      real = await openStack(ctx, 'http-valid', { cpEnv: { DEVPILOT_LOG_LEVEL: 'info', DEVPILOT_TRIGGER_FAILURE_LIMIT: '999999/1' } });
      limited = await openStack(ctx, 'http-limited', { cpEnv: { DEVPILOT_LOG_LEVEL: 'info' } });
      const server = await createServer(real.api, 'bench-http');
      const hook = await scriptWebhook(real.api, { name: 'http-stack', content: 'true\n', serverId: server.id });
      const valid = signedCall(hook.token, hook.hmacSecret);
      const stubCall = signedCall(randomBytes(32).toString('hex'), SECRET);
      const unknown = { body: JSON.stringify({ token: randomBytes(32).toString('hex') }), headers: { 'content-type': 'application/json' } };

      const post = (target, call) => ({ url: `${target.url}${TRIGGER_PATH}`, method: 'POST', ...call, pid: target.proc.pid, okStatus: ['202'] });
      const get = (target) => ({ url: `${target.url}/api/v1/servers/${STUB_ID}?limit=20`, method: 'GET', pid: target.proc.pid, okStatus: ['200'] });
      const legs = {
        'express trigger': post(express, stubCall),
        ...(fast ? { 'fastify trigger': post(fast, stubCall) } : {}),
        'express GET': get(express),
        'express GET, no static files': get(expressBare),
        ...(fast ? { 'fastify GET': get(fast) } : {}),
        'express trigger, info line per call': post(every, stubCall),
        'express trigger, 1 in 100 at info': post(sampled, stubCall),
        'express trigger, log level warn': post(none, stubCall),
        'express trigger, no request logger': post(absent, stubCall),
        'real trigger, valid token': { url: `${real.cp.url}${TRIGGER_PATH}`, ...valid, pid: real.cp.proc.pid, okStatus: ['202'], db: real.db, profiled: true },
        'real trigger, unknown token': { url: `${real.cp.url}${TRIGGER_PATH}`, ...unknown, pid: real.cp.proc.pid, okStatus: ['404'], db: real.db },
        'real trigger, unknown token, one address (limit 30/60)': { url: `${limited.cp.url}${TRIGGER_PATH}`, ...unknown, pid: limited.cp.proc.pid, okStatus: ['404', '429'], db: limited.db },
      };
      const names = Object.keys(legs);
      const results = Object.fromEntries(names.map((n) => [n, []]));

      const runLeg = async (name, durationS) => {
        const leg = legs[name];
        const c0 = cpuSnapshot({ p: leg.pid });
        const pg0 = leg.db ? await backendCpu(leg.db) : null;
        const load = () => fire({ url: leg.url, method: leg.method, body: leg.body, headers: leg.headers, connections, durationS, okStatus: leg.okStatus });
        const r = leg.profiled ? await ctx.window(load) : await load();
        const c1 = cpuSnapshot({ p: leg.pid });
        const pgMs = leg.db ? cpuSince(pg0, await backendCpu(leg.db)) : NaN;
        const answered = Math.max(1, r.total);
        return { ...r, perS: r.total / r.durationS, cpuUs: ((c1.p.self - c0.p.self) * 1000) / answered, pgUs: (pgMs * 1000) / answered };
      };

      // Each leg is a separate process: long enough a warm-up that its hot path is optimised.
      const warmupS = Math.max(ctx.warmupS, 3);
      ctx.log(`http-stack: ${warmupS} s warm-up per leg, ${names.length} legs at ${connections} connections`);
      for (const n of names) await runLeg(n, warmupS);
      for (let r = 0; r < ctx.rounds; r++) {
        // A different leg first in each round, so a slow spell of the machine hits different legs.
        for (let i = 0; i < names.length; i++) {
          const n = names[(i + r) % names.length];
          const x = await runLeg(n, ctx.durationS);
          results[n].push(x);
          ctx.log(`  round ${r + 1} ${n}: ${x.perS.toFixed(0)}/s, ${x.cpuUs.toFixed(0)} us CPU per call${Number.isFinite(x.pgUs) ? `, PostgreSQL ${x.pgUs.toFixed(0)} us` : ''}; p99 ${x.p99.toFixed(2)} ms; ${JSON.stringify(x.byStatus)}${x.errors && !legs[n].okStatus.includes('429') ? ` (${x.errors} unexpected)` : ''}`);
        }
      }

      const med = (n, k) => (results[n]?.length ? median(results[n].map((x) => x[k])) : NaN);
      const rounds = (n, k) => results[n]?.map((x) => x[k]);
      const pair = (name, unit, k, ours, base, baseName, better) =>
        figure({ name, unit, ours: med(ours, k), baseline: med(base, k), baselineName: baseName, better, roundsOurs: rounds(ours, k), roundsBaseline: rounds(base, k) });
      for (const route of ['trigger', 'GET']) {
        figures.push(
          pair(`stub ${route} route calls/s, Express (ours) vs Fastify`, 'calls/s', 'perS', `express ${route}`, `fastify ${route}`, 'Fastify', 'higher'),
          pair(`stub ${route} route CPU per call, Express vs Fastify`, 'us', 'cpuUs', `express ${route}`, `fastify ${route}`, 'Fastify', 'lower'),
        );
      }
      figures.push(
        pair('stub GET CPU per call, Express with vs without the dashboard\'s static files', 'us', 'cpuUs', 'express GET', 'express GET, no static files', 'no static', 'lower'),
        pair('stub trigger CPU per call, shipped log (trigger at debug) vs an info line per call', 'us', 'cpuUs', 'express trigger', 'express trigger, info line per call', 'info per call', 'lower'),
        pair('stub trigger CPU per call, 1 in 100 at info vs shipped', 'us', 'cpuUs', 'express trigger, 1 in 100 at info', 'express trigger', 'shipped', 'lower'),
        pair('stub trigger CPU per call, log level warn vs shipped', 'us', 'cpuUs', 'express trigger, log level warn', 'express trigger', 'shipped', 'lower'),
        pair('stub trigger CPU per call, no request logger at all vs shipped', 'us', 'cpuUs', 'express trigger, no request logger', 'express trigger', 'shipped', 'lower'),
        pair('real trigger calls/s, unknown vs valid token', 'calls/s', 'perS', 'real trigger, unknown token', 'real trigger, valid token', 'valid token', 'higher'),
        pair('real control plane CPU per call, unknown vs valid token', 'us', 'cpuUs', 'real trigger, unknown token', 'real trigger, valid token', 'valid token', 'lower'),
        pair('real PostgreSQL CPU per call, unknown vs valid token', 'us', 'pgUs', 'real trigger, unknown token', 'real trigger, valid token', 'valid token', 'lower'),
        pair('real trigger calls/s, one address over its limit (429) vs valid token', 'calls/s', 'perS', 'real trigger, unknown token, one address (limit 30/60)', 'real trigger, valid token', 'valid token', 'higher'),
        pair('real control plane CPU per call, one address over its limit vs valid token', 'us', 'cpuUs', 'real trigger, unknown token, one address (limit 30/60)', 'real trigger, valid token', 'valid token', 'lower'),
        pair('real PostgreSQL CPU per call, one address over its limit vs valid token', 'us', 'pgUs', 'real trigger, unknown token, one address (limit 30/60)', 'real trigger, valid token', 'valid token', 'lower'),
      );

      // Projections onto the whole app, from the same run's CPU per call.
      const cp = med('real trigger, valid token', 'cpuUs');
      const pg = med('real trigger, valid token', 'pgUs');
      const project = (saved) => `${saved.toFixed(0)} us less CPU per call: +${((100 * saved) / (cp - saved)).toFixed(1)}% calls/s if the control plane's core is the limit (${cp.toFixed(0)} us per accepted call), +${((100 * saved) / (cp + pg - saved)).toFixed(1)}% if the two cores are (with PostgreSQL's ${pg.toFixed(0)} us)`;
      if (fast) notes.push(`Fastify instead of Express, projected onto the real trigger: ${project(med('express trigger', 'cpuUs') - med('fastify trigger', 'cpuUs'))}`);
      notes.push(`the trigger's request line at debug instead of info, projected onto the real trigger: ${project(med('express trigger, info line per call', 'cpuUs') - med('express trigger', 'cpuUs'))}`);
      notes.push('stub: the app\'s filter, validation pipe, nestjs-pino configuration, raw body and 1 MiB limit, the trigger checks the HMAC of the raw body; Express serves the dashboard\'s static files as the app does (Fastify would use another package, whose routes never see /api paths)');
      if (ctx.profile) notes.push('the real control planes ran under --cpu-prof: their CPU per call includes the profiler\'s overhead');
    } finally {
      for (const p of procs) await p.stop().catch(() => undefined);
      var memory = [...(real ? await real.close() : []), ...(limited ? await limited.close() : [])];
    }
    if (ctx.profile) {
      const file = existsSync(PROFILE_DIR) ? readdirSync(PROFILE_DIR).filter((f) => f.startsWith('cp-http-valid-')).sort().pop() : undefined;
      if (file) {
        const p = summariseProfile(path.join(PROFILE_DIR, file), ctx.windows);
        const express = p.byLayer.find((l) => l.layer === 'Express and its middleware')?.pct ?? 0;
        notes.push(`profile of the real control plane under valid trigger calls (${p.busyMs} ms busy, ${p.idlePct}% idle): ${p.byLayer.map((l) => `${l.layer} ${l.pct}%`).join(', ')}; if the Express share went to nothing: +${((100 * express) / (100 - express)).toFixed(1)}% calls/s at most`);
      }
    }
    return { figures, memory, notes };
  },
};
