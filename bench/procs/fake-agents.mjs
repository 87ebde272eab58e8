// Protocol-level agents: many socket.io connections to /agent, driven by the parent over IPC.
// Each says hello, accepts every execution.start at once (noting when it arrived on the shared
// monotonic clock) and reports it finished with no output.
import { io } from 'socket.io-client';

const sockets = [];
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const send = (m) => process.send?.(m);

function connectOne(url, token) {
  return new Promise((resolve) => {
    const socket = io(`${url}/agent`, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      timeout: 60_000,
      // The token on the upgrade request (protocol 3); protocol 3 agents also report spawns, which these never run.
      extraHeaders: { authorization: `Bearer ${token}` },
      auth: { protocolVersion: 3, agentVersion: 'bench', hostname: 'bench', platform: 'linux' },
    });
    let settled = false;
    const done = (ok, why) => {
      if (settled) return;
      settled = true;
      resolve({ ok, why });
    };
    socket.on('connect', () => {
      socket.timeout(60_000).emit('agent.hello', { running: [], finished: [] }, (err) => done(!err, err?.message));
    });
    socket.on('connect_error', (e) => done(false, e.message));
    socket.on('execution.start', (cmd, ack) => {
      const t = nowMs();
      ack?.({ accepted: true });
      send({ type: 'start', executionId: cmd.executionId, t });
      socket.emit(
        'execution.finished',
        { executionId: cmd.executionId, exitCode: 0, signal: null, timedOut: false, cancelled: false, lastSeq: -1, outputBytes: 0, truncated: false, error: null },
        () => undefined,
      );
    });
    socket.on('execution.cancel', (_cmd, ack) => ack?.({ ok: true }));
    sockets.push(socket);
  });
}

async function connectAll(url, tokens, concurrency) {
  const t0 = performance.now();
  let next = 0;
  let connected = 0;
  const failures = {};
  let lastReport = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, tokens.length) }, async () => {
      while (next < tokens.length) {
        const token = tokens[next++];
        const r = await connectOne(url, token);
        if (r.ok) connected++;
        else failures[r.why] = (failures[r.why] ?? 0) + 1;
        if (performance.now() - lastReport > 2000) {
          lastReport = performance.now();
          send({ type: 'progress', connected, failed: Object.values(failures).reduce((a, b) => a + b, 0) });
        }
      }
    }),
  );
  return { connected, failures, seconds: (performance.now() - t0) / 1000 };
}

process.on('message', async (m) => {
  if (m.cmd === 'connect') {
    const r = await connectAll(m.url, m.tokens, m.concurrency ?? 100);
    send({ type: 'connected', ...r, stillConnected: sockets.filter((s) => s.connected).length });
  } else if (m.cmd === 'count') {
    send({ type: 'count', stillConnected: sockets.filter((s) => s.connected).length });
  } else if (m.cmd === 'close') {
    for (const s of sockets) s.close();
    setTimeout(() => process.exit(0), 200);
  }
});
send({ type: 'ready' });
