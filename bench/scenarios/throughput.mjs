// 4. Output throughput: one script writes N MiB; until the last byte is stored and seen by a viewer.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { figure } from '../lib/report.mjs';
import { openStack } from '../lib/session.mjs';
import { signedCall } from '../lib/sign.mjs';
import { createServer, scriptWebhook, TRIGGER_PATH } from '../lib/stack.mjs';
import { connectViewer, Watcher } from '../lib/viewer.mjs';
import { TERMINAL } from '../lib/executions.mjs';
import { envInt, median, MiB, sleep } from '../lib/util.mjs';

// The floor inserts the very chunk sizes our run stored (read back from execution_output after
// each round: the agent sends what the pipe gave while nothing was in flight, and merges what
// arrives during an ack into chunks of up to 256 KiB), one chunk per INSERT, and again 16 per INSERT.
const MAX_BATCH = 16;

/** Incompressible bytes in a file (zeros would let PostgreSQL's TOAST compression cheat). */
async function randomFile(file, bytes) {
  const fh = await open(file, 'w');
  for (let done = 0; done < bytes; done += MiB) await fh.write(randomBytes(Math.min(MiB, bytes - done)));
  await fh.close();
  const hash = createHash('sha256');
  for await (const b of createReadStream(file)) hash.update(b);
  return hash.digest('hex');
}

