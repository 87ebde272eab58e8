// Pruning's effect on the trigger: 100,000 old output rows are pruned while signed calls arrive;
// trigger p99 with the pruning job busy against p99 with it idle, in the same run.
import { drain } from '../lib/executions.mjs';
import { fire } from '../lib/load.mjs';
import { figure } from '../lib/report.mjs';
import { openStack } from '../lib/session.mjs';
import { signedCall } from '../lib/sign.mjs';
import { createServer, scriptWebhook, TRIGGER_PATH } from '../lib/stack.mjs';
import { envInt, median, nowMs, waitFor } from '../lib/util.mjs';

export default {
  name: 'prune',
  title: 'Pruning 100,000 old output rows while the trigger is under load',
  async run(ctx) {
    const notes = [];
    const rowsToPrune = envInt('BENCH_PRUNE_ROWS', 100_000);
    const stack = await openStack(ctx, 'prune', { cpEnv: { DEVPILOT_PRUNE_INTERVAL_SECONDS: '1' } });
    try {
      const server = await createServer(stack.api, 'bench-prune');
      await stack.agent(server, { concurrency: ctx.agentConcurrency });
      const hook = await scriptWebhook(stack.api, { name: 'prune', content: 'true\n', serverId: server.id });
      const call = signedCall(hook.token, hook.hmacSecret);

      // Old ended runs of this workspace: 1,000 runs of 100 rows of 1 KiB, finished two days ago.
      const perRun = 100;
      const runs = Math.ceil(rowsToPrune / perRun);
      ctx.log(`prune: seeding ${runs} old runs x ${perRun} output rows`);
      await stack.db.query(
        `INSERT INTO execution (workspace_id, script_id, script_version, server_id, trigger, status, exit_code, deliver_by,
                                started_at, finished_at, queued_at, output_bytes)
         SELECT s.workspace_id, s.id, 1, $1, 'manual', 'succeeded', 0, now(), now() - interval '2 days', now() - interval '2 days',
                now() - interval '2 days', $3::bigint * 1024
         FROM script s CROSS JOIN generate_series(1, $4) WHERE s.id = $2`,
        [server.id, hook.scriptId, perRun, runs],
      );
      await stack.db.query(
        `INSERT INTO execution_output (execution_id, seq, stream, data)
         SELECT e.id, g.seq, 'stdout', convert_to(repeat('x', 1024), 'UTF8')
         FROM execution e CROSS JOIN generate_series(0, $1 - 1) AS g(seq) WHERE e.finished_at < now() - interval '1 day'`,
        [perRun],
      );
      await stack.db.query(`UPDATE workspace SET output_bytes = output_bytes + $1::bigint * 1024`, [runs * perRun]);
      const remaining = async () => Number((await stack.db.query(`SELECT count(*) AS n FROM execution_output o JOIN execution e ON e.id = o.execution_id WHERE e.finished_at < now() - interval '1 day'`))[0].n);
      const load = () => fire({ url: `${stack.cp.url}${TRIGGER_PATH}`, ...call, connections: 10, durationS: ctx.durationS, okStatus: ['202'] });

      ctx.log('prune: warm-up');
      await load();
      await drain(stack.db, ctx.drainTimeoutMs);
      const idle = [];
      const busy = [];
      const rates = [];
      let prunedDuringLoad = 0;
      let prunedWhileIdle = 0;
      for (let r = 0; r < ctx.rounds; r++) {
        // Idle: the old runs are within the (instance) retention of 30 days; nothing may go meanwhile.
        const idleBefore = await remaining();
        const a = await ctx.window(load);
        prunedWhileIdle += idleBefore - (await remaining());
        await drain(stack.db, ctx.drainTimeoutMs);
        idle.push(a);
        // Busy: the workspace shortens its retention to one day; the window opens once a pass has
        // begun deleting, so pruning runs through all of it (rows are left at its end, or it says so).
        const start = await remaining();
        await stack.api.patch('/api/v1/workspaces/current', { outputRetention: '1d' });
        const before = await waitFor('pruning to begin', async () => {
          const n = await remaining();
          return n < start ? n : false;
        }, 30_000, 20);
        const t0 = nowMs();
        const b = await ctx.window(load);
        const after = await remaining();
        const seconds = (nowMs() - t0) / 1000;
        prunedDuringLoad += before - after;
        rates.push((before - after) / seconds);
        await stack.api.patch('/api/v1/workspaces/current', { outputRetention: null });
        await drain(stack.db, ctx.drainTimeoutMs);
        busy.push(b);
        ctx.log(`  round ${r + 1}: idle p99 ${a.p99.toFixed(1)} ms ${a.okPerS.toFixed(0)}/s; pruning p99 ${b.p99.toFixed(1)} ms ${b.okPerS.toFixed(0)}/s, ${before - after} rows pruned meanwhile (${((before - after) / seconds).toFixed(0)}/s, ${after} left)`);
        if (after === 0) {
          notes.push(`everything was pruned during round ${r + 1}: pruning did not run through that busy window${r + 1 < ctx.rounds ? ', and later rounds were not measured' : ''} (raise BENCH_PRUNE_ROWS)`);
          break;
        }
      }
      const m = (arr, k) => median(arr.map((x) => x[k]));
      notes.push(`${prunedDuringLoad} output rows were pruned during the measured busy windows`);
      if (prunedWhileIdle !== 0) notes.push(`${prunedWhileIdle} output rows went during the idle windows: the baseline was not idle`);
      const memory = await stack.close();
      return {
        memory,
        figures: [
          figure({ name: 'trigger p99 while pruning @10 conns', unit: 'ms', ours: m(busy, 'p99'), baseline: m(idle, 'p99'), baselineName: 'same, pruning idle', better: 'lower', target: 1.1, roundsOurs: busy.map((x) => x.p99), roundsBaseline: idle.map((x) => x.p99) }),
          figure({ name: 'accepted calls/s while pruning @10 conns', unit: 'calls/s', ours: m(busy, 'okPerS'), baseline: m(idle, 'okPerS'), baselineName: 'same, pruning idle', better: 'higher' }),
          figure({ name: 'output rows pruned/s under that load', unit: 'rows/s', ours: median(rates), better: 'higher', roundsOurs: rates }),
        ],
        notes,
      };
    } finally {
      await stack.close();
    }
  },
};
