// Parent side of bench/procs/fake-agents.mjs: a few processes holding many agent connections.
import path from 'node:path';
import { BENCH_DIR } from './paths.mjs';
import { ManagedProcess, withTimeout } from './util.mjs';

export class FakeAgentFleet {
  constructor(label, processes, log) {
    this.log = log;
    this.starts = new Map();
    this.waiters = new Map();
    this.procs = Array.from({ length: processes }, (_, i) => {
      const p = new ManagedProcess(`${label}-${i}`, process.execPath, ['--max-old-space-size=4096', path.join(BENCH_DIR, 'procs/fake-agents.mjs')], { env: { PATH: process.env.PATH }, ipc: true });
      p.child.on('message', (m) => this.onMessage(p, m));
      return p;
    });
  }

  onMessage(p, m) {
    if (m.type === 'start') {
      this.starts.set(m.executionId, m.t);
      this.waiters.get(m.executionId)?.(m.t);
    } else if (m.type === 'progress') {
      p.progress = m;
    } else p.pending?.(m);
  }

  request(p, msg, type, timeoutMs) {
    return withTimeout(
      new Promise((resolve) => {
        p.pending = (m) => m.type === type && resolve(m);
        p.child.send(msg);
      }),
      timeoutMs,
      `${p.name}: ${msg.cmd}`,
    );
  }

  /** Connects `tokens` split over the processes; resolves with the totals. */
  async connect(url, tokens, { concurrency = 100, timeoutMs = 300_000 } = {}) {
    const per = Math.ceil(tokens.length / this.procs.length);
    const timer = setInterval(() => {
      const c = this.procs.reduce((n, p) => n + (p.progress?.connected ?? 0), 0);
      const f = this.procs.reduce((n, p) => n + (p.progress?.failed ?? 0), 0);
      if (c || f) this.log(`  agents connecting: ${c} connected, ${f} failed`);
    }, 10_000);
    try {
      const results = await Promise.all(
        this.procs.map((p, i) => {
          const mine = tokens.slice(i * per, (i + 1) * per);
          p.progress = null;
          return mine.length ? this.request(p, { cmd: 'connect', url, tokens: mine, concurrency: Math.ceil(concurrency / this.procs.length) }, 'connected', timeoutMs) : { connected: 0, failures: {}, seconds: 0 };
        }),
      );
      const failures = {};
      for (const r of results) for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v;
      return { connected: results.reduce((n, r) => n + r.connected, 0), failures, seconds: Math.max(...results.map((r) => r.seconds)) };
    } finally {
      clearInterval(timer);
    }
  }

  async stillConnected() {
    const r = await Promise.all(this.procs.map((p) => this.request(p, { cmd: 'count' }, 'count', 30_000)));
    return r.reduce((n, x) => n + x.stillConnected, 0);
  }

  /** Resolves with the monotonic time (ms) at which a fake agent received execution.start for `id`. */
  startOf(executionId, timeoutMs = 10_000) {
    if (this.starts.has(executionId)) return Promise.resolve(this.starts.get(executionId));
    return withTimeout(new Promise((resolve) => this.waiters.set(executionId, resolve)), timeoutMs, `execution.start of ${executionId}`).finally(() => this.waiters.delete(executionId));
  }

  async close() {
    for (const p of this.procs) {
      p.memory();
      if (p.running) p.child.send({ cmd: 'close' });
    }
    await Promise.all(this.procs.map((p) => withTimeout(p.exited, 15_000, 'fake agents exit').catch(() => p.stop('SIGKILL'))));
  }
}
