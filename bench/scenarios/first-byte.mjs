// 2. Trigger to first byte: one caller, sequential; POST sent -> a subscribed viewer has byte 1.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { figure } from '../lib/report.mjs';
import { openStack } from '../lib/session.mjs';
import { signedCall } from '../lib/sign.mjs';
import { createServer, scriptWebhook, TRIGGER_PATH } from '../lib/stack.mjs';
import { connectViewer, Watcher } from '../lib/viewer.mjs';
import { envInt, nowMs, quantile, sleep, withTimeout } from '../lib/util.mjs';

const SCRIPT = 'echo hi\n';
const ROUND_GAP_MS = 250;

/** The baseline: spawn the same script the way the agent runs it (its interpreter on a file) and read byte 1. */
function spawnFirstByte(file) {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    let first = null;
    // In the environment the agent gives a script (runner.ts scriptEnv): LANG makes bash load its locale.
    const child = spawn('bash', [file], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, HOME: os.homedir(), LANG: 'C.UTF-8' } });
    child.stdout.once('data', () => {
      first = nowMs() - t0;
    });
    child.once('error', reject);
    child.once('close', () => (first === null ? reject(new Error('no output')) : resolve(first)));
  });
}

export default {
  name: 'first-byte',
  title: 'Trigger to first byte (one caller, sequential, `echo hi`)',
  async run(ctx) {
    const n = envInt('BENCH_FIRST_BYTE_ROUNDS', 100);
    const warmup = 5;
    const notes = [];
    const stack = await openStack(ctx, 'first-byte');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-bench-fb-'));
    let viewer;
    try {
      const file = path.join(dir, 'script.sh');
      await writeFile(file, SCRIPT);
      const server = await createServer(stack.api, 'bench-fb');
      await stack.agent(server, { concurrency: ctx.agentConcurrency });
      const hook = await scriptWebhook(stack.api, { name: 'first-byte', content: SCRIPT, serverId: server.id });
      const call = signedCall(hook.token, hook.hmacSecret);
      viewer = await connectViewer(stack.cp.url, stack.cp.adminKey);

      // One round: subscribe as soon as the id is known, from whichever comes first: the
      // workspace's `execution.created` or the 202. The subscription replays stored output, so a
      // byte stored before the subscription is still seen (later, by the subscribe round trip).
      let current = null;
      const watcher = new Watcher(viewer, {
        onChunk: (e) => current?.output(e),
        onStatus: (e) => current?.status(e),
        onError: (e) => notes.push(`subscribe failed: ${e.message}`),
      });
      viewer.on('execution.created', (e) => current?.know(e.executionId, 'created'));
      const oneRound = async () => {
        let resolveFirst;
        let resolveEnd;
        const first = new Promise((r) => (resolveFirst = r));
        const ended = new Promise((r) => (resolveEnd = r));
        const round = { id: null, via: null, t0: 0 };
        current = {
          know(id, via) {
            if (round.id) return;
            round.id = id;
            round.via = via;
            watcher.watch(id);
          },
          output(e) {
            if (e.executionId === round.id && e.data?.byteLength > 0) resolveFirst(nowMs() - round.t0);
          },
          status(e) {
            if (e.executionId === round.id && ['succeeded', 'failed', 'timed_out', 'cancelled', 'lost', 'undeliverable'].includes(e.status)) resolveEnd();
          },
        };
        round.t0 = nowMs();
        const res = await fetch(`${stack.cp.url}${TRIGGER_PATH}`, { method: 'POST', ...call });
        const body = await res.json();
        if (res.status !== 202) throw new Error(`trigger answered ${res.status} ${JSON.stringify(body)}`);
        current.know(body.executionId, '202');
        const ms = await withTimeout(first, 10_000, 'the first byte at the viewer').catch(() => NaN);
        if (Number.isNaN(ms)) {
          const [row] = await stack.db.query('SELECT status, output_bytes FROM execution WHERE id = $1', [round.id]);
          notes.push(`execution ${round.id}: no output reached the viewer within 10 s (execution ${row?.status}, ${row?.output_bytes} bytes stored)`);
        }
        await withTimeout(ended, 10_000, 'the terminal status').catch(() => notes.push(`execution ${round.id}: the viewer had no terminal status 10 s after the call`));
        watcher.forget(round.id);
        return { ms, via: round.via };
      };

      const ours = [];
      const base = [];
      const via = { created: 0, '202': 0 };
      let missed = 0;
      for (let i = 0; i < warmup + n; i++) {
        const o = await ctx.window(oneRound);
        const b = await spawnFirstByte(file);
        // One viewer may subscribe about 5 times a second (the feed's limit): pace the rounds.
        await sleep(ROUND_GAP_MS);
        if (i < warmup) continue;
        if (Number.isNaN(o.ms)) {
          missed++;
          continue;
        }
        ours.push(o.ms);
        via[o.via]++;
        base.push(b);
      }
      ctx.log(`first-byte: ours p50 ${quantile(ours, 0.5).toFixed(2)} ms p99 ${quantile(ours, 0.99).toFixed(2)} ms; spawn p50 ${quantile(base, 0.5).toFixed(2)} ms p99 ${quantile(base, 0.99).toFixed(2)} ms`);
      notes.push(`${n} sequential rounds (after ${warmup} warm-up); the viewer learned the execution id from execution.created ${via.created} times and from the 202 ${via['202']} times, then subscribed (stored output is replayed, so nothing is missed; a byte stored before the subscription counts when the replay arrives)`);
      notes.push(`rounds are ${ROUND_GAP_MS} ms apart (the feed allows a viewer about 5 subscribes a second)`);
      notes.push('the baseline spawns `bash <file>` with the same content, as the agent runs it (same environment: PATH, HOME, LANG=C.UTF-8), in the harness process');
      const figures = [
        figure({ name: 'rounds where the viewer never got the first byte', unit: 'rounds', ours: missed, better: 'lower', targetAbs: 0 }),
        figure({ name: `first byte p50 (${n} rounds)`, unit: 'ms', ours: quantile(ours, 0.5), baseline: quantile(base, 0.5), baselineName: 'child_process.spawn', better: 'lower', target: 2.0 }),
        figure({ name: `first byte p99 (${n} rounds)`, unit: 'ms', ours: quantile(ours, 0.99), baseline: quantile(base, 0.99), baselineName: 'child_process.spawn', better: 'lower', target: 3.0 }),
      ];
      return { figures, notes, memory: await stack.close() };
    } finally {
      viewer?.close();
      await stack.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
