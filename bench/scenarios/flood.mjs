// The unauthenticated flood of issue 13, finding 2: `/health/live` latency and another workspace's
// signed trigger while anonymous callers send nested-array socket.io packets and 1 MiB nested JSON
// bodies, against the same probes without the flood, interleaved in the same run (the order of
// the two legs alternates per round, so drift in the machine's load falls on both).
import path from 'node:path';
import { drain } from '../lib/executions.mjs';
import { fire } from '../lib/load.mjs';
import { BENCH_DIR } from '../lib/paths.mjs';
import { figure } from '../lib/report.mjs';
import { openStack } from '../lib/session.mjs';
import { signedCall } from '../lib/sign.mjs';
import { Api, createServer, scriptWebhook, startAgent, TRIGGER_PATH } from '../lib/stack.mjs';
import { cpuSnapshot, envInt, ManagedProcess, median, nowMs, quantile, sleep, withTimeout } from '../lib/util.mjs';

/** The flood's process: `start` floods until `stop`, then reports what it sent and got back. */
class FloodProcess {
  constructor(url, { wsLanes, httpLanes, packetBytes }) {
    this.proc = new ManagedProcess('anonymous-flood', process.execPath, [path.join(BENCH_DIR, 'procs/anonymous-flood.mjs'), url, String(wsLanes), String(httpLanes), String(packetBytes)], {
      env: { PATH: process.env.PATH },
      ipc: true,
    });
    this.proc.child.on('message', (m) => this.waiting?.(m));
  }
  next(type, cmd, timeoutMs = 60_000) {
    return withTimeout(
      new Promise((resolve) => {
        this.waiting = (m) => m.type === type && resolve(m);
        if (cmd) this.proc.child.send({ cmd });
      }),
      timeoutMs,
      `flood: ${type}`,
    );
  }
}

/** GET /health/live every `everyMs` until `untilMs` (monotonic); the latency of each. */
async function probeLive(url, untilMs, everyMs) {
  const latencies = [];
  const statuses = {};
  while (nowMs() < untilMs) {
    const t0 = nowMs();
    try {
      const r = await fetch(`${url}/health/live`, { signal: AbortSignal.timeout(30_000) });
      await r.arrayBuffer();
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    } catch {
      statuses.error = (statuses.error ?? 0) + 1;
    }
    const ms = nowMs() - t0;
    latencies.push(ms);
    if (ms < everyMs) await sleep(everyMs - ms);
  }
  return { n: latencies.length, statuses, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), max: Math.max(...latencies) };
}

