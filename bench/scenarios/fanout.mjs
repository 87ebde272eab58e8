// 6. Viewer fan-out: V viewers subscribed to one streaming execution; every viewer gets every
// chunk; delay from storage (the chunk's created_at) to each viewer.
import path from 'node:path';
import { drain } from '../lib/executions.mjs';
import { BENCH_DIR } from '../lib/paths.mjs';
import { figure } from '../lib/report.mjs';
import { openStack } from '../lib/session.mjs';
import { signedCall } from '../lib/sign.mjs';
import { createServer, scriptWebhook, TRIGGER_PATH } from '../lib/stack.mjs';
import { cpuSnapshot, envInt, ManagedProcess, median, nowMs, sleep, withTimeout } from '../lib/util.mjs';

class ViewerProcess {
  constructor(label) {
    this.proc = new ManagedProcess(label, process.execPath, [path.join(BENCH_DIR, 'procs/viewers.mjs')], { env: { PATH: process.env.PATH }, ipc: true });
    this.proc.child.on('message', (m) => this.pending?.(m));
  }
  request(msg, type, timeoutMs) {
    return withTimeout(
      new Promise((resolve) => {
        this.pending = (m) => m.type === type && resolve(m);
        this.proc.child.send(msg);
      }),
      timeoutMs,
      `viewers: ${msg.cmd}`,
    );
  }
}

