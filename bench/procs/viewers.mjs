// Many dashboard viewers in one process, driven by the parent over IPC. Each follows an execution
// like a well-behaved client (in seq order, duplicates dropped, resubscribe honoured) and notes the
// wall-clock time each chunk arrived.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { io } from 'socket.io-client';

const MAX_SEQ = 100_000;
const viewers = [];
const wallMs = () => performance.timeOrigin + performance.now();
const send = (m) => process.send?.(m);
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();

/** Text of each seq as received by someone (the content is the same for every viewer). */
const content = new Map();

/** Output bytes: base64 text (viewers of protocol 4, one frame per message) or binary (an attachment frame). */
const bytesOf = (data) => (typeof data === 'string' ? Buffer.from(data, 'base64') : Buffer.from(data));

/** `protocolVersion` null: a viewer that names none (binary output, as before protocol 4). */
function makeViewer(url, apiKey, protocolVersion) {
  return new Promise((resolve) => {
    const auth = protocolVersion === null ? {} : { protocolVersion };
    const socket = io(`${url}/dashboard`, { path: '/dashboard-io/', auth, extraHeaders: { authorization: `Bearer ${apiKey}` }, transports: ['websocket'], forceNew: true, reconnection: false, timeout: 60_000 });
    const v = { socket, executionId: null, last: -1, recv: null, count: 0, gaps: 0, dups: 0, resubscribes: 0, subscribedAt: 0, errors: 0 };
    socket.on('execution.output', (e) => {
      if (e.executionId !== v.executionId) return;
      const t = wallMs();
      if (e.seq <= v.last) return void v.dups++;
      if (e.seq !== v.last + 1) v.gaps++;
      v.last = e.seq;
      if (e.seq < MAX_SEQ) v.recv[e.seq] = t;
      v.count++;
      if (!content.has(e.seq)) content.set(e.seq, bytesOf(e.data).toString('utf8'));
    });
    socket.on('execution.resubscribe', (e) => {
      if (e.executionId !== v.executionId) return;
      v.resubscribes++;
      socket.timeout(30_000).emit('execution.subscribe', { executionId: v.executionId, afterSeq: v.last }, (err, r) => {
        if (err || !r?.ok) v.errors++;
      });
    });
    socket.once('connect', () => resolve({ ok: true, v }));
    socket.once('connect_error', (e) => resolve({ ok: false, why: e.message }));
  });
}

async function connectAll(url, apiKeys, n, concurrency, protocolVersion) {
  const t0 = performance.now();
  let next = 0;
  const failures = {};
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) {
        const key = apiKeys[next++ % apiKeys.length];
        const r = await makeViewer(url, key, protocolVersion);
        if (r.ok) viewers.push(r.v);
        else failures[r.why] = (failures[r.why] ?? 0) + 1;
      }
    }),
  );
  return { connected: viewers.length, failures, seconds: (performance.now() - t0) / 1000 };
}

async function subscribeAll(executionId) {
  content.clear();
  const t0 = performance.now();
  let ok = 0;
  const failures = {};
  await Promise.all(
    viewers.map(async (v) => {
      Object.assign(v, { executionId, last: -1, recv: new Float64Array(Math.min(MAX_SEQ, 20_000)).fill(NaN), count: 0, gaps: 0, dups: 0, resubscribes: 0, errors: 0 });
      v.subscribedAt = wallMs();
      try {
        const r = await v.socket.timeout(60_000).emitWithAck('execution.subscribe', { executionId, afterSeq: -1 });
        if (r?.ok) ok++;
        else failures[r?.error?.code ?? 'refused'] = (failures[r?.error?.code ?? 'refused'] ?? 0) + 1;
      } catch (e) {
        failures[e.message] = (failures[e.message] ?? 0) + 1;
      }
      v.subscribedAt = wallMs();
    }),
  );
  return { ok, failures, seconds: (performance.now() - t0) / 1000, allSubscribedAt: wallMs() };
}

const quantile = (arr, q) => {
  if (!arr.length) return NaN;
  arr.sort((a, b) => a - b);
  return arr[Math.min(arr.length - 1, Math.max(0, Math.ceil(q * arr.length) - 1))];
};

/** Delays storage -> viewer (created_at per seq from the parent) and script write -> viewer (the line's timestamp). */
function report(createdAt, total) {
  const fromStore = [];
  const fromScript = [];
  let complete = 0;
  let backlog = 0;
  const lineTs = new Map();
  for (const [seq, text] of content) {
    lineTs.set(seq, text.split('\n').filter(Boolean).map((l) => Number(l.split(' ')[1]) * 1000).filter(Number.isFinite));
  }
  for (const v of viewers) {
    if (v.count === total && v.last === total - 1) complete++;
    for (let seq = 0; seq < Math.min(total, v.recv.length); seq++) {
      const t = v.recv[seq];
      const c = createdAt[seq];
      if (!Number.isFinite(t) || c === undefined) continue;
      // Stored before this viewer's subscription was acked: it came as backlog, not live.
      if (c < v.subscribedAt) {
        backlog++;
        continue;
      }
      fromStore.push(t - c);
      for (const ts of lineTs.get(seq) ?? []) fromScript.push(t - ts);
    }
  }
  const stat = (a) => ({ n: a.length, p50: quantile(a, 0.5), p99: quantile(a, 0.99), max: a.length ? a[a.length - 1] : NaN });
  return {
    viewers: viewers.length,
    complete,
    received: viewers.reduce((n, v) => n + v.count, 0),
    gaps: viewers.reduce((n, v) => n + v.gaps, 0),
    dups: viewers.reduce((n, v) => n + v.dups, 0),
    resubscribes: viewers.reduce((n, v) => n + v.resubscribes, 0),
    errors: viewers.reduce((n, v) => n + v.errors, 0),
    backlog,
    fromStore: stat(fromStore),
    fromScript: stat(fromScript),
    loopLagP99Ms: lag.percentile(99) / 1e6,
  };
}

process.on('message', async (m) => {
  if (m.cmd === 'connect') send({ type: 'connected', ...(await connectAll(m.url, m.apiKeys, m.n, m.concurrency ?? 50, m.protocolVersion === undefined ? 4 : m.protocolVersion)) });
  else if (m.cmd === 'subscribe') {
    lag.reset();
    send({ type: 'subscribed', ...(await subscribeAll(m.executionId)) });
  } else if (m.cmd === 'progress') send({ type: 'progress', received: viewers.reduce((n, v) => n + v.count, 0) });
  else if (m.cmd === 'report') send({ type: 'report', ...report(m.createdAt, m.total) });
  else if (m.cmd === 'close') {
    for (const v of viewers) v.socket.close();
    setTimeout(() => process.exit(0), 200);
  }
});
send({ type: 'ready' });
