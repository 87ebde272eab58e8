// Devpilot behind nginx as the README sets it up: TLS with a private CA, agents over wss://, the
// caller's address forwarded and believed only from nginx.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { AGENT_BUNDLE } from './support/agent.js';
import { type ControlPlane, ROOT, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getOutput, run, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { createPki, type Nginx, NGINX_TEMPLATE, type Pki, startNginx } from './support/nginx.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { ManagedProcess, waitFor } from './support/processes.js';
import { createWebhook, TRIGGER_PATH } from './support/webhook-fixtures.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
let pki: Pki;
let nginx: Nginx;
const agents: ManagedProcess[] = [];

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** An HTTPS call trusting the test CA, from a chosen loopback address (127.0.0.0/8 is all ours). */
function request(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; ca?: string; from?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = (u.protocol === 'https:' ? https : http).request(
      u,
      { method: opts.method ?? 'GET', headers: opts.headers, ca: opts.ca, localAddress: opts.from, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

function startAgentProcess(token: string, args: string[]): ManagedProcess {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, DEVPILOT_URL: nginx.url, DEVPILOT_AGENT_TOKEN: token, DEVPILOT_AGENT_SHUTDOWN_GRACE_MS: '1000' };
  const proc = ManagedProcess.spawn(process.execPath, [AGENT_BUNDLE, ...args], env);
  agents.push(proc);
  return proc;
}

const trigger = (base: string, token: string, from: string, headers: Record<string, string> = {}) =>
  request(`${base}${TRIGGER_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ token }), ca: readFileSync(pki.caFile, 'utf8'), from });

beforeAll(async () => {
  db = await createTestDatabase();
  // nginx connects to the control plane from 127.0.0.1: that one address is trusted, nothing wider.
  // At debug: the trigger's request lines (debug, the delivery log being their record) are what the proxy test reads.
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_TRUST_PROXY: '127.0.0.1', DEVPILOT_LOG_LEVEL: 'debug' } });
  api = new Api(cp.url, cp.adminKey);
  pki = await createPki();
  nginx = await startNginx({ upstreams: [`127.0.0.1:${cp.port}`], tls: pki });
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  await nginx?.stop();
  await cp?.stop();
  await db?.drop();
});

describe('behind nginx with a private CA', () => {
  it('the README shows the nginx configuration this test runs', () => {
    const readme = readFileSync(`${ROOT}/README.md`, 'utf8');
    expect(readme).toContain(`\`\`\`nginx\n${readFileSync(NGINX_TEMPLATE, 'utf8')}\`\`\``);
  });

  it('an agent given the CA with --ca-file connects over wss:// and runs a script, output byte for byte', async () => {
    const server = await createServer(api, 'behind-nginx');
    const agent = startAgentProcess(server.agentToken, ['--ca-file', pki.caFile]);
    await waitFor('the agent online through nginx', async () => (await api.get(`/api/v1/servers/${server.id}`)).body.status === 'online', 30_000);
    expect(agent.logs).toContain(`"url":"${nginx.url}"`);

    const script = await createScript(api, "printf 'a\\000b\\377\\r\\n'; seq 1 30000; printf 'end'");
    const { executionId } = await run(api, script.id, server.id);
    expect((await waitForTerminal(api, executionId)).status).toBe('succeeded');
    const seq = Array.from({ length: 30_000 }, (_, i) => `${i + 1}\n`).join('');
    const expected = Buffer.concat([Buffer.from([0x61, 0x00, 0x62, 0xff, 0x0d, 0x0a]), Buffer.from(`${seq}end`)]);
    expect((await getOutput(api, executionId)).bytes.equals(expected)).toBe(true);
    // And read back through nginx too.
    const viaProxy = await request(`${nginx.url}/api/v1/executions/${executionId}/output`, { headers: { authorization: `Bearer ${cp.adminKey}` }, ca: readFileSync(pki.caFile, 'utf8') });
    expect(viaProxy.status).toBe(200);
    expect(viaProxy.body.equals(expected)).toBe(true);
  });

  it('live output (server-sent events) comes through nginx while the script still runs', async () => {
    const server = await createServer(api, 'live');
    startAgentProcess(server.agentToken, ['--ca-file', pki.caFile]);
    await waitFor('the agent online', async () => (await api.get(`/api/v1/servers/${server.id}`)).body.status === 'online', 30_000);
    // The script may run as the unprivileged devpilot-run: the marker lives where that user can look.
    const markers = await mkdtemp(path.join(os.tmpdir(), 'devpilot-marker-'));
    await chmod(markers, 0o755);
    const marker = path.join(markers, 'release-live-script');
    const script = await createScript(api, `echo first; while [ ! -e ${marker} ]; do sleep 0.05; done; echo second`);
    const { executionId } = await run(api, script.id, server.id);

    const u = new URL(`${nginx.url}/api/v1/executions/${executionId}/events`);
    let text = '';
    const ended = new Promise<void>((resolve, reject) => {
      https
        .get(u, { headers: { authorization: `Bearer ${cp.adminKey}` }, ca: readFileSync(pki.caFile, 'utf8'), agent: false }, (res) => {
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', resolve);
          res.on('error', reject);
        })
        .on('error', reject);
    });
    const first = Buffer.from('first\n').toString('base64');
    // Positive signal: the first chunk arrives while the script is blocked on the marker.
    await waitFor('the first chunk through nginx', () => text.includes(`"data":"${first}"`), 30_000);
    expect((await api.get(`/api/v1/executions/${executionId}`)).body.status).toBe('running');
    writeFileSync(marker, '');
    await ended;
    expect(text).toContain(`"data":"${Buffer.from('second\n').toString('base64')}"`);
    expect(text).toContain('"status":"succeeded"');
  });

  it('an agent without the CA names the TLS failure in its log, not a bare "websocket error"', async () => {
    const server = await createServer(api, 'no-ca');
    const agent = startAgentProcess(server.agentToken, []);
    const line = await waitFor('the agent to log why it cannot connect', () => agent.logs.split('\n').find((l) => l.includes('"msg":"cannot connect"')), 30_000);
    const entry = JSON.parse(line) as { error: string; reason?: string; code?: string; hint?: string };
    expect(entry.error).toBe('websocket error');
    expect(`${entry.reason} ${entry.code}`).toMatch(/unable to verify the first certificate|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN/);
    expect(entry.hint).toContain('--ca-file');
    expect((await api.get(`/api/v1/servers/${server.id}`)).body.status).not.toBe('online');
  });

  it('a trigger through nginx is checked against the caller’s address, which the caller cannot forge', async () => {
    const { id: serverId } = await createServer(api, 'allowlisted');
    const script = await createScript(api, 'true');
    const hook = await createWebhook(api, script.id, { serverId, allowedIps: ['127.0.0.5'] });

    const allowed = await trigger(nginx.url, hook.token, '127.0.0.5');
    expect(allowed.status).toBe(202);
    expect((await trigger(nginx.url, hook.token, '127.0.0.6')).status).toBe(403);
    // A header the caller sends itself is kept by nginx but sits left of the address nginx adds.
    expect((await trigger(nginx.url, hook.token, '127.0.0.6', { 'x-forwarded-for': '127.0.0.5' })).status).toBe(403);

    const deliveries = (await api.get(`/api/v1/webhooks/${hook.id}/deliveries`)).body.items as { sourceIp: string; statusCode?: number }[];
    expect(deliveries.map((d) => d.sourceIp).sort()).toEqual(['127.0.0.5', '127.0.0.6', '127.0.0.6']);

    // The request log names both the proxy (remoteAddress) and the caller (clientAddress).
    const requestId = String(allowed.headers['x-request-id']);
    const logged = await waitFor('the request log line', () => cp.proc.logs.split('\n').find((l) => l.includes(`"id":"${requestId}"`) && l.includes('"res"')));
    const req = (JSON.parse(logged) as { req: { remoteAddress: string; clientAddress: string } }).req;
    expect(req.clientAddress).toBe('127.0.0.5');
    expect(req.remoteAddress).toMatch(/^(::ffff:)?127\.0\.0\.1$/);
  });

  it('X-Forwarded-For from a peer that is not a trusted proxy is ignored, and said once in the log', async () => {
    const { id: serverId } = await createServer(api, 'direct');
    const script = await createScript(api, 'true');
    const hook = await createWebhook(api, script.id, { serverId, allowedIps: ['127.0.0.5'] });
    const warning = 'which DEVPILOT_TRUST_PROXY does not list';
    expect(cp.proc.logs).not.toContain(warning);
    for (let i = 0; i < 2; i++) {
      expect((await trigger(cp.url, hook.token, '127.0.0.7', { 'x-forwarded-for': '127.0.0.5' })).status).toBe(403);
    }
    expect(cp.proc.logs.split(warning).length - 1).toBe(1);
    expect(cp.proc.logs).toContain('If 127.0.0.7 is your reverse proxy, set DEVPILOT_TRUST_PROXY=127.0.0.7');
  });

  it('bodies: over the control plane’s limit a JSON 413, over client_max_body_size nginx’s HTML 413', async () => {
    const ca = readFileSync(pki.caFile, 'utf8');
    const post = (bytes: number) =>
      request(`${nginx.url}${TRIGGER_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'x', pad: 'p'.repeat(bytes) }), ca });
    const overApp = await post(1_500_000);
    expect(overApp.status).toBe(413);
    expect(JSON.parse(overApp.body.toString()).code).toBe('PAYLOAD_TOO_LARGE');
    const overNginx = await post(3_000_000);
    expect(overNginx.status).toBe(413);
    expect(overNginx.headers['content-type']).toContain('text/html');
  });

  it('GET on the trigger URL (a browser) answers 405 with Allow: POST, through nginx too', async () => {
    const r = await request(`${nginx.url}${TRIGGER_PATH}`, { ca: readFileSync(pki.caFile, 'utf8') });
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('POST');
    expect(JSON.parse(r.body.toString())).toEqual({ statusCode: 405, code: 'METHOD_NOT_ALLOWED', message: expect.any(String) });
  });
});