export default {
  name: 'fanout',
  title: 'Viewer fan-out (V viewers on one streaming execution)',
  async run(ctx) {
    const nViewers = envInt('BENCH_VIEWERS', 1000);
    const nProcs = envInt('BENCH_VIEWER_PROCS', 2);
    const lines = envInt('BENCH_FANOUT_LINES', 100);
    const intervalMs = envInt('BENCH_FANOUT_INTERVAL_MS', 50);
    const leadS = envInt('BENCH_FANOUT_LEAD_S', 3);
    const notes = [];
    const stack = await openStack(ctx, 'fanout');
    const procs = [];
    try {
      const server = await createServer(stack.api, 'bench-fanout');
      await stack.agent(server, { concurrency: ctx.agentConcurrency });
      // Each line carries the time the script wrote it (bash's $EPOCHREALTIME: no fork per line).
      const content = `sleep ${leadS}\nfor ((i = 0; i < ${lines}; i++)); do echo "$i $EPOCHREALTIME"; sleep ${intervalMs / 1000}; done\n`;
      const hook = await scriptWebhook(stack.api, { name: 'fanout', content, serverId: server.id });
      const call = signedCall(hook.token, hook.hmacSecret);

      // A viewer key per 250 viewers: 1,000 viewers are many people (the feed caps connections per key).
      const keys = [];
      for (let i = 0; i < Math.ceil(nViewers / 250); i++) keys.push((await stack.api.post('/api/v1/api-keys', { name: `bench-viewer-${i}`, role: 'viewer' })).key);
      for (let i = 0; i < nProcs; i++) procs.push(new ViewerProcess(`viewers-${i}`));
      procs.forEach((p) => stack.track(p.proc));
      const per = Math.ceil(nViewers / nProcs);
      const conn = await Promise.all(procs.map((p, i) => p.request({ cmd: 'connect', url: stack.cp.url, apiKeys: keys.filter((_, k) => k % nProcs === i).length ? keys.filter((_, k) => k % nProcs === i) : keys, n: Math.max(0, Math.min(per, nViewers - i * per)), concurrency: 50 }, 'connected', 300_000)));
      const connected = conn.reduce((n, c) => n + c.connected, 0);
      ctx.log(`fanout: ${connected} viewers connected in ${Math.max(...conn.map((c) => c.seconds)).toFixed(1)} s`);
      if (connected < nViewers) notes.push(`only ${connected} of ${nViewers} viewers connected: ${JSON.stringify(conn.map((c) => c.failures))}`);

      const rounds = [];
      for (let r = 0; r < ctx.rounds; r++) {
        const cpu0 = cpuSnapshot({ cp: stack.cp.proc.pid });
        const res = await fetch(`${stack.cp.url}${TRIGGER_PATH}`, { method: 'POST', ...call });
        const body = await res.json();
        if (res.status !== 202) throw new Error(`trigger answered ${res.status}`);
        const id = body.executionId;
        const from = nowMs();
        const subs = await Promise.all(procs.map((p) => p.request({ cmd: 'subscribe', executionId: id }, 'subscribed', 120_000)));
        const subscribed = subs.reduce((n, s) => n + s.ok, 0);
        const subS = Math.max(...subs.map((s) => s.seconds));
        const d = await drain(stack.db, (leadS + (lines * intervalMs) / 1000) * 1000 + 120_000, 200);
        ctx.windows.push([from, nowMs()]);
        const rows = await stack.db.query(`SELECT seq, extract(epoch from created_at) * 1000 AS at FROM execution_output WHERE execution_id = $1 ORDER BY seq`, [id]);
        const total = rows.length;
        const createdAt = {};
        for (const row of rows) createdAt[row.seq] = Number(row.at);
        // Let the last chunks reach every viewer (bounded).
        const want = total * subscribed;
        for (let i = 0; i < 100; i++) {
          const got = (await Promise.all(procs.map((p) => p.request({ cmd: 'progress' }, 'progress', 30_000)))).reduce((n, x) => n + x.received, 0);
          if (got >= want) break;
          await sleep(100);
        }
        const cpUs = ((cpuSnapshot({ cp: stack.cp.proc.pid }).cp.self - cpu0.cp.self) * 1000) / Math.max(1, total * subscribed);
        const reps = await Promise.all(procs.map((p) => p.request({ cmd: 'report', createdAt, total }, 'report', 120_000)));
        const merged = {
          complete: reps.reduce((n, x) => n + x.complete, 0),
          gaps: reps.reduce((n, x) => n + x.gaps, 0),
          resubscribes: reps.reduce((n, x) => n + x.resubscribes, 0),
          backlog: reps.reduce((n, x) => n + x.backlog, 0),
          // Per process quantiles: the worst process is reported (conservative).
          p50: Math.max(...reps.map((x) => x.fromStore.p50)),
          p99: Math.max(...reps.map((x) => x.fromStore.p99)),
          scriptP50: Math.max(...reps.map((x) => x.fromScript.p50)),
          scriptP99: Math.max(...reps.map((x) => x.fromScript.p99)),
          lag: Math.max(...reps.map((x) => x.loopLagP99Ms)),
          total,
          subscribed,
          subS,
          status: d.drained,
          cpUs,
        };
        rounds.push(merged);
        ctx.log(`fanout round ${r + 1}: ${merged.complete}/${connected} viewers got all ${total} chunks (gaps ${merged.gaps}, resubscribes ${merged.resubscribes}); storage->viewer p50 ${merged.p50.toFixed(1)} ms p99 ${merged.p99.toFixed(1)} ms; script->viewer p99 ${merged.scriptP99.toFixed(1)} ms; subscribing took ${subS.toFixed(1)} s; viewer-process loop lag p99 ${merged.lag.toFixed(1)} ms; control plane CPU ${merged.cpUs.toFixed(1)} us per chunk delivered`);
      }
      notes.push(`${connected} viewers in ${nProcs} processes (${keys.length} viewer API keys), socket.io on /dashboard; the script writes ${lines} timestamped lines ${intervalMs} ms apart after ${leadS} s (time to subscribe); storage time = the row's created_at (PostgreSQL now(), the start of the inserting transaction, so the delay includes the commit); chunks stored before a viewer's subscribe ack are excluded from the delay (they come as backlog): ${rounds.map((r) => r.backlog).join(', ')} per round`);
      notes.push(`control plane CPU per chunk delivered to one viewer (the round's CPU, subscribes included, / chunks x viewers), per round: ${rounds.map((r) => r.cpUs.toFixed(1)).join(', ')} us`);
      notes.push(`the viewer processes' own event-loop lag (p99, ms) per round: ${rounds.map((r) => r.lag.toFixed(1)).join(', ')}: it is part of the measured delay`);
      const m = (k) => median(rounds.map((r) => r[k]));
      const figures = [
        figure({ name: `viewers with every chunk (of ${nViewers})`, unit: 'viewers', ours: Math.min(...rounds.map((r) => r.complete)), better: 'higher', targetAbs: nViewers }),
        figure({ name: 'storage -> viewer delay p50', unit: 'ms', ours: m('p50'), better: 'lower' }),
        figure({ name: 'storage -> viewer delay p99', unit: 'ms', ours: m('p99'), better: 'lower', targetAbs: 100 }),
        figure({ name: 'script write -> viewer delay p99', unit: 'ms', ours: m('scriptP99'), better: 'lower' }),
      ];
      return { figures, notes, memory: await stack.close() };
    } finally {
      for (const p of procs) p.proc.child.connected && p.proc.child.send({ cmd: 'close' });
      await sleep(300);
      await stack.close();
    }
  },
};
