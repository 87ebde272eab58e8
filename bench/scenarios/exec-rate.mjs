// 3. Execution rate: a burst of triggers of `true`; executions completed per second.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
/** The same kind of script for the fair peer figure: each run appends one byte to a file, so completions are counted. */
const counting = (file) => `printf x >> '${file}'\n`;

/** Bytes in a file (0 when it does not exist yet). */
const fileLength = async (file) => (await readFile(file).catch(() => Buffer.alloc(0))).length;

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
      // The fair figure: both sides run the same counting script file; the peer answers before it runs anything.
      const peerCounter = path.join(dir, 'peer-count');
      const peerCounting = path.join(dir, 'peer-counting.sh');
      await writeFile(peerCounting, counting(peerCounter));
      const oursCounter = path.join(dir, 'ours-count');
      // Our agent runs scripts as the script user (devpilot-run when the bench runs as root): it
      // may pass through the folder and append to this one file, nothing else.
      await writeFile(oursCounter, '');
      await chmod(oursCounter, 0o666);
      await chmod(dir, 0o711);
      const countingHook = await scriptWebhook(stack.api, { name: 'rate-count', content: counting(oursCounter), serverId: server.id });
      const countingCall = signedCall(countingHook.token, countingHook.hmacSecret);
      if (ctx.peer.bin) {
        peer = await startPeer(
          ctx.peer.bin,
          [
            { id: 'script', command: '/bin/bash', args: [file], output: true },
            { id: 'count', command: '/bin/bash', args: [peerCounting], output: false },
          ],
          hook.hmacSecret,
        );
        stack.track(peer.proc);
      } else notes.push(ctx.peer.why);
      const countingPeerCall = signedCall(countingHook.token, hook.hmacSecret);

      /** A burst at `url`; completions counted in `counter` until all `n` are there (or the drain timeout). */
      const countedRound = async (url, callSpec, counter, n, okStatus) => {
        const before = await fileLength(counter);
        const t0 = performance.now();
        const r = await fire({ url, ...callSpec, connections: callers, amount: n, okStatus });
        const deadline = Date.now() + ctx.drainTimeoutMs;
        let done = (await fileLength(counter)) - before;
        while (done < r.ok && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          done = (await fileLength(counter)) - before;
        }
        const seconds = (performance.now() - t0) / 1000;
        return { perSecond: done / seconds, accepted: r.ok, acceptedPerS: r.ok / r.durationS, completed: done, errors: r.errors };
      };

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
        return { perSecond: done / seconds, seconds, acceptedS, accepted: r.ok, errors: r.errors, overloaded: r.byStatus['503'] ?? 0, succeeded: d.succeeded, cpuMs };
      };

      await ourRound(Math.min(200, burst)); // warm-up
      const ours = [];
      const ceiling = [];
      const theirs = [];
      const oursCounted = [];
      const theirsCounted = [];
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
          const oc = await countedRound(`${stack.cp.url}${TRIGGER_PATH}`, countingCall, oursCounter, burst, ['202']);
          await drain(stack.db, ctx.drainTimeoutMs, 20);
          const pc = await countedRound(`${peer.url}/hooks/count`, countingPeerCall, peerCounter, burst, ['200']);
          oursCounted.push(oc);
          theirsCounted.push(pc);
          line += `; counted: ours ${oc.perSecond.toFixed(0)}/s (${oc.completed}/${oc.accepted}), peer ${pc.perSecond.toFixed(0)}/s (${pc.completed}/${pc.accepted} completed, accepted at ${pc.acceptedPerS.toFixed(0)}/s)`;
        }
        ctx.log(line);
      }
      const final = await executionCounts(stack.db);
      // HOT updates (no new index entries) of execution rows over the scenario, from PostgreSQL's
      // statistics (each backend sends its counts within about a second of going idle).
      const [hot] = await stack.db.query(
        `SELECT n_tup_upd AS updates, n_tup_hot_upd AS hot, (SELECT count(*) FROM pg_index i WHERE i.indrelid = 'execution'::regclass) AS indexes FROM pg_stat_user_tables WHERE relname = 'execution'`,
      );
      // Transactions committed in this scenario's database per execution: with autocommit statements, about
      // the statements each execution cost (acceptance, dispatch, reports, output), whatever the load.
      const [tx] = await stack.db.query(`SELECT xact_commit AS commits FROM pg_stat_database WHERE datname = current_database()`);
      if (tx) notes.push(`${(Number(tx.commits) / Math.max(1, Number(final.total))).toFixed(2)} transactions committed per execution in the scenario's database (${tx.commits} for ${final.total} executions, setup and reads included)`);
      if (hot) notes.push(`execution rows updated ${hot.updates} times over the scenario, ${hot.hot} of them HOT (${((100 * Number(hot.hot)) / Math.max(1, Number(hot.updates))).toFixed(1)}%); a non-HOT update inserts into each of the table's ${hot.indexes} indexes`);
      const cpuOf = (k) => median(ours.map((o) => o.cpuMs[k])).toFixed(2);
      notes.push(
        `CPU per execution (ms, user + system, median of the rounds): agent ${cpuOf('agent')}, the scripts it ran (bash) ${cpuOf('scripts')}, control plane ${cpuOf('controlPlane')}, PostgreSQL (all its processes) ${cpuOf('postgres')}; the machine has 2 cores for all of them`,
      );
      notes.push(`burst of ${burst} calls from ${callers} connections; agent --concurrency ${concurrency}; the spawn ceiling runs \`bash <file>\` (what the agent runs, in the same environment) ${concurrency} at a time in a plain Node process; the peer runs the same with output in the response on ${concurrency} connections`);
      notes.push(`${final.succeeded}/${final.total} executions succeeded; non-202 answers during bursts: ${ours.reduce((a, o) => a + o.errors, 0)}, of them 503 OVERLOADED (the backlog bound): ${ours.reduce((a, o) => a + o.overloaded, 0)}`);
      const m = (arr) => median(arr.map((x) => x.perSecond));
      const figures = [
        figure({ name: `executions completed/s (burst ${burst})`, unit: 'exec/s', ours: m(ours), baseline: m(ceiling), baselineName: 'spawn ceiling', better: 'higher', target: 0.8, roundsOurs: ours.map((x) => x.perSecond), roundsBaseline: ceiling.map((x) => x.perSecond) }),
      ];
      if (peer) {
        figures.push(figure({ name: `executions completed/s vs peer (burst ${burst})`, unit: 'exec/s', ours: m(ours), baseline: m(theirs), baselineName: 'adnanh/webhook', better: 'higher', roundsBaseline: theirs.map((x) => x.perSecond) }));
        figures.push(
          figure({
            name: `completions/s, same counting script (burst ${burst})`,
            unit: 'exec/s',
            ours: m(oursCounted),
            baseline: m(theirsCounted),
            baselineName: 'adnanh/webhook, answering first',
            better: 'higher',
            target: 1.0,
            roundsOurs: oursCounted.map((x) => x.perSecond),
            roundsBaseline: theirsCounted.map((x) => x.perSecond),
            note: 'both run the same bash file that appends a byte per run; completions counted from the file, from the first call to the last completion',
          }),
        );
      }
      return { figures, notes, memory: await stack.close() };
    } finally {
      if (peer) await peer.stop().catch(() => undefined);
      await stack.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
