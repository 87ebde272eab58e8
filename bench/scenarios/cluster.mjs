// 9. Several nodes: three control-plane processes on one database against one, in the same run.
// Dispatch latency with the trigger on node B and the agent on node A (through the socket.io
// adapter) against trigger and agent on one node; trigger acceptance spread over 3 nodes against
// 1; viewers of one streaming run spread over 3 nodes against all on the agent's node; agents
// spread over the 3 nodes, each reached from any node.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { drain } from '../lib/executions.mjs';
import { FakeAgentFleet } from '../lib/fake-agents.mjs';
import { fire } from '../lib/load.mjs';
import { BENCH_DIR } from '../lib/paths.mjs';
import { createDatabase } from '../lib/postgres.mjs';
import { figure } from '../lib/report.mjs';
import { signedCall } from '../lib/sign.mjs';
import { Api, createServer, scriptWebhook, startAgent, startControlPlane, TRIGGER_PATH } from '../lib/stack.mjs';
import { envInt, ManagedProcess, median, MiB, nowMs, quantile, sleep, withTimeout } from '../lib/util.mjs';

const WARMUP = 10;

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
  name: 'cluster',
  title: 'Several nodes (3 control planes on one PostgreSQL vs 1, same run)',
  async run(ctx) {
    const rounds = envInt('BENCH_CLUSTER_DISPATCH_ROUNDS', 60);
    const nAgents = envInt('BENCH_CLUSTER_AGENTS', 300);
    const nViewers = envInt('BENCH_CLUSTER_VIEWERS', 300);
    const lines = envInt('BENCH_FANOUT_LINES', 60);
    const intervalMs = envInt('BENCH_FANOUT_INTERVAL_MS', 50);
    const connections = envInt('BENCH_CLUSTER_CONNECTIONS', 30);
    const notes = [];
    const db = await createDatabase(ctx.pg.url);
    const adminKey = `bench-admin-${randomBytes(24).toString('hex')}`;
    const env = {
      DEVPILOT_ADMIN_API_KEY: adminKey,
      DEVPILOT_MASTER_KEY: randomBytes(32).toString('hex'),
      DEVPILOT_VIEWER_CONNECTIONS_PER_KEY: String(nViewers + 10),
    };
    const nodes = [];
    const tracked = [];
    const fleets = [];
    const viewerProcs = [];
    try {
      // One after the other: the first runs the migrations (the others find them done under the lock).
      for (let i = 0; i < 3; i++) {
        const cp = await startControlPlane({ databaseUrl: db.url, label: `cp-cluster-${'ABC'[i]}`, profile: ctx.profile, env });
        nodes.push({ ...cp, adminKey, api: new Api(cp.url, adminKey) });
      }
      const [A, B] = nodes;
      const api = A.api;

      // --- Dispatch: trigger on A or on B, the agent on A; interleaved, so both see the same machine.
      const serverA = await createServer(api, 'cluster-a');
      const quick = await api.post('/api/v1/scripts', { name: 'cluster-true', content: 'true\n' });
      const hookA = await api.post(`/api/v1/scripts/${quick.id}/webhooks`, { name: 'cluster-a', serverId: serverA.id });
      const one = new FakeAgentFleet('fake-agent-on-A', 1, ctx.log);
      fleets.push(one);
      tracked.push(...one.procs);
      const c1 = await one.connect(A.url, [serverA.agentToken], { concurrency: 1 });
      if (c1.connected !== 1) throw new Error(`the agent could not connect to node A: ${JSON.stringify(c1.failures)}`);
      const body = JSON.stringify({ token: hookA.token });
      const dispatch = async (node, fleet) => {
        const t0 = nowMs();
        const res = await fetch(`${node.url}${TRIGGER_PATH}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
        const b = await res.json();
        if (res.status !== 202) throw new Error(`trigger on ${node.url} answered ${res.status} ${JSON.stringify(b)}`);
        return (await fleet.startOf(b.executionId)) - t0;
      };
      const same = [];
      const cross = [];
      await ctx.window(async () => {
        for (let i = 0; i < WARMUP + rounds; i++) {
          const a = await dispatch(A, one);
          await sleep(10);
          const b = await dispatch(B, one);
          await sleep(10);
          if (i >= WARMUP) {
            same.push(a);
            cross.push(b);
          }
        }
      });
      ctx.log(`cluster: dispatch trigger-on-A/agent-on-A p50 ${quantile(same, 0.5).toFixed(2)} ms p99 ${quantile(same, 0.99).toFixed(2)} ms; trigger-on-B/agent-on-A p50 ${quantile(cross, 0.5).toFixed(2)} ms p99 ${quantile(cross, 0.99).toFixed(2)} ms`);

      // --- Agents spread over the three nodes; each reached by a trigger on a node that does not hold it.
      const spread = [];
      const servers = [];
      for (let i = 0; i < nAgents; i++) servers.push(await createServer(api, `cluster-spread-${i}`));
      const t0 = nowMs();
      for (let n = 0; n < 3; n++) {
        const f = new FakeAgentFleet(`fake-agents-on-${'ABC'[n]}`, 1, ctx.log);
        fleets.push(f);
        tracked.push(...f.procs);
        const mine = servers.filter((_, i) => i % 3 === n);
        const r = await f.connect(nodes[n].url, mine.map((s) => s.agentToken), { concurrency: 50 });
        if (Object.keys(r.failures).length) notes.push(`spread agents on node ${'ABC'[n]}: connect failures ${JSON.stringify(r.failures)}`);
        spread.push({ fleet: f, servers: mine });
      }
      const connectS = (nowMs() - t0) / 1000;
      const [{ n: online }] = await db.query(`SELECT count(*)::int AS n FROM server WHERE status = 'online'`);
      const spreadHooks = [];
      for (let n = 0; n < 3; n++) {
        for (const s of spread[n].servers.slice(0, 5)) {
          const h = await api.post(`/api/v1/scripts/${quick.id}/webhooks`, { name: `spread-${s.id.slice(0, 8)}`, serverId: s.id });
          spreadHooks.push({ holder: n, fleet: spread[n].fleet, body: JSON.stringify({ token: h.token }) });
        }
      }
      const anyNode = [];
      const ownNode = [];
      const spreadDispatch = async (h, node) => {
        const t = nowMs();
        const res = await fetch(`${node.url}${TRIGGER_PATH}`, { method: 'POST', body: h.body, headers: { 'content-type': 'application/json' } });
        const b = await res.json();
        if (res.status !== 202) throw new Error(`trigger answered ${res.status}`);
        return (await h.fleet.startOf(b.executionId)) - t;
      };
      // Each agent triggered on its own node and on another, interleaved.
      await ctx.window(async () => {
        for (let i = 0; i < WARMUP + rounds; i++) {
          const h = spreadHooks[i % spreadHooks.length];
          const own = await spreadDispatch(h, nodes[h.holder]);
          await sleep(10);
          const other = await spreadDispatch(h, nodes[(h.holder + 1 + (i % 2)) % 3]);
          await sleep(10);
          if (i >= WARMUP) {
            ownNode.push(own);
            anyNode.push(other);
          }
        }
      });
      ctx.log(`cluster: ${nAgents} agents spread over 3 nodes in ${connectS.toFixed(1)} s, ${online} servers online; dispatch on the agent's node p50 ${quantile(ownNode, 0.5).toFixed(2)} ms, from another node p50 ${quantile(anyNode, 0.5).toFixed(2)} ms p99 ${quantile(anyNode, 0.99).toFixed(2)} ms`);

      // --- Trigger acceptance: 1 node, then the same connections spread over 3 nodes (3 rounds each, interleaved).
      const call = { body, headers: { 'content-type': 'application/json' } };
      const acceptOne = [];
      const acceptThree = [];
      for (let r = 0; r < ctx.rounds; r++) {
        const x = await ctx.window(() => fire({ url: `${A.url}${TRIGGER_PATH}`, ...call, connections, durationS: ctx.durationS, okStatus: [202] }));
        acceptOne.push(x.okPerS);
        await drain(db, 120_000, 200);
        const ys = await ctx.window(() => Promise.all(nodes.map((n) => fire({ url: `${n.url}${TRIGGER_PATH}`, ...call, connections: Math.ceil(connections / 3), durationS: ctx.durationS, okStatus: [202] }))));
        acceptThree.push(ys.reduce((s, y) => s + y.okPerS, 0));
        await drain(db, 120_000, 200);
        ctx.log(`cluster: acceptance round ${r + 1}: 1 node ${x.okPerS.toFixed(0)}/s, 3 nodes ${acceptThree.at(-1).toFixed(0)}/s (${connections} connections; agent on A)`);
      }
      const [{ n: lostRuns }] = await db.query(`SELECT count(*)::int AS n FROM execution WHERE status NOT IN ('succeeded')`);
      if (lostRuns) notes.push(`${lostRuns} executions did not succeed`);

      // --- Fan-out: a real agent on A runs a script writing timestamped lines; viewers all on A, then spread over A, B, C.
      const agentServer = await createServer(api, 'cluster-fanout');
      tracked.push(await startAgent(A, agentServer, { concurrency: ctx.agentConcurrency, label: 'agent-cluster' }));
      const leadS = 3;
      const content = `sleep ${leadS}\nfor ((i = 0; i < ${lines}; i++)); do echo "$i $EPOCHREALTIME"; sleep ${intervalMs / 1000}; done\n`;
      const hook = await scriptWebhook(api, { name: 'cluster-fanout', content, serverId: agentServer.id });
      const signed = signedCall(hook.token, hook.hmacSecret);
      const viewerKey = (await api.post('/api/v1/api-keys', { name: 'cluster-viewers', role: 'viewer' })).key;
      const fanout = {};
      for (const layout of ['one node', 'three nodes']) {
        const procs = [0, 1, 2].map((i) => new ViewerProcess(`viewers-${layout === 'one node' ? 'A' : 'ABC'[i]}`));
        viewerProcs.push(...procs);
        const per = Math.ceil(nViewers / 3);
        const conn = await Promise.all(procs.map((p, i) => p.request({ cmd: 'connect', url: (layout === 'one node' ? A : nodes[i]).url, apiKeys: [viewerKey], n: Math.max(0, Math.min(per, nViewers - i * per)), concurrency: 50 }, 'connected', 300_000)));
        const connected = conn.reduce((n, c) => n + c.connected, 0);
        const res = await fetch(`${B.url}${TRIGGER_PATH}`, { method: 'POST', ...signed });
        const b = await res.json();
        if (res.status !== 202) throw new Error(`trigger answered ${res.status}`);
        const from = nowMs();
        const subs = await Promise.all(procs.map((p) => p.request({ cmd: 'subscribe', executionId: b.executionId }, 'subscribed', 120_000)));
        const subscribed = subs.reduce((n, s) => n + s.ok, 0);
        await drain(db, (leadS + (lines * intervalMs) / 1000) * 1000 + 120_000, 200);
        ctx.windows.push([from, nowMs()]);
        const rows = await db.query(`SELECT seq, extract(epoch from created_at) * 1000 AS at FROM execution_output WHERE execution_id = $1 ORDER BY seq`, [b.executionId]);
        const createdAt = {};
        for (const row of rows) createdAt[row.seq] = Number(row.at);
        for (let i = 0; i < 100; i++) {
          const got = (await Promise.all(procs.map((p) => p.request({ cmd: 'progress' }, 'progress', 30_000)))).reduce((n, x) => n + x.received, 0);
          if (got >= rows.length * subscribed) break;
          await sleep(100);
        }
        const reps = await Promise.all(procs.map((p) => p.request({ cmd: 'report', createdAt, total: rows.length }, 'report', 120_000)));
        fanout[layout] = {
          connected,
          complete: reps.reduce((n, x) => n + x.complete, 0),
          gaps: reps.reduce((n, x) => n + x.gaps, 0),
          p50: Math.max(...reps.map((x) => x.fromStore.p50)),
          p99: Math.max(...reps.map((x) => x.fromStore.p99)),
        };
        ctx.log(`cluster: fan-out, viewers on ${layout}: ${fanout[layout].complete}/${connected} got all ${rows.length} chunks (gaps ${fanout[layout].gaps}); storage->viewer p50 ${fanout[layout].p50.toFixed(1)} ms p99 ${fanout[layout].p99.toFixed(1)} ms`);
        for (const p of procs) p.proc.child.connected && p.proc.child.send({ cmd: 'close' });
        await Promise.all(procs.map((p) => withTimeout(p.proc.exited, 15_000, 'viewers exit').catch(() => p.proc.stop('SIGKILL'))));
      }

      notes.push(
        'one machine with 2 cores runs all three nodes, PostgreSQL and the load: 3 nodes cannot be faster here; the point is that nothing gets worse and nothing is lost. The one-node baseline is node A of the same cluster with the agent and the trigger (or the viewers) on it: the path a single process takes (dispatch without the adapter)',
        `dispatch = trigger POST sent -> execution.start received by a protocol-level agent; trigger on B / agent on A goes: B commits the execution already claimed (the server is online) and hands its id over (a server-side event through the PostgreSQL adapter, a NOTIFY to every node); A, which holds the agent, takes the run, builds the start (a start carries secrets, so it never crosses the adapter) and sends it on its own socket; ${rounds} rounds each after ${WARMUP} warm-up, interleaved`,
        `acceptance: ${connections} connections for ${ctx.durationS} s on node A, then ${Math.ceil(connections / 3)} on each node at once; calls 202 per second; every run of the webhook drained before the next leg`,
        `fan-out: ${nViewers} viewers (3 processes) on one run writing ${lines} lines ${intervalMs} ms apart, agent on A, trigger on B; on other nodes the viewers get a notice through the adapter and read the chunks from PostgreSQL`,
      );
      const m = (xs) => median(xs);
      const figures = [
        figure({ name: 'dispatch p50, trigger on B / agent on A', unit: 'ms', ours: quantile(cross, 0.5), baseline: quantile(same, 0.5), baselineName: 'trigger and agent on A', better: 'lower', target: 1.5 }),
        figure({ name: 'dispatch p99, trigger on B / agent on A', unit: 'ms', ours: quantile(cross, 0.99), baseline: quantile(same, 0.99), baselineName: 'trigger and agent on A', better: 'lower' }),
        figure({ name: `dispatch p50, ${nAgents} agents spread, trigger on another node`, unit: 'ms', ours: quantile(anyNode, 0.5), baseline: quantile(ownNode, 0.5), baselineName: 'trigger on the agent’s node', better: 'lower', target: 1.5 }),
        figure({ name: 'trigger acceptance, 3 nodes', unit: 'calls/s', ours: m(acceptThree), baseline: m(acceptOne), baselineName: '1 node', better: 'higher', target: 0.8, roundsOurs: acceptThree, roundsBaseline: acceptOne }),
        figure({ name: `viewers with every chunk, spread over 3 nodes (of ${nViewers})`, unit: 'viewers', ours: fanout['three nodes'].complete, better: 'higher', targetAbs: nViewers }),
        figure({ name: 'fan-out storage -> viewer p99, viewers on 3 nodes', unit: 'ms', ours: fanout['three nodes'].p99, baseline: fanout['one node'].p99, baselineName: 'all on the agent’s node', better: 'lower' }),
      ];
      const memory = [...nodes.map((n) => n.proc), ...tracked].map((p) => {
        p.memory();
        return { process: p.name, pid: p.pid, peakRssMiB: Math.round(p.peak / MiB) };
      });
      return { figures, notes, memory };
    } finally {
      for (const p of viewerProcs) if (p.proc.running) await p.proc.stop('SIGKILL').catch(() => undefined);
      for (const f of fleets) await f.close().catch(() => undefined);
      for (const p of tracked) await p.stop?.().catch(() => undefined);
      for (const n of nodes) await n.stop().catch(() => undefined);
      await db.drop().catch((e) => ctx.log(`could not drop ${db.name}: ${e.message}`));
    }
  },
};
