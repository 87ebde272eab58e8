// 5. Connected agents: N protocol-level agents on one control plane; memory per agent vs a bare
// socket.io server with the same clients; dispatch latency with N connected vs with 1.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { FakeAgentFleet } from '../lib/fake-agents.mjs';
import { BENCH_DIR } from '../lib/paths.mjs';
import { figure } from '../lib/report.mjs';
import { openStack } from '../lib/session.mjs';
import { hmacHex } from '../lib/sign.mjs';
import { TRIGGER_PATH } from '../lib/stack.mjs';
import { collectGarbage, envInt, freePort, ManagedProcess, memoryOf, MiB, nowMs, quantile, sleep, waitFor } from '../lib/util.mjs';

const SETTLE_MS = 5000;

/** RSS right after a full garbage collection (the process runs with --inspect on `inspectPort`). */
async function liveRss(pid, inspectPort) {
  await collectGarbage(inspectPort);
  await sleep(200);
  return memoryOf(pid).rss;
}
const WARMUP = 20;

function openFilesLimit() {
  const m = readFileSync('/proc/self/limits', 'utf8').match(/^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m);
  return m ? Number(m[1] === 'unlimited' ? Infinity : m[1]) : Infinity;
}

/** Servers straight into the database (the API would take minutes for 10,000): tokens as the API makes them. */
async function insertServers(db, workspaceId, n) {
  const out = [];
  for (let i = 0; i < n; i += 1000) {
    const tokens = [];
    const names = [];
    const hashes = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      const token = `dpa_${randomBytes(32).toString('base64url')}`;
      tokens.push(token);
      names.push(`bench-agent-${j}`);
      hashes.push(createHash('sha256').update(token).digest());
    }
    const rows = await db.query(
      `INSERT INTO server (workspace_id, name, agent_token_hash)
       SELECT $1, n, h FROM unnest($2::text[], $3::bytea[]) AS t(n, h) RETURNING id, name`,
      [workspaceId, names, hashes],
    );
    const byName = new Map(rows.map((r) => [r.name, r.id]));
    names.forEach((name, k) => out.push({ id: byName.get(name), name, token: tokens[k] }));
  }
  return out;
}

