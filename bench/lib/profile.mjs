// Summarises V8 .cpuprofile files: the functions with the most self time, and time per package.
import { readFileSync } from 'node:fs';

/**
 * `windows`: [fromMs, toMs] on the monotonic clock (process.hrtime), which is the clock V8's
 * profile timestamps use; only samples inside a window count (the measured load, not start-up).
 * Percentages are of the busy (non-idle) time; `idlePct` says how much of the window was idle.
 */
export function summariseProfile(file, windows = [], top = 15) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const dt = new Map();
  let t = prof.startTime;
  const inWindow = (us) => windows.length === 0 || windows.some(([a, b]) => us / 1000 >= a && us / 1000 <= b);
  // timeDeltas[i] is the time before samples[i]; attribute it to that sample's node.
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i] ?? 0;
    if (inWindow(t)) dt.set(prof.samples[i], (dt.get(prof.samples[i]) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  let idle = 0;
  for (const [id, us] of dt) if (byId.get(id).callFrame.functionName === '(idle)') idle += us;
  const all = [...dt.values()].reduce((a, b) => a + b, 0) || 1;
  const total = all - idle || 1;
  const self = new Map();
  const pkgs = new Map();
  for (const [id, us] of dt) {
    const cf = byId.get(id).callFrame;
    if (cf.functionName === '(idle)') continue;
    const where = cf.url ? `${shortUrl(cf.url)}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + us);
    const pkg = packageOf(cf);
    pkgs.set(pkg, (pkgs.get(pkg) ?? 0) + us);
  }
  const pct = (us) => Math.round((1000 * us) / total) / 10;
  return {
    file,
    windowMs: Math.round(all / 1000),
    busyMs: Math.round(total / 1000),
    idlePct: Math.round((1000 * idle) / all) / 10,
    windowed: windows.length > 0,
    topSelf: [...self].sort((a, b) => b[1] - a[1]).slice(0, top).map(([frame, us]) => ({ frame, pct: pct(us) })),
    byPackage: [...pkgs].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([pkg, us]) => ({ pkg, pct: pct(us) })),
    byLayer: byLayer(pkgs, pct),
  };
}

/** Packages that make up each layer of a request; everything else is `other`. */
const LAYERS = {
  // What moving to another HTTP framework would replace (Express 5, its middleware, Nest's adapter).
  'Express and its middleware': ['express', 'router', 'body-parser', 'raw-body', 'serve-static', 'send', 'finalhandler', 'proxy-addr', 'forwarded', 'type-is', 'content-type', 'qs', 'on-finished', 'path-to-regexp', '@nestjs/platform-express', 'iconv-lite', 'media-typer', 'mime-types', 'mime-db', 'depd', 'accepts', 'negotiator', 'cookie', 'cookie-signature', 'etag', 'fresh', 'parseurl', 'encodeurl', 'escape-html', 'statuses', 'http-errors', 'content-disposition', 'vary', 'range-parser', 'merge-descriptors', 'setprototypeof', 'unpipe', 'bytes', 'destroy', 'ee-first', 'side-channel', 'side-channel-list', 'side-channel-map', 'side-channel-weakmap', 'object-inspect', 'call-bound', 'get-intrinsic', 'es-errors', 'function-bind', 'is-promise', 'once', 'debug', 'ms'],
  'Nest routing, pipes, validation': ['@nestjs/core', '@nestjs/common', 'class-validator', 'class-transformer', 'rxjs', 'validator', 'libphonenumber-js', 'tslib'],
  'request logs (pino)': ['pino', 'pino-http', 'nestjs-pino', 'pino-std-serializers', 'sonic-boom', 'fast-redact', '@pinojs/redact', 'safe-stable-stringify', 'quick-format-unescaped', 'fast-safe-stringify', 'thread-stream'],
  'database client': ['pg', 'pg-protocol', 'pg-pool', 'pg-types', 'pg-connection-string', 'postgres-array', 'postgres-bytea', 'postgres-date', 'postgres-interval', 'typeorm', 'reflect-metadata'],
  'Node HTTP and sockets': ['node:_http_server', 'node:_http_outgoing', 'node:_http_incoming', 'node:_http_common', 'node:net', 'node:stream', 'node:events', 'node:internal', 'node:buffer', 'node:crypto', 'node:timers', 'node:async_hooks', 'node:url', 'node:string_decoder', 'node:util'],
  'our control plane': ['(our control plane)'],
  'V8 (gc, native, compiler)': ['(gc)', '(program: native/V8)', '(native)'],
};
const LAYER_OF = new Map(Object.entries(LAYERS).flatMap(([layer, pkgs]) => pkgs.map((p) => [p, layer])));

function byLayer(pkgs, pct) {
  const layers = new Map();
  for (const [pkg, us] of pkgs) {
    if (pkg === '(idle)') continue;
    const layer = LAYER_OF.get(pkg) ?? 'other';
    layers.set(layer, (layers.get(layer) ?? 0) + us);
  }
  return [...layers].sort((a, b) => b[1] - a[1]).map(([layer, us]) => ({ layer, pct: pct(us) }));
}

function shortUrl(url) {
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const d = url.indexOf('/dist/');
  if (d >= 0) return url.slice(d + 1);
  return url.replace(/^file:\/\//, '');
}

function packageOf(cf) {
  const url = cf.url;
  if (!url) return cf.functionName === '(garbage collector)' ? '(gc)' : cf.functionName === '(idle)' ? '(idle)' : cf.functionName === '(program)' ? '(program: native/V8)' : '(native)';
  const m = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/g);
  if (m) return m[m.length - 1].replace('node_modules/', '');
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  if (url.includes('/dist/apps/')) return '(our control plane)';
  if (url.includes('/dist/agent/')) return '(our agent bundle)';
  return url;
}
