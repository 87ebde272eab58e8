// 3. Execution rate: a burst of triggers of `true`; executions completed per second.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { drain, executionCounts } from '../lib/executions.mjs';
import { fire } from '../lib/load.mjs';
import { BENCH_DIR } from '../lib/paths.mjs';
import { startPeer } from '../lib/peer.mjs';
import { figure } from '../lib/report.mjs';
import { openStack } from '../lib/session.mjs';
import { signedCall } from '../lib/sign.mjs';
import { createServer, scriptWebhook, TRIGGER_PATH } from '../lib/stack.mjs';
import { cpuSnapshot, envInt, ManagedProcess, median } from '../lib/util.mjs';

const SCRIPT = 'true\n';

async function spawnCeiling(file, count, concurrency) {
  const p = new ManagedProcess('spawn-ceiling', process.execPath, [path.join(BENCH_DIR, 'procs/spawn-ceiling.mjs'), file, String(count), String(concurrency)], { env: { PATH: process.env.PATH } });
  const { code } = await p.exited;
  if (code !== 0) throw new Error(`spawn ceiling failed: ${p.tail}`);
  return JSON.parse(p.tail.trim().split('\n').pop());
}

export default {
  name: 'exec-rate',
  title: 'Execution rate (burst of triggers of `true`, until all are terminal)',
  async run(ctx) {
    const burst = envInt('BENCH_BURST', 2000);
    const callers = envInt('BENCH_BURST_CONNECTIONS', 50);
    const concurrency = ctx.agentConcurrency;
    const notes = [];
    const stack = await openStack(ctx, 'exec-rate');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-bench-rate-'));
    let peer = null;
    try {
      const file = path.join(dir, 'script.sh');
      await writeFile(file, SCRIPT);
      const server = await createServer(stack.api, 'bench-rate');
      const agent = await stack.agent(server, { concurrency });
      const hook = await scriptWebhook(stack.api, { name: 'rate', content: SCRIPT, serverId: server.id });
      const call = signedCall(hook.token, hook.hmacSecret);
      if (ctx.peer.bin) {
        peer = await startPeer(ctx.peer.bin, [{ id: 'script', command: '/bin/bash', args: [file], output: true }], hook.hmacSecret);
        stack.track(peer.proc);
      } else notes.push(ctx.peer.why);

      const ourRound = async (n) => {
        const before = (await executionCounts(stack.db)).total;
        const cpu0 = cpuSnapshot({ cp: stack.cp.proc.pid, agent: agent.pid });
        const t0 = performance.now();
        const r = await fire({ url: `${stack.cp.url}${TRIGGER_PATH}`, ...call, connections: callers, amount: n, okStatus: ['202'] });
        const acceptedS = r.durationS;
        const d = await drain(stack.db, ctx.drainTimeoutMs, 20);
        const seconds = (performance.now() - t0) / 1000;
        if (!d.drained) notes.push(`not all executions finished within ${ctx.drainTimeoutMs / 1000} s (${d.done}/${d.total})`);
        const done = d.done - before;
        const cpu1 = cpuSnapshot({ cp: stack.cp.proc.pid, agent: agent.pid });
        const per = (ms) => ms / Math.max(done, 1);
        const cpuMs = {
          agent: per(cpu1.agent.self - cpu0.agent.self),
          scripts: per(cpu1.agent.children - cpu0.agent.children),
          controlPlane: per(cpu1.cp.self - cpu0.cp.self),
          postgres: per(cpu1.postgres - cpu0.postgres),
        };
        return { perSecond: done / seconds, seconds, acceptedS, accepted: r.ok, errors: r.errors, succeeded: d.succeeded, cpuMs };
      };

      await ourRound(Math.min(200, burst)); // warm-up
      const ours = [];
      const ceiling = [];
      const theirs = [];
      for (let i = 0; i < ctx.rounds; i++) {
        const o = await ctx.window(() => ourRound(burst));
        ours.push(o);
        const c = await spawnCeiling(file, burst, concurrency);
        ceiling.push(c);
        let line = `exec-rate round ${i + 1}: ours ${o.perSecond.toFixed(0)}/s (${o.accepted} accepted in ${o.acceptedS.toFixed(1)} s, all terminal after ${o.seconds.toFixed(1)} s, non-202 ${o.errors}); spawn ceiling ${c.perSecond.toFixed(0)}/s`;
        if (peer) {
          const p = await fire({ url: `${peer.url}/hooks/script`, ...call, connections: concurrency, amount: burst, okStatus: ['200'] });
          const perSecond = p.okPerS;
          theirs.push({ perSecond, errors: p.errors });
          line += `; peer ${perSecond.toFixed(0)}/s (non-200 ${p.errors})`;
        }
        ctx.log(line);
      }
      const final = await executionCounts(stack.db);
      const cpuOf = (k) => median(ours.map((o) => o.cpuMs[k])).toFixed(2);
      notes.push(
        `CPU per execution (ms, user + system, median of the rounds): agent ${cpuOf('agent')}, the scripts it ran (bash) ${cpuOf('scripts')}, control plane ${cpuOf('controlPlane')}, PostgreSQL (all its processes) ${cpuOf('postgres')}; the machine has 2 cores for all of them`,
      );
      notes.push(`burst of ${burst} calls from ${callers} connections; agent --concurrency ${concurrency}; the spawn ceiling runs \`bash <file>\` (what the agent runs, in the same environment) ${concurrency} at a time in a plain Node process; the peer runs the same with output in the response on ${concurrency} connections`);
      notes.push(`${final.succeeded}/${final.total} executions succeeded; non-202 answers during bursts: ${ours.reduce((a, o) => a + o.errors, 0)}`);
      const m = (arr) => median(arr.map((x) => x.perSecond));
      const figures = [
        figure({ name: `executions completed/s (burst ${burst})`, unit: 'exec/s', ours: m(ours), baseline: m(ceiling), baselineName: 'spawn ceiling', better: 'higher', target: 0.8, roundsOurs: ours.map((x) => x.perSecond), roundsBaseline: ceiling.map((x) => x.perSecond) }),
      ];
      if (peer) {
        figures.push(figure({ name: `executions completed/s vs peer (burst ${burst})`, unit: 'exec/s', ours: m(ours), baseline: m(theirs), baselineName: 'adnanh/webhook', better: 'higher', roundsBaseline: theirs.map((x) => x.perSecond) }));
      }
      return { figures, notes, memory: await stack.close() };
    } finally {
      if (peer) await peer.stop().catch(() => undefined);
      await stack.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