export default {
  name: 'agents',
  title: 'Connected agents (protocol-level clients in separate processes)',
  async run(ctx) {
    const notes = [];
    let n = envInt('BENCH_AGENTS', 10_000);
    const procs = envInt('BENCH_AGENT_PROCS', 2);
    const rounds = envInt('BENCH_DISPATCH_ROUNDS', 100);
    const connectConcurrency = envInt('BENCH_CONNECT_CONCURRENCY', 200);
    const limit = openFilesLimit();
    if (limit < n + 1024) {
      const fit = Math.max(10, limit - 1024);
      notes.push(`open files limit is ${limit} (raise it with \`ulimit -n\` or run as root so the harness can); measured ${fit} agents instead of ${n}`);
      n = fit;
    }
    const cpInspect = await freePort();
    const stack = await openStack(ctx, 'agents', { cpNodeArgs: [`--inspect=127.0.0.1:${cpInspect}`] });
    const fleets = [];
    let bare;
    try {
      const me = await stack.api.get('/api/v1/me');
      const servers = await insertServers(stack.db, me.workspace.id, n);
      const script = await stack.api.post('/api/v1/scripts', { name: 'agents-true', content: 'true\n' });
      const k = Math.min(20, n);
      const secret = randomBytes(32).toString('hex');
      const hooks = [];
      for (let i = 0; i < k; i++) {
        const h = await stack.api.post(`/api/v1/scripts/${script.id}/webhooks`, { name: `agents-${i}`, serverId: servers[i].id, hmacSecret: secret });
        const body = JSON.stringify({ token: h.token });
        hooks.push({ body, headers: { 'content-type': 'application/json', 'x-webhook-signature': hmacHex(secret, body) } });
      }

      const one = new FakeAgentFleet('fake-agent-1', 1, ctx.log);
      fleets.push(one);
      one.procs.forEach((p) => stack.track(p));
      const measure = async (pick) => {
        const out = [];
        for (let i = 0; i < WARMUP + rounds; i++) {
          const ms = await dispatchWith(pick(i));
          if (i >= WARMUP) out.push(ms);
          await sleep(20);
        }
        return out;
      };
      // Which fleet holds a server: the single one for server 0, the big one for the rest.
      const holder = new Map();
      const dispatchWith = async (i) => {
        const t0 = nowMs();
        const res = await fetch(`${stack.cp.url}${TRIGGER_PATH}`, { method: 'POST', body: hooks[i].body, headers: hooks[i].headers });
        const b = await res.json();
        if (res.status !== 202) throw new Error(`trigger answered ${res.status} ${JSON.stringify(b)}`);
        return (await holder.get(i).startOf(b.executionId).catch(() => NaN)) - t0;
      };

      const c1 = await one.connect(stack.cp.url, [servers[0].token], { concurrency: 1 });
      if (c1.connected !== 1) throw new Error(`the single agent could not connect: ${JSON.stringify(c1.failures)}`);
      holder.set(0, one);
      await sleep(SETTLE_MS);
      const rssOne = await liveRss(stack.cp.proc.pid, cpInspect);
      const latOne = await ctx.window(() => measure(() => 0));
      ctx.log(`agents: 1 connected: cp RSS ${(rssOne / MiB).toFixed(0)} MiB; dispatch p50 ${quantile(latOne, 0.5).toFixed(2)} ms p99 ${quantile(latOne, 0.99).toFixed(2)} ms`);

      const many = new FakeAgentFleet('fake-agents', procs, ctx.log);
      fleets.push(many);
      many.procs.forEach((p) => stack.track(p));
      const cN = await ctx.window(() => many.connect(stack.cp.url, servers.slice(1).map((s) => s.token), { concurrency: connectConcurrency, timeoutMs: envInt('BENCH_CONNECT_TIMEOUT_S', 300) * 1000 }));
      for (let i = 1; i < k; i++) holder.set(i, many);
      const total = cN.connected + 1;
      ctx.log(`agents: ${total} connected in ${cN.seconds.toFixed(1)} s (${cN.seconds ? (cN.connected / cN.seconds).toFixed(0) : '-'}/s); failures ${JSON.stringify(cN.failures)}`);
      if (Object.keys(cN.failures).length) notes.push(`connect failures: ${JSON.stringify(cN.failures)}`);
      await sleep(SETTLE_MS);
      const rssMany = await liveRss(stack.cp.proc.pid, cpInspect);
      const online = await waitFor('servers online', async () => {
        const [r] = await stack.db.query(`SELECT count(*)::int AS n FROM server WHERE status = 'online'`);
        return r.n >= total ? r.n : false;
      }, 60_000, 500).catch(async () => (await stack.db.query(`SELECT count(*)::int AS n FROM server WHERE status = 'online'`))[0].n);
      const latMany = await ctx.window(() => measure((i) => 1 + (i % (k - 1))));
      const still = await many.stillConnected();
      ctx.log(`agents: ${total} connected: cp RSS ${(rssMany / MiB).toFixed(0)} MiB; dispatch p50 ${quantile(latMany, 0.5).toFixed(2)} ms p99 ${quantile(latMany, 0.99).toFixed(2)} ms; ${online} servers online; ${still + 1} still connected`);
      const fleetPeak = many.procs.map((p) => Math.round((p.memory()?.peak ?? 0) / MiB));
      await many.close();
      await one.close();

      // The bare server with the same number of clients.
      const port = await freePort();
      const bareInspect = await freePort();
      bare = stack.track(new ManagedProcess('bare-socket.io', process.execPath, [`--inspect=127.0.0.1:${bareInspect}`, path.join(BENCH_DIR, 'procs/bare-server.mjs'), String(port)], { env: { PATH: process.env.PATH } }));
      await waitFor('bare server', () => bare.tail.includes('listening'), 10_000);
      await sleep(1000);
      const bareBefore = await liveRss(bare.pid, bareInspect);
      const bareFleet = new FakeAgentFleet('fake-agents-bare', procs, ctx.log);
      fleets.push(bareFleet);
      bareFleet.procs.forEach((p) => stack.track(p));
      const cB = await bareFleet.connect(`http://127.0.0.1:${port}`, servers.map((s) => s.token), { concurrency: connectConcurrency, timeoutMs: envInt('BENCH_CONNECT_TIMEOUT_S', 300) * 1000 });
      await sleep(SETTLE_MS);
      const bareAfter = await liveRss(bare.pid, bareInspect);
      ctx.log(`agents: bare socket.io: ${cB.connected} connected in ${cB.seconds.toFixed(1)} s; RSS ${(bareBefore / MiB).toFixed(0)} -> ${(bareAfter / MiB).toFixed(0)} MiB`);
      await bareFleet.close();

      const perOurs = (rssMany - rssOne) / Math.max(1, cN.connected);
      const perBare = (bareAfter - bareBefore) / Math.max(1, cB.connected);
      notes.push(`${total} agents connected to the control plane (${procs} client processes, peak RSS ${fleetPeak.join(' + ')} MiB); ${cB.connected} to the bare server. Memory per agent = RSS growth / agents, ${SETTLE_MS / 1000} s after the last connected, each RSS taken right after a full garbage collection (asked for over the inspector, on both sides)`);
      notes.push(`control plane RSS ${(rssOne / MiB).toFixed(0)} MiB with 1 agent, ${(rssMany / MiB).toFixed(0)} MiB with ${total}; bare socket.io ${(bareBefore / MiB).toFixed(0)} -> ${(bareAfter / MiB).toFixed(0)} MiB`);
      notes.push(`dispatch latency: POST sent -> execution.start received by that agent (monotonic clock shared by the processes), ${rounds} sequential triggers each; with ${total} connected, to ${k - 1} different agents in turn`);
      const figures = [
        figure({ name: `agents connected (of ${n})`, unit: 'agents', ours: total, baseline: cB.connected, baselineName: 'bare socket.io', better: 'higher', targetAbs: n }),
        figure({ name: 'memory per connected agent', unit: 'KiB', ours: perOurs / 1024, baseline: perBare / 1024, baselineName: 'bare socket.io', better: 'lower', target: 1.5 }),
        figure({ name: `dispatch latency p50, ${total} vs 1 connected`, unit: 'ms', ours: quantile(latMany, 0.5), baseline: quantile(latOne, 0.5), baselineName: '1 connected', better: 'lower', target: 1.5 }),
        figure({ name: `dispatch latency p99, ${total} vs 1 connected`, unit: 'ms', ours: quantile(latMany, 0.99), baseline: quantile(latOne, 0.99), baselineName: '1 connected', better: 'lower', target: 1.5 }),
        figure({ name: 'agent connections per second', unit: 'conn/s', ours: cN.connected / cN.seconds, baseline: cB.connected / cB.seconds, baselineName: 'bare socket.io', better: 'higher' }),
      ];
      return { figures, notes, memory: await stack.close() };
    } finally {
      for (const f of fleets) await f.close().catch(() => undefined);
      await stack.close();
    }
  },
};