export default {
  name: 'flood',
  title: 'Unauthenticated flood (nested socket.io packets, 1 MiB nested bodies): /health/live and another workspace\'s trigger, with and without it',
  async run(ctx) {
    const notes = [];
    const durationS = envInt('BENCH_FLOOD_DURATION_S', 10);
    const rate = envInt('BENCH_FLOOD_TRIGGER_RATE', 50);
    const shape = { wsLanes: envInt('BENCH_FLOOD_WS', 2), httpLanes: envInt('BENCH_FLOOD_HTTP', 2), packetBytes: Math.round(7.6 * 1024 * 1024) };
    const stack = await openStack(ctx, 'flood');
    let flood;
    try {
      // The victim: another workspace, its own key, server, agent and signed webhook.
      const created = await stack.api.post('/api/v1/workspaces', { name: 'bystander' });
      const api = new Api(stack.cp.url, created.apiKey);
      const server = await createServer(api, 'bench-flood');
      // Its presence is read with its own key (the admin's workspace cannot see this server).
      stack.track(await startAgent({ url: stack.cp.url, api }, server, { label: 'agent-flood', concurrency: ctx.agentConcurrency, profile: ctx.profile }));
      const hook = await scriptWebhook(api, { name: 'flood', content: 'true\n', serverId: server.id });
      const call = signedCall(hook.token, hook.hmacSecret);
      flood = new FloodProcess(stack.cp.url, shape);
      await flood.next('ready');

      const leg = async (withFlood) => {
        if (withFlood) await flood.next('started', 'start');
        const t0 = nowMs();
        const cpu0 = cpuSnapshot({ cp: stack.cp.proc.pid, flood: flood.proc.pid });
        const until = t0 + durationS * 1000;
        const [live, trigger] = await ctx.window(() =>
          Promise.all([probeLive(stack.cp.url, until, 20), fire({ url: `${stack.cp.url}${TRIGGER_PATH}`, ...call, connections: 4, rate, durationS, okStatus: ['202'] })]),
        );
        const cpu1 = cpuSnapshot({ cp: stack.cp.proc.pid, flood: flood.proc.pid });
        const legS = (nowMs() - t0) / 1000;
        // CPU of each process per second of the leg: the control plane's, and the flood's own (it shares the cores).
        const cpu = { cp: (cpu1.cp.self - cpu0.cp.self) / legS, flood: (cpu1.flood.self - cpu0.flood.self) / legS };
        const sent = withFlood ? await flood.next('stopped', 'stop') : null;
        await drain(stack.db, ctx.drainTimeoutMs);
        return { live, trigger, sent, cpu };
      };

      ctx.log('flood: warm-up');
      await fire({ url: `${stack.cp.url}${TRIGGER_PATH}`, ...call, connections: 4, rate, durationS: 2, okStatus: ['202'] });
      await drain(stack.db, ctx.drainTimeoutMs);
      const quiet = [];
      const flooded = [];
      for (let r = 0; r < ctx.rounds; r++) {
        const order = r % 2 === 0 ? [false, true] : [true, false];
        for (const withFlood of order) (withFlood ? flooded : quiet).push(await leg(withFlood));
        const q = quiet.at(-1);
        const f = flooded.at(-1);
        const s = f.sent.stats;
        ctx.log(
          `  round ${r + 1}: /health/live p50/p99 ${q.live.p50.toFixed(1)}/${q.live.p99.toFixed(1)} ms quiet, ${f.live.p50.toFixed(1)}/${f.live.p99.toFixed(1)} ms flooded; ` +
            `trigger p99 ${q.trigger.p99.toFixed(1)} / ${f.trigger.p99.toFixed(1)} ms; flood: ${s.wsAttempts} sockets (${s.wsRefusedAtUpgrade} refused at the upgrade, ${s.wsOpenedAndSent} opened), ` +
            `${s.httpSent} bodies ${JSON.stringify(s.httpByStatus)}; control plane CPU ${q.cpu.cp.toFixed(0)} / ${f.cpu.cp.toFixed(0)} ms/s, the flood's own ${f.cpu.flood.toFixed(0)} ms/s`,
        );
      }
      if (!stack.cp.proc.running) throw new Error('the control plane exited under the flood');

      const m = (arr, pick) => median(arr.map(pick));
      const total = (k) => flooded.reduce((n, f) => n + f.sent.stats[k], 0);
      const seconds = flooded.reduce((n, f) => n + f.sent.seconds, 0);
      const httpByStatus = {};
      for (const f of flooded) for (const [k, v] of Object.entries(f.sent.stats.httpByStatus)) httpByStatus[k] = (httpByStatus[k] ?? 0) + v;
      const unanswered = (legs) => legs.reduce((n, l) => n + l.trigger.errors + Object.entries(l.live.statuses).filter(([k]) => k !== '200').reduce((a, [, v]) => a + v, 0), 0);
      notes.push(
        `flood (${shape.wsLanes} WebSockets and ${shape.httpLanes} bodies in flight at all times, ${Math.round(seconds)} s in all): ${total('wsAttempts')} anonymous WebSockets ` +
          `(${(total('wsAttempts') / seconds).toFixed(0)}/s; ${total('wsRefusedAtUpgrade')} refused on the upgrade, ${total('wsOpenedAndSent')} opened and sent a 7.6 MiB packet, ${total('wsErrors')} errors), ` +
          `${total('httpSent')} 1 MiB nested bodies without a key (${(total('httpSent') / seconds).toFixed(0)}/s; answers ${JSON.stringify(httpByStatus)}, ${total('httpErrors')} errors)`,
      );
      notes.push(`probes not answered 200/202: ${unanswered(flooded)} under the flood, ${unanswered(quiet)} without; ${flooded.reduce((n, l) => n + l.live.n, 0)} /health/live probes and ${flooded.reduce((n, l) => n + l.trigger.total, 0)} triggers (${rate}/s on 4 connections) under the flood`);
      notes.push(`the flood's own process used ${m(flooded, (x) => x.cpu.flood).toFixed(0)} ms of CPU per second (median of the legs) on the same 2 cores`);
      notes.push(`slowest /health/live under the flood: ${Math.max(...flooded.map((f) => f.live.max)).toFixed(1)} ms (without: ${Math.max(...quiet.map((f) => f.live.max)).toFixed(1)} ms)`);
      const memory = await stack.close();
      return {
        memory,
        figures: [
          figure({ name: '/health/live p50 under the flood', unit: 'ms', ours: m(flooded, (x) => x.live.p50), baseline: m(quiet, (x) => x.live.p50), baselineName: 'same, no flood', better: 'lower', roundsOurs: flooded.map((x) => x.live.p50), roundsBaseline: quiet.map((x) => x.live.p50) }),
          figure({ name: '/health/live p99 under the flood', unit: 'ms', ours: m(flooded, (x) => x.live.p99), baseline: m(quiet, (x) => x.live.p99), baselineName: 'same, no flood', better: 'lower', roundsOurs: flooded.map((x) => x.live.p99), roundsBaseline: quiet.map((x) => x.live.p99) }),
          figure({ name: `other workspace's signed trigger p99 under the flood (${rate}/s)`, unit: 'ms', ours: m(flooded, (x) => x.trigger.p99), baseline: m(quiet, (x) => x.trigger.p99), baselineName: 'same, no flood', better: 'lower', roundsOurs: flooded.map((x) => x.trigger.p99), roundsBaseline: quiet.map((x) => x.trigger.p99) }),
          figure({ name: 'control plane CPU under the flood', unit: 'ms/s', ours: m(flooded, (x) => x.cpu.cp), baseline: m(quiet, (x) => x.cpu.cp), baselineName: 'same, no flood', better: 'lower', roundsOurs: flooded.map((x) => x.cpu.cp), roundsBaseline: quiet.map((x) => x.cpu.cp) }),
          figure({ name: 'probes not answered 200/202 under the flood', unit: 'calls', ours: unanswered(flooded), baseline: unanswered(quiet), baselineName: 'same, no flood', better: 'lower', targetAbs: 0 }),
        ],
        notes,
      };
    } finally {
      if (flood?.proc.running) await flood.proc.stop();
      await stack.close();
    }
  },
};
