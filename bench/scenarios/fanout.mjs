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
    const compareBinary = process.env.BENCH_FANOUT_BINARY === '1';
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

      // Each form of viewer gets its own processes and keys: text (protocol 4, base64 in one frame
      // per message) and, with BENCH_FANOUT_BINARY=1, binary (no version: a header frame and an
      // attachment frame per message, as before protocol 4), their rounds interleaved.
      const forms = [{ name: 'text', protocolVersion: 4, procs: [], rounds: [] }];
      if (compareBinary) forms.push({ name: 'binary', protocolVersion: null, procs: [], rounds: [] });
      let connected = Infinity;
      for (const form of forms) {
        // A viewer key per 250 viewers: 1,000 viewers are many people (the feed caps connections per key).
        const keys = [];
        for (let i = 0; i < Math.ceil(nViewers / 250); i++) keys.push((await stack.api.post('/api/v1/api-keys', { name: `bench-viewer-${form.name}-${i}`, role: 'viewer' })).key);
        for (let i = 0; i < nProcs; i++) form.procs.push(new ViewerProcess(`viewers-${form.name}-${i}`));
        form.procs.forEach((p) => stack.track(p.proc));
        procs.push(...form.procs);
        const per = Math.ceil(nViewers / nProcs);
        const conn = await Promise.all(
          form.procs.map((p, i) => {
            const mine = keys.filter((_, k) => k % nProcs === i);
            return p.request({ cmd: 'connect', url: stack.cp.url, apiKeys: mine.length ? mine : keys, n: Math.max(0, Math.min(per, nViewers - i * per)), concurrency: 50, protocolVersion: form.protocolVersion }, 'connected', 300_000);
          }),
        );
        form.connected = conn.reduce((n, c) => n + c.connected, 0);
        form.keys = keys.length;
        connected = Math.min(connected, form.connected);
        ctx.log(`fanout: ${form.connected} ${form.name} viewers connected in ${Math.max(...conn.map((c) => c.seconds)).toFixed(1)} s`);
        if (form.connected < nViewers) notes.push(`only ${form.connected} of ${nViewers} ${form.name} viewers connected: ${JSON.stringify(conn.map((c) => c.failures))}`);
      }

      for (let r = 0; r < ctx.rounds; r++) {
        for (const form of forms) {
          const fprocs = form.procs;
          const cpu0 = cpuSnapshot({ cp: stack.cp.proc.pid });
          const res = await fetch(`${stack.cp.url}${TRIGGER_PATH}`, { method: 'POST', ...call });
          const body = await res.json();
          if (res.status !== 202) throw new Error(`trigger answered ${res.status}`);
          const id = body.executionId;
          const from = nowMs();
          const subs = await Promise.all(fprocs.map((p) => p.request({ cmd: 'subscribe', executionId: id }, 'subscribed', 120_000)));
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
            const got = (await Promise.all(fprocs.map((p) => p.request({ cmd: 'progress' }, 'progress', 30_000)))).reduce((n, x) => n + x.received, 0);
            if (got >= want) break;
            await sleep(100);
          }
          const cpUs = ((cpuSnapshot({ cp: stack.cp.proc.pid }).cp.self - cpu0.cp.self) * 1000) / Math.max(1, total * subscribed);
          const reps = await Promise.all(fprocs.map((p) => p.request({ cmd: 'report', createdAt, total }, 'report', 120_000)));
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
          form.rounds.push(merged);
          ctx.log(`fanout round ${r + 1} (${form.name}): ${merged.complete}/${form.connected} viewers got all ${total} chunks (gaps ${merged.gaps}, resubscribes ${merged.resubscribes}); storage->viewer p50 ${merged.p50.toFixed(1)} ms p99 ${merged.p99.toFixed(1)} ms; script->viewer p99 ${merged.scriptP99.toFixed(1)} ms; subscribing took ${subS.toFixed(1)} s; viewer-process loop lag p99 ${merged.lag.toFixed(1)} ms; control plane CPU ${merged.cpUs.toFixed(1)} us per chunk delivered`);
        }
      }
      const rounds = forms[0].rounds;
      const binary = forms[1];
      notes.push(`${connected} viewers in ${nProcs} processes (${forms[0].keys} viewer API keys), socket.io on /dashboard, output as base64 text (protocol 4: one frame per message)${binary ? `; interleaved with as many binary viewers (no protocol version: two frames per message, as before protocol 4) in ${nProcs} processes of their own, subscribed only in their own rounds` : ''}; the script writes ${lines} timestamped lines ${intervalMs} ms apart after ${leadS} s (time to subscribe); storage time = the row's created_at (PostgreSQL now(), the start of the inserting transaction, so the delay includes the commit); chunks stored before a viewer's subscribe ack are excluded from the delay (they come as backlog): ${rounds.map((r) => r.backlog).join(', ')} per round`);
      notes.push(`control plane CPU per chunk delivered to one viewer (the round's CPU, subscribes included, / chunks x viewers), per round: ${rounds.map((r) => r.cpUs.toFixed(1)).join(', ')} us`);
      if (binary) {
        notes.push(`binary viewers, per round: storage->viewer p50 ${binary.rounds.map((r) => r.p50.toFixed(1)).join(', ')} ms, p99 ${binary.rounds.map((r) => r.p99.toFixed(1)).join(', ')} ms; control plane CPU per chunk delivered ${binary.rounds.map((r) => r.cpUs.toFixed(1)).join(', ')} us; complete ${binary.rounds.map((r) => r.complete).join(', ')}`);
      }
      notes.push(`the viewer processes' own event-loop lag (p99, ms) per round: ${rounds.map((r) => r.lag.toFixed(1)).join(', ')}: it is part of the measured delay`);
      const m = (k) => median(rounds.map((r) => r[k]));
      const figures = [
        figure({ name: `viewers with every chunk (of ${nViewers})`, unit: 'viewers', ours: Math.min(...rounds.map((r) => r.complete)), better: 'higher', targetAbs: nViewers }),
        figure({ name: 'storage -> viewer delay p50', unit: 'ms', ours: m('p50'), better: 'lower' }),
        figure({ name: 'storage -> viewer delay p99', unit: 'ms', ours: m('p99'), better: 'lower', targetAbs: 100, ...(binary && { baseline: median(binary.rounds.map((r) => r.p99)), baselineName: 'binary viewers', roundsOurs: rounds.map((r) => r.p99), roundsBaseline: binary.rounds.map((r) => r.p99) }) }),
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