/** The storage floor: the same bytes into a table shaped like execution_output, batch by batch, one connection. */
async function storageFloor(db, file, perBatch, sizes) {
  const client = await db.pool.connect();
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS bench_output (
      execution_id uuid NOT NULL, seq integer NOT NULL, stream text NOT NULL, data bytea NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (execution_id, seq))`);
    const id = randomUUID();
    let seq = 0;
    let batch = [];
    const flush = async () => {
      if (!batch.length) return;
      const params = [id];
      const values = batch.map((data) => {
        params.push(seq++, 'stdout', data);
        const n = params.length;
        return `($1, $${n - 2}, $${n - 1}, $${n})`;
      });
      await client.query(`INSERT INTO bench_output (execution_id, seq, stream, data) VALUES ${values.join(', ')} ON CONFLICT DO NOTHING`, params);
      batch = [];
    };
    const fh = await open(file, 'r');
    try {
      const t0 = performance.now();
      for (const n of sizes) {
        const b = Buffer.allocUnsafe(n);
        await fh.read(b, 0, n);
        batch.push(b);
        if (batch.length === perBatch) await flush();
      }
      await flush();
      return (performance.now() - t0) / 1000;
    } finally {
      await fh.close();
    }
  } finally {
    client.release();
  }
}

export default {
  name: 'throughput',
  title: 'Output throughput (one script writes N MiB of random bytes; stored and seen by a viewer)',
  async run(ctx) {
    const mib = envInt('BENCH_THROUGHPUT_MIB', 256);
    const rounds = envInt('BENCH_THROUGHPUT_ROUNDS', ctx.rounds);
    const size = mib * MiB;
    // BENCH_THROUGHPUT_VIEWER=0: no viewer subscribes (to see what the live feed costs the storage path).
    const withViewer = process.env.BENCH_THROUGHPUT_VIEWER !== '0';
    const notes = [];
    const dir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-bench-tp-'));
    const stack = await openStack(ctx, 'throughput');
    let viewer;
    try {
      const file = path.join(dir, 'payload.bin');
      const expected = await randomFile(file, size);
      // Scripts run as devpilot-run when the agent can switch users: the file must be readable by it.
      await chmod(dir, 0o711);
      await chmod(file, 0o644);
      const server = await createServer(stack.api, 'bench-tp');
      await stack.agent(server, { concurrency: ctx.agentConcurrency });
      const content = `cat ${file}\n`;
      const hook = await scriptWebhook(stack.api, { name: 'throughput', content, serverId: server.id, maxOutputBytes: size + MiB });
      const call = signedCall(hook.token, hook.hmacSecret);
      viewer = await connectViewer(stack.cp.url, stack.cp.adminKey);

      let current = null;
      const watcher = new Watcher(viewer, { onChunk: (e) => current?.output(e), onError: (e) => notes.push(`subscribe failed: ${e.message}`) });
      viewer.on('execution.created', (e) => current?.know(e.executionId));
      const ourRound = async () => {
        let done;
        const finished = new Promise((r) => (done = r));
        const st = { id: null, bytes: 0, hash: createHash('sha256') };
        current = {
          know(id) {
            if (st.id) return;
            st.id = id;
            if (withViewer) watcher.watch(id);
          },
          output(e) {
            if (e.executionId !== st.id) return;
            st.bytes += e.data.byteLength;
            st.hash.update(e.data);
            if (st.bytes >= size) done(performance.now());
          },
        };
        const t0 = performance.now();
        const res = await fetch(`${stack.cp.url}${TRIGGER_PATH}`, { method: 'POST', ...call });
        const body = await res.json();
        if (res.status !== 202) throw new Error(`trigger answered ${res.status}`);
        current.know(body.executionId);
        // Stored: the execution is terminal only once the control plane holds every chunk.
        let storedAt = null;
        let lastBytes = -1;
        let lastProgress = performance.now();
        const deadline = t0 + 600_000;
        let seenAt = null;
        finished.then((t) => (seenAt = t));
        while (performance.now() < deadline) {
          if (storedAt === null) {
            const [e] = await stack.db.query('SELECT status, output_bytes FROM execution WHERE id = $1', [st.id]);
            if (TERMINAL.includes(e.status)) {
              storedAt = performance.now();
              if (e.status !== 'succeeded' || Number(e.output_bytes) !== size) notes.push(`execution ${st.id} ended ${e.status} with ${e.output_bytes} bytes stored`);
            }
          }
          if (st.bytes !== lastBytes) {
            lastBytes = st.bytes;
            lastProgress = performance.now();
          }
          if (storedAt !== null && (seenAt !== null || !withViewer)) break;
          if (storedAt !== null && performance.now() - lastProgress > 10_000) break;
          await sleep(50);
        }
        const ok = seenAt !== null && st.hash.digest('hex') === expected;
        if (seenAt === null && withViewer) notes.push(`execution ${st.id}: the viewer received ${st.bytes} of ${size} bytes and nothing more for 10 s after all was stored (chunks missing: see gaps)`);
        else if (!ok) notes.push(`execution ${st.id}: the viewer's bytes differ from the script's`);
        watcher.forget(st.id);
        const seconds = seenAt === null ? NaN : (seenAt - t0) / 1000;
        const storedS = storedAt === null ? NaN : (storedAt - t0) / 1000;
        const sizes = (await stack.db.query('SELECT octet_length(data) AS n FROM execution_output WHERE execution_id = $1 ORDER BY seq', [st.id])).map((r) => Number(r.n));
        return { seconds, mibPerS: mib / seconds, storedS, storedMibPerS: mib / storedS, ok, sizes };
      };

      let chunkNote = '';
      const ours = [];
      const floor = [];
      const floorBatched = [];
      for (let i = 0; i < rounds; i++) {
        const o = await ctx.window(ourRound);
        ours.push(o);
        const f = await storageFloor(stack.db, file, 1, o.sizes);
        floor.push({ seconds: f, mibPerS: mib / f });
        const f16 = await storageFloor(stack.db, file, MAX_BATCH, o.sizes);
        chunkNote = `${o.sizes.length} chunks, ${Math.round(size / o.sizes.length / 1024)} KiB on average`;
        floorBatched.push({ seconds: f16, mibPerS: mib / f16 });
        ctx.log(`throughput round ${i + 1}: stored ${o.storedMibPerS.toFixed(1)} MiB/s (${o.storedS.toFixed(2)} s), seen by the viewer ${o.mibPerS.toFixed(1)} MiB/s (${o.seconds.toFixed(2)} s, bytes identical: ${o.ok}); storage floor ${(mib / f).toFixed(1)} MiB/s as the agent batches, ${(mib / f16).toFixed(1)} MiB/s with ${MAX_BATCH} chunks per INSERT`);
      }
      if (watcher.resubscribes || watcher.gaps) notes.push(`the feed told the viewer to resubscribe ${watcher.resubscribes} times; seq gaps seen by the viewer: ${watcher.gaps}; duplicates dropped: ${watcher.duplicates}`);
      const memory = stack.memory();
      const rss = (name) => memory.find((m) => m.process === name)?.peakRssMiB;
      notes.push(`${mib} MiB of random bytes via \`cat\`; the floor inserts the same bytes into a table shaped like execution_output in the chunk sizes our run stored (${chunkNote}), one chunk per INSERT (also shown: ${MAX_BATCH} per INSERT), sequentially on one connection, in the same database;${withViewer ? '' : ' no viewer (BENCH_THROUGHPUT_VIEWER=0)'} "stored" = the execution is terminal (the control plane holds every chunk)`);
      const figures = [
        figure({ name: `output stored (${mib} MiB)`, unit: 'MiB/s', ours: median(ours.map((x) => x.storedMibPerS)), baseline: median(floor.map((x) => x.mibPerS)), baselineName: 'insert floor, 1 chunk/INSERT', better: 'higher', roundsOurs: ours.map((x) => x.storedMibPerS) }),
        figure({ name: `output stored vs ${MAX_BATCH}-chunk INSERTs (${mib} MiB)`, unit: 'MiB/s', ours: median(ours.map((x) => x.storedMibPerS)), baseline: median(floorBatched.map((x) => x.mibPerS)), baselineName: `insert floor, ${MAX_BATCH} chunks/INSERT`, better: 'higher', roundsBaseline: floorBatched.map((x) => x.mibPerS) }),
        figure({ name: `output stored and seen by a viewer (${mib} MiB)`, unit: 'MiB/s', ours: median(ours.map((x) => x.mibPerS)), baseline: median(floor.map((x) => x.mibPerS)), baselineName: 'insert floor, 1 chunk/INSERT', better: 'higher', target: 0.7, roundsOurs: ours.map((x) => x.mibPerS), roundsBaseline: floor.map((x) => x.mibPerS) }),
        figure({ name: 'rounds where the viewer got every byte, identical', unit: 'rounds', ours: ours.filter((x) => x.ok).length, better: 'higher', targetAbs: rounds }),
        figure({ name: 'control plane peak RSS', unit: 'MiB', ours: rss('cp'), better: 'lower', targetAbs: 256 }),
        figure({ name: 'agent peak RSS', unit: 'MiB', ours: rss('agent'), better: 'lower', targetAbs: 256 }),
      ];
      return { figures, notes, memory: await stack.close() };
    } finally {
      viewer?.close();
      await stack.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
