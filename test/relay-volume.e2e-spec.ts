// 200 MiB of output through the real agent and control plane: complete, byte-identical, and with
// both processes' memory bounded (peak RSS well under the output size). Prints the figures.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type AgentProcess, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, run, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';

const MiB = 1024 * 1024;
const SIZE = Number(process.env.VOL_MIB ?? 200) * MiB;

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
let agent: AgentProcess;
const file = path.join(os.tmpdir(), `devpilot-e2e-volume-${randomBytes(6).toString('hex')}.bin`);

/** Peak resident set size of a process so far (VmHWM), in MiB. */
function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function sha256OfFile(f: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(f)) h.update(chunk as Buffer);
  return h.digest('hex');
}

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url });
  api = new Api(cp.url, cp.adminKey);
  const server = await createServer(api, 'volume');
  agent = await startAgent({ url: cp.url, token: server.agentToken });
  await waitFor('online', async () => (await api.get(`/api/v1/servers/${server.id}`)).body.status === 'online');
  (globalThis as { serverId?: string }).serverId = server.id;
});

afterAll(async () => {
  await agent?.stop();
  await cp?.stop();
  await db?.drop();
  await rm(file, { force: true });
});

/** Runs a script writing `size` random bytes; checks it byte for byte (streamed both ways); returns timings. */
async function moveBytes(size: number): Promise<{ runMs: number; readMs: number }> {
  const script = await createScript(api, `head -c ${size} /dev/urandom | tee '${file}'`, { maxOutputBytes: 256 * MiB, timeoutSeconds: 600 });
  const t0 = Date.now();
  const { executionId } = await run(api, script.id, (globalThis as { serverId?: string }).serverId!);
  const e = await waitForTerminal(api, executionId, 80_000);
  const runMs = Date.now() - t0;
  expect(e).toMatchObject({ status: 'succeeded', outputBytes: size, outputTruncated: false });
  // Read back streamed, hashing as it comes (the test does not hold it in memory either).
  const t1 = Date.now();
  const res = await fetch(`${cp.url}/api/v1/executions/${executionId}/output`, { headers: { authorization: `Bearer ${cp.adminKey}` } });
  expect(res.status).toBe(200);
  const h = createHash('sha256');
  let n = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    h.update(chunk);
    n += chunk.length;
  }
  const readMs = Date.now() - t1;
  expect(n).toBe(size);
  expect(h.digest('hex')).toBe(await sha256OfFile(file));
  return { runMs, readMs };
}

describe('volume', () => {
  it('moves 200 MiB byte-identical, with memory that does not grow with the output', async () => {
    const cpPid = cp.proc.child.pid!;
    const agentPid = agent.proc.child.pid!;
    const idle = { cp: peakRssMiB(cpPid), agent: peakRssMiB(agentPid) };
    // A warm-up of 40 MiB sets the working level (V8 heaps grow lazily under load) ...
    await moveBytes(40 * MiB);
    const warm = { cp: peakRssMiB(cpPid), agent: peakRssMiB(agentPid) };
    // ... then five times the output must not raise the peak by anything like the difference (160 MiB).
    const big = await moveBytes(SIZE);
    const peak = { cp: peakRssMiB(cpPid), agent: peakRssMiB(agentPid) };
    process.stdout.write(
      `${SIZE / MiB} MiB: trigger to terminal ${big.runMs} ms (${Math.round((SIZE / MiB / big.runMs) * 1000)} MiB/s), read back ${big.readMs} ms; ` +
        `peak RSS control plane idle ${idle.cp} / after 40 MiB ${warm.cp} / after ${SIZE / MiB} MiB ${peak.cp} MiB; ` +
        `agent ${idle.agent} / ${warm.agent} / ${peak.agent} MiB\n`,
    );
    expect(peak.cp - warm.cp).toBeLessThan(64);
    expect(peak.agent - warm.agent).toBeLessThan(64);
  });
});
