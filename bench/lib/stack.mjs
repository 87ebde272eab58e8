// Starting our side: the built control plane and real agents, and setting up servers, scripts, webhooks.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AGENT_BUNDLE, CONTROL_PLANE_MAIN, PROFILE_DIR, ROOT } from './paths.mjs';
import { freePort, ManagedProcess, waitFor } from './util.mjs';
import { CONTROL_PLANE_NODE_FLAGS } from '../../scripts/control-plane-node-flags.mjs';

/** Builds when the control plane or the agent bundle is missing. */
export function ensureBuilt(log) {
  if (existsSync(CONTROL_PLANE_MAIN) && existsSync(AGENT_BUNDLE)) return;
  log('dist is missing: running npm run build');
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('npm run build failed');
}

/** A small JSON client for the API with one key. */
export class Api {
  constructor(baseUrl, key) {
    this.baseUrl = baseUrl;
    this.key = key;
  }
  async request(method, p, body, headers = {}) {
    const h = { ...headers };
    if (this.key) h.authorization = `Bearer ${this.key}`;
    if (body !== undefined) h['content-type'] ??= 'application/json';
    const res = await fetch(`${this.baseUrl}${p}`, {
      method,
      headers: h,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    let parsed = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed };
  }
  async expect(status, method, p, body) {
    const r = await this.request(method, p, body);
    if (r.status !== status) throw new Error(`${method} ${p}: expected ${status}, got ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    return r.body;
  }
  get = (p) => this.expect(200, 'GET', p);
  post = (p, body, status = 201) => this.expect(status, 'POST', p, body);
  patch = (p, body) => this.expect(200, 'PATCH', p, body);
}

/** Node flags that write a CPU profile at exit (Node refuses --cpu-prof in NODE_OPTIONS). */
function profileArgs(profile, label) {
  if (!profile) return [];
  mkdirSync(PROFILE_DIR, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, `--cpu-prof-name=${label}-${Date.now()}.cpuprofile`];
}

/** Polls until `check` holds, failing at once if `proc` exits. */
function whileRunning(proc, what, check, timeoutMs) {
  return Promise.race([
    waitFor(what, check, timeoutMs, 100),
    proc.exited.then(({ code, signal }) => {
      throw new Error(`it exited (code ${code}, signal ${signal})`);
    }),
  ]);
}

/** The built control plane as a real process on a free loopback port; waits for /health. */
export async function startControlPlane({ databaseUrl, label = 'control-plane', profile = false, env = {}, nodeArgs = [] }) {
  const port = await freePort();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-bench-cp-'));
  const adminKey = `bench-admin-${randomBytes(24).toString('hex')}`;
  const metricsToken = `bench-metrics-${randomBytes(16).toString('hex')}`;
  const procEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: databaseUrl,
    DEVPILOT_DATA_DIR: dataDir,
    DEVPILOT_ADMIN_API_KEY: adminKey,
    DEVPILOT_LOG_LEVEL: process.env.BENCH_LOG_LEVEL || 'warn',
    DEVPILOT_LOCAL_AGENT: 'false',
    DEVPILOT_PUBLIC_URL: `http://127.0.0.1:${port}`,
    DEVPILOT_METRICS_TOKEN: metricsToken,
    ...env,
  };
  const proc = new ManagedProcess(label, process.execPath, [...CONTROL_PLANE_NODE_FLAGS, ...nodeArgs, ...profileArgs(profile, label), CONTROL_PLANE_MAIN], { env: procEnv });
  const url = `http://127.0.0.1:${port}`;
  try {
    await whileRunning(proc, 'control plane /health', async () => (await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) })).status === 200, 90_000);
  } catch (e) {
    await proc.stop('SIGKILL');
    throw new Error(`the control plane did not become healthy: ${e.message}\n--- its output:\n${proc.tail.slice(-4000)}`, { cause: e });
  }
  const api = new Api(url, adminKey);
  return {
    url,
    port,
    adminKey,
    api,
    proc,
    /** A series' value from /metrics (NaN if this build does not report it). */
    async metric(series) {
      const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })).text();
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? NaN : Number(line.slice(series.length + 1));
    },
    async stop() {
      await proc.stop('SIGTERM', 20_000);
      await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

/** A real agent process (the built bundle) for `server`; waits until the control plane shows it online. */
export async function startAgent(cp, server, { concurrency = 4, label = 'agent', profile = false } = {}) {
  // BENCH_AGENT_NODE_FLAGS: Node flags for the agent (say, a smaller heap), to measure what they change.
  const flags = (process.env.BENCH_AGENT_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const proc = new ManagedProcess(label, process.execPath, [...flags, ...profileArgs(profile, label), AGENT_BUNDLE, '--url', cp.url, '--concurrency', String(concurrency), '--log-level', process.env.BENCH_AGENT_LOG_LEVEL || 'warn'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DEVPILOT_AGENT_TOKEN: server.agentToken },
  });
  try {
    await whileRunning(proc, `agent ${server.name} online`, async () => (await cp.api.get(`/api/v1/servers/${server.id}`)).status === 'online', 30_000);
  } catch (e) {
    await proc.stop('SIGKILL');
    throw new Error(`${e.message}\n--- agent output:\n${proc.tail.slice(-3000)}`, { cause: e });
  }
  return proc;
}

/** A server, a script with `content`, and a webhook with an HMAC secret on them. */
export async function scriptWebhook(api, { name, content, serverId, maxOutputBytes, timeoutSeconds = 600 }) {
  const script = await api.post('/api/v1/scripts', { name: `${name}-${randomBytes(3).toString('hex')}`, content, interpreter: 'bash', timeoutSeconds });
  if (maxOutputBytes !== undefined) await api.patch(`/api/v1/scripts/${script.id}`, { maxOutputBytes });
  const hmacSecret = randomBytes(32).toString('hex');
  const hook = await api.post(`/api/v1/scripts/${script.id}/webhooks`, { name, serverId, hmacSecret });
  return { scriptId: script.id, webhookId: hook.id, token: hook.token, hmacSecret };
}

export const createServer = (api, name) => api.post('/api/v1/servers', { name: `${name}-${randomBytes(3).toString('hex')}` });

export const TRIGGER_PATH = '/api/v1/webhooks/script_execute';
