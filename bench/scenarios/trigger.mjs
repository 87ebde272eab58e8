// 1. Trigger acceptance: valid signed calls at 10 and 100 connections, vs adnanh/webhook.
import { countExisting, drain } from '../lib/executions.mjs';
import { fire } from '../lib/load.mjs';
import { startPeer } from '../lib/peer.mjs';
import { figure } from '../lib/report.mjs';
import { openStack } from '../lib/session.mjs';
import { signedCall } from '../lib/sign.mjs';
import { createServer, scriptWebhook, TRIGGER_PATH } from '../lib/stack.mjs';
import { median, sum } from '../lib/util.mjs';

const UUID = /"executionId":"([0-9a-f-]{36})"/;

export default {
  name: 'trigger',
  title: 'Trigger acceptance (signed calls, script `true`, agent running them)',
  async run(ctx) {
    const notes = [];
    const figures = [];
    const stack = await openStack(ctx, 'trigger');
    let peer = null;
    try {
      const server = await createServer(stack.api, 'bench-trigger');
      await stack.agent(server, { concurrency: ctx.agentConcurrency });
      const hook = await scriptWebhook(stack.api, { name: 'trigger', content: 'true\n', serverId: server.id });
      const call = signedCall(hook.token, hook.hmacSecret);
      if (ctx.peer.bin) {
        peer = await startPeer(ctx.peer.bin, [{ id: 'true', command: '/bin/true', output: false }], hook.hmacSecret);
        stack.track(peer.proc);
      } else notes.push(ctx.peer.why);

      const accepted = [];
      const onBody = (status, body) => {
        if (status === 202) {
          const m = UUID.exec(body);
          if (m) accepted.push(m[1]);
        }
      };
      const ours = (connections, durationS) =>
        fire({ url: `${stack.cp.url}${TRIGGER_PATH}`, ...call, connections, durationS, okStatus: ['202'], onBody });
      const theirs = (connections, durationS) => fire({ url: `${peer.url}/hooks/true`, ...call, connections, durationS, okStatus: ['200'] });
      const settle = async () => {
        const d = await drain(stack.db, ctx.drainTimeoutMs);
        if (!d.drained) notes.push(`the agent had not finished every accepted execution ${ctx.drainTimeoutMs / 1000} s after a round (${d.done}/${d.total}); the next round ran with a backlog`);
        return d;
      };

      for (const connections of ctx.connectionLevels) {
        ctx.log(`trigger: ${connections} connections, warm-up`);
        await ours(connections, ctx.warmupS);
        await settle();
        if (peer) await theirs(connections, ctx.warmupS);
        const o = [];
        const p = [];
        const groups = async () => ({ calls: await stack.cp.metric('devpilot_trigger_accept_group_size_sum'), statements: await stack.cp.metric('devpilot_trigger_accept_group_size_count') });
        const groupsBefore = await groups();
        for (let r = 0; r < ctx.rounds; r++) {
          const t0 = Date.now();
          const a = await ctx.window(() => ours(connections, ctx.durationS));
          const d = await settle();
          o.push(a);
          ctx.log(`  round ${r + 1}: ours ${a.okPerS.toFixed(0)}/s p50 ${a.p50.toFixed(2)} ms p99 ${a.p99.toFixed(2)} ms, non-202 ${a.errors} ${JSON.stringify(a.byStatus)}; drained in ${((Date.now() - t0) / 1000 - a.durationS).toFixed(1)} s (${d.succeeded}/${d.total} succeeded)`);
          if (peer) {
            const b = await theirs(connections, ctx.durationS);
            p.push(b);
            ctx.log(`           peer ${b.okPerS.toFixed(0)}/s p50 ${b.p50.toFixed(2)} ms p99 ${b.p99.toFixed(2)} ms, non-200 ${b.errors}`);
          }
        }
        const groupsAfter = await groups();
        const m = (arr, k) => (arr.length ? median(arr.map((x) => x[k])) : NaN);
        // Group commit: calls per accept statement over the measured rounds (NaN for a build without it).
        const perStatement = (groupsAfter.calls - groupsBefore.calls) / (groupsAfter.statements - groupsBefore.statements);
        const base = { baselineName: peer ? 'adnanh/webhook' : undefined };
        figures.push(
          figure({ name: `accepted calls/s @${connections} conns`, unit: 'calls/s', ours: m(o, 'okPerS'), baseline: m(p, 'okPerS'), better: 'higher', target: 1.0, roundsOurs: o.map((x) => x.okPerS), roundsBaseline: p.map((x) => x.okPerS), ...base }),
          figure({ name: `latency p50 @${connections} conns`, unit: 'ms', ours: m(o, 'p50'), baseline: m(p, 'p50'), better: 'lower', ...base }),
          figure({ name: `latency p99 @${connections} conns`, unit: 'ms', ours: m(o, 'p99'), baseline: m(p, 'p99'), better: 'lower', target: 1.0, roundsOurs: o.map((x) => x.p99), roundsBaseline: p.map((x) => x.p99), ...base }),
          figure({ name: `calls per accept statement @${connections} conns`, unit: 'calls', ours: perStatement, better: 'higher' }),
          // The backlog bound's answer (503 OVERLOADED with Retry-After) counted on its own: a refusal by design, not a failure.
          figure({ name: `503 OVERLOADED answers @${connections} conns`, unit: 'calls', ours: sum(o.map((x) => x.byStatus['503'] ?? 0)), better: 'lower' }),
          figure({ name: `errors (non-202) @${connections} conns`, unit: 'calls', ours: sum(o.map((x) => x.errors)), baseline: p.length ? sum(p.map((x) => x.errors)) : NaN, better: 'lower', targetAbs: 0, ...base }),
        );
      }

      const final = await drain(stack.db, ctx.drainTimeoutMs);
      const found = await countExisting(stack.db, accepted);
      figures.push(
        figure({ name: '202s without an execution row', unit: 'calls', ours: accepted.length - found, better: 'lower', targetAbs: 0, note: `${accepted.length} accepted calls checked against the execution table` }),
      );
      notes.push(`${accepted.length} calls answered 202; ${found} of them have an execution row; ${final.succeeded}/${final.total} executions succeeded${final.drained ? '' : ' (not all finished in time)'}`);
      notes.push('our 202 is written in one transaction (execution, delivery, counter) before the answer; the peer answers 200 before running /bin/true and stores nothing');
    } finally {
      if (peer) await peer.stop().catch(() => undefined);
      var memory = await stack.close();
    }
    return { figures, memory, notes };
  },
};
