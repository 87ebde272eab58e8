// Small helpers shared by the bench: processes, ports, waiting, statistics, memory.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** An integer from the environment, or the default. */
export function envInt(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got "${v}"`);
  return n;
}

/** A free TCP port on loopback. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `check` until it returns something other than undefined/false; throws after `timeoutMs`. */
export async function waitFor(what, check, timeoutMs = 30_000, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message ?? last}` : ''}`);
}

/** Rejects with a clear message when `promise` takes longer than `ms`. */
export function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

/** Peak (VmHWM) and current (VmRSS) resident memory of a process, in bytes; null once it is gone. */
export function memoryOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN) * 1024;
    return { peak: kb('VmHWM'), rss: kb('VmRSS') };
  } catch {
    return null;
  }
}

const LOG_KEEP = 64 * 1024;

/** Every process the bench started and that still runs: stopped on Ctrl-C or a crash. */
export const liveProcesses = new Set();

/** A child process we started: its last output kept (bounded) for error messages, stopped by its pid. */
export class ManagedProcess {
  constructor(name, cmd, args, opts = {}) {
    this.name = name;
    this.tail = '';
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe', ...(opts.ipc ? ['ipc'] : [])], env: opts.env, cwd: opts.cwd });
    const keep = (d) => {
      this.tail = (this.tail + d.toString('utf8')).slice(-LOG_KEEP);
      opts.onOutput?.(d);
    };
    this.child.stdout.on('data', keep);
    this.child.stderr.on('data', keep);
    liveProcesses.add(this);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        liveProcesses.delete(this);
        resolve({ code, signal });
      }),
    );
    this.child.once('error', (e) => {
      this.tail += `\nspawn error: ${e.message}`;
    });
    this.peak = 0;
  }

  get pid() {
    return this.child.pid;
  }

  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Reads the kernel's high-water mark now (kept, so it survives the exit). */
  memory() {
    const m = memoryOf(this.pid);
    if (m) this.peak = Math.max(this.peak, m.peak);
    return m;
  }

  /** SIGTERM (by default), SIGKILL after `graceMs`; waits for the exit. */
  async stop(signal = 'SIGTERM', graceMs = 10_000) {
    this.memory();
    if (!this.running) return this.exited;
    this.child.kill(signal);
    const timer = setTimeout(() => this.running && this.child.kill('SIGKILL'), graceMs);
    const r = await this.exited;
    clearTimeout(timer);
    return r;
  }
}

// ---- statistics ----

export function quantile(values, q) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const i = Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1));
  return v[i];
}
export const median = (values) => {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
export const sum = (values) => values.reduce((a, b) => a + b, 0);

/** Nanosecond monotonic clock as a millisecond float; comparable across processes of this machine. */
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

export const MiB = 1024 * 1024;

const CLOCK_TICKS_MS = 1000 / 100; // USER_HZ is 100 on Linux

/**
 * CPU time (ms, user + system) used so far, from /proc: of each named pid (`self`), of the
 * children it reaped (`children`: a script's CPU counts for its agent once it ended), and of every
 * process whose name starts with `postgres` (the server and its backends).
 */
export function cpuSnapshot(pids) {
  const read = (pid) => {
    try {
      const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
      return { comm: raw.slice(raw.indexOf('(') + 1, raw.lastIndexOf(')')), self: (+f[11] + +f[12]) * CLOCK_TICKS_MS, children: (+f[13] + +f[14]) * CLOCK_TICKS_MS };
    } catch {
      return null;
    }
  };
  const out = { postgres: 0 };
  for (const [name, pid] of Object.entries(pids)) out[name] = read(pid) ?? { self: 0, children: 0 };
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const p = read(pid);
    if (p?.comm.startsWith('postgres')) out.postgres += p.self;
  }
  return out;
}

/**
 * A full garbage collection in a Node process started with `--inspect=127.0.0.1:<port>` (over the
 * inspector protocol), so that an RSS taken right after holds what is live rather than whatever
 * garbage the last collection left. Resolves once it is done.
 */
export async function collectGarbage(inspectPort) {
  const { WebSocket } = await import('ws');
  const [target] = await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json();
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  try {
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    await withTimeout(
      new Promise((resolve) => {
        ws.on('message', (m) => JSON.parse(String(m)).id === 1 && resolve());
        ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
      }),
      30_000,
      'a garbage collection over the inspector',
    );
  } finally {
    ws.close();
  }
}
