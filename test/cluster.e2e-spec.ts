// Three control-plane processes on one PostgreSQL behind nginx: any node serves any request, and a
// node killed in the middle of a streaming run loses nothing. The sweep is set to ten minutes, so
// only the live paths (the socket.io adapter, the nodes' notices) can dispatch, cancel or stream.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { chmod, mkdir, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type AgentProcess, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getOutput, readEvents, run, waitForStatus, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { type Nginx, startNginx } from './support/nginx.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { ViewerClient } from './support/viewer.js';
import { createWebhook, TRIGGER_PATH, triggerWith } from './support/webhook-fixtures.js';

const adminKey = `test-admin-${randomBytes(24).toString('hex')}`;
const masterKey = randomBytes(32).toString('hex');
let db: TestDatabase;
const nodes: ControlPlane[] = [];
let nginx: Nginx;
let tmp: string;
const agents: AgentProcess[] = [];
const viewers: ViewerClient[] = [];
let closing = false;
/** A finished execution any key of the workspace may read. */
let anyExecutionId = '';

const api = (node: ControlPlane | Nginx) => new Api(node.url, adminKey);

beforeAll(async () => {
  db = await createTestDatabase();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'devpilot-cluster-'));
  // Scripts run as the unprivileged devpilot-run: they must see the marker file in here.
  await chmod(tmp, 0o755);
  for (let i = 0; i < 3; i++) {
    nodes.push(
      await startControlPlane({
        databaseUrl: db.url,
        env: {
          // What the nodes of one cluster share, besides DATABASE_URL.
          DEVPILOT_ADMIN_API_KEY: adminKey,
          DEVPILOT_MASTER_KEY: masterKey,
          DEVPILOT_TRUST_PROXY: '127.0.0.1',
          DEVPILOT_SWEEP_INTERVAL_MS: '600000',
          DEVPILOT_AGENT_ACK_TIMEOUT_MS: '5000',
          DEVPILOT_TRIGGER_FAILURE_LIMIT: '4/60',
          DEVPILOT_VIEWER_CONNECTIONS_PER_KEY: '5',
        },
      }),
    );
  }
  nginx = await startNginx({ upstreams: nodes.map((n) => `127.0.0.1:${n.port}`) });
}, 120_000);

afterAll(async () => {
  closing = true;
  for (const v of viewers) v.close();
  for (const a of agents) await a.stop();
  await nginx?.stop();
  for (const n of nodes) await n.stop();
  await db?.drop();
});

async function agentOn(url: string, name: string): Promise<{ serverId: string; agent: AgentProcess }> {
  const server = await createServer(api(nodes[0]), name);
  const agent = await startAgent({ url, token: server.agentToken });
  agents.push(agent);
  await waitFor(`${name} online`, async () => (await api(nodes[1]).get(`/api/v1/servers/${server.id}`)).body.status === 'online', 30_000);
  return { serverId: server.id, agent };
}

/** Which node holds the server's agent: the one that logged its connection last. */
function nodeHolding(serverId: string): number {
  let best = -1;
  let at = -1;
  nodes.forEach((n, i) => {
    const idx = n.proc.logs.lastIndexOf(`"serverId":"${serverId}","socketId"`);
    if (idx >= 0 && n.proc.running && (best < 0 || idx > at)) {
      best = i;
      at = idx;
    }
  });
  return best;
}

/** A trigger from a chosen loopback address straight to a node (no proxy: the address is the caller's). */
function triggerFrom(url: string, token: string, from: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${TRIGGER_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, localAddress: from, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text ? (JSON.parse(text) as unknown) : undefined }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ token }));
  });
}

describe('any node serves any request', () => {
  it('a webhook accepted on node B runs at once on the agent held by node A', async () => {
    const { serverId } = await agentOn(nodes[0].url, 'on-a');
    expect(nodeHolding(serverId)).toBe(0);
    const script = await createScript(api(nodes[0]), 'echo "ran on $(hostname)"');
    const hook = await createWebhook(api(nodes[0]), script.id, { serverId });
    const accepted = await triggerWith(nodes[1].url, hook.token);
    expect(accepted.status).toBe(202);
    // Ten minutes between sweeps: only the live path (node B to node A through the adapter) gets it there in time.
    const done = await waitForTerminal(api(nodes[2]), accepted.body.executionId as string, 20_000);
    expect(done.status).toBe('succeeded');
    expect((await getOutput(api(nodes[2]), done.id as string)).bytes.toString()).toBe(`ran on ${os.hostname()}\n`);
    anyExecutionId = done.id as string;
  });

  it('a request passed to the script crosses nodes: accepted on node B, sealed, opened for the agent on node A, never through the adapter', async () => {
    const { serverId } = await agentOn(nodes[0].url, 'payload-on-a');
    expect(nodeHolding(serverId)).toBe(0);
    const script = await createScript(api(nodes[0]), 'sha256sum < "$DEVPILOT_PAYLOAD_FILE" | cut -c1-64; echo "$DEVPILOT_CONTENT_TYPE"');
    const created = await api(nodes[0]).post(`/api/v1/scripts/${script.id}/webhooks`, { name: 'with request', serverId, passPayload: true });
    expect(created.status).toBe(201);
    // Larger than a NOTIFY: a start sent through the adapter would be a row of its attachments table.
    const marker = `request-marker-${randomBytes(8).toString('hex')}`;
    const body = JSON.stringify({ ref: 'refs/heads/main', marker, blob: randomBytes(24 * 1024).toString('base64') });
    const res = await fetch(`${nodes[1].url}${TRIGGER_PATH}/${created.body.token as string}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBe(202);
    const { executionId } = (await res.json()) as { executionId: string };
    const done = await waitForTerminal(api(nodes[2]), executionId, 20_000);
    expect(done.status).toBe('succeeded');
    const sha = createHash('sha256').update(body).digest('hex');
    expect((await getOutput(api(nodes[2]), executionId)).bytes.toString()).toBe(`${sha}\napplication/json\n`);
    // Only the run's id crossed: the start (with the request in clear) stayed on node A.
    const [{ n }] = await db.query<{ n: string }>(`SELECT count(*) AS n FROM socket_io_attachments WHERE position(convert_to($1, 'UTF8') IN payload) > 0`, [marker]);
    expect(Number(n)).toBe(0);
  });

  it('secrets too: a run accepted on node B gets its server’s value (over the workspace’s) on node A, and a missing one fails it there', async () => {
    const { serverId } = await agentOn(nodes[0].url, 'secrets-on-a');
    expect(nodeHolding(serverId)).toBe(0);
    expect((await api(nodes[0]).post('/api/v1/secrets', { name: 'CLUSTER_TOKEN', value: 'workspace value' })).status).toBe(201);
    expect((await api(nodes[0]).post('/api/v1/secrets', { name: 'CLUSTER_TOKEN', value: 'server value', serverId })).status).toBe(201);
    // The agent masks the value in the output: its digest shows which one the run got.
    const script = await createScript(api(nodes[0]), 'printf %s "$CLUSTER_TOKEN" | sha256sum | cut -c1-64', { secrets: ['CLUSTER_TOKEN'] });
    const hook = await createWebhook(api(nodes[0]), script.id, { serverId });
    const accepted = await triggerWith(nodes[1].url, hook.token);
    expect(accepted.status).toBe(202);
    const done = await waitForTerminal(api(nodes[2]), accepted.body.executionId as string, 20_000);
    expect(done.status).toBe('succeeded');
    expect((await getOutput(api(nodes[2]), done.id as string)).bytes.toString()).toBe(`${createHash('sha256').update('server value').digest('hex')}\n`);

    const missing = await createScript(api(nodes[0]), 'echo should-not-run', { secrets: ['CLUSTER_TOKEN', 'NOT_THERE'] });
    const missingHook = await createWebhook(api(nodes[0]), missing.id, { serverId });
    const refused = await triggerWith(nodes[1].url, missingHook.token);
    expect(refused.status).toBe(202);
    const failed = await waitForTerminal(api(nodes[2]), refused.body.executionId as string, 20_000);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/secret NOT_THERE is not defined/);
  });

  it('a cancel sent to node C reaches the agent on node A; a viewer and an SSE reader on node C see the output live', async () => {
    const { serverId } = await agentOn(nodes[0].url, 'cancel-on-a');
    const script = await createScript(api(nodes[0]), 'echo first; sleep 600');
    const { executionId } = await run(api(nodes[1]), script.id, serverId);
    const viewer = await ViewerClient.connect(nodes[2].url, adminKey);
    viewers.push(viewer);
    expect(await viewer.subscribe(executionId)).toEqual({ ok: true });
    await waitForStatus(api(nodes[2]), executionId, 'running');
    // The chunk was stored by node A; node C's readers hear of it without waiting for their poll.
    await waitFor('the chunk on node C', () => viewer.bytes(executionId).toString() === 'first\n', 10_000);
    const sse = readEvents(api(nodes[2]), executionId, { timeoutMs: 30_000 });
    expect((await api(nodes[2]).post(`/api/v1/executions/${executionId}/cancel`, {})).status).toBe(202);
    expect((await waitForTerminal(api(nodes[1]), executionId, 20_000)).status).toBe('cancelled');
    const stream = await sse;
    expect(stream.ended).toBe(true);
    expect(stream.events.some((e) => e.event === 'status' && e.data.includes('"cancelled"'))).toBe(true);
    expect((await viewer.waitTerminal(executionId, 10_000)).status).toBe('cancelled');
    expect(viewer.seqs(executionId)).toEqual([0]);
  });

  it('deleting an API key on node B cuts its socket on node C and its SSE stream on node A', async () => {
    const { serverId } = await agentOn(nodes[0].url, 'revocation');
    const script = await createScript(api(nodes[0]), 'sleep 600');
    const { executionId } = await run(api(nodes[0]), script.id, serverId);
    await waitForStatus(api(nodes[0]), executionId, 'running');
    const key = await api(nodes[0]).post('/api/v1/api-keys', { name: 'doomed', role: 'viewer' });
    expect(key.status).toBe(201);
    const socket = await ViewerClient.connect(nodes[2].url, key.body.key as string);
    viewers.push(socket);
    let opened = false;
    // Closed by the server: the reader sees its end, or the connection cut under it.
    const stream = readEvents(new Api(nodes[0].url, key.body.key as string), executionId, { timeoutMs: 30_000, onOpen: () => (opened = true) }).then(
      (r) => (r.ended ? 'closed' : 'still open at the deadline'),
      () => 'closed',
    );
    await waitFor('the SSE stream open', () => opened);
    const gone = new Promise<string>((resolve) => socket.socket.once('disconnect', (reason) => resolve(reason)));
    expect((await api(nodes[1]).delete(`/api/v1/api-keys/${key.body.id as string}`)).status).toBe(204);
    expect(await gone).toBe('io server disconnect');
    expect(await stream).toBe('closed');
    await api(nodes[1]).post(`/api/v1/executions/${executionId}/cancel`, {});
  });

  it('a key’s connections are counted over every node', async () => {
    const key = await api(nodes[0]).post('/api/v1/api-keys', { name: 'capped', role: 'viewer' });
    expect(key.status).toBe(201);
    const held: ViewerClient[] = [];
    // Five places (DEVPILOT_VIEWER_CONNECTIONS_PER_KEY), taken on all three nodes.
    for (let i = 0; i < 5; i++) held.push(await ViewerClient.connect(nodes[i % 3].url, key.body.key as string));
    viewers.push(...held);
    await expect(ViewerClient.connect(nodes[2].url, key.body.key as string)).rejects.toThrow(/too many connections/);
    const refused = await new Api(nodes[2].url, key.body.key as string).get(`/api/v1/executions/${anyExecutionId}/events`);
    expect([refused.status, refused.body.code]).toEqual([429, 'TOO_MANY_CONNECTIONS']);
    // A place freed on node A is a place on node C.
    held[0].close();
    viewers.push(await waitFor('a place free again', async () => ViewerClient.connect(nodes[2].url, key.body.key as string).catch(() => undefined)));
  });

  it('the trigger failure limiter counts across nodes, and refuses only refused calls', async () => {
    const { serverId } = await agentOn(nodes[0].url, 'limited');
    const script = await createScript(api(nodes[0]), 'true');
    const hook = await createWebhook(api(nodes[0]), script.id, { serverId });
    // Four bad tokens, spread over the three nodes, from one address.
    for (let i = 0; i < 4; i++) expect((await triggerFrom(nodes[i % 3].url, 'not-a-token', '127.0.0.9')).status).toBe(404);
    for (const n of nodes) {
      const r = await triggerFrom(n.url, 'not-a-token', '127.0.0.9');
      expect([r.status, r.body.code]).toEqual([429, 'RATE_LIMITED']);
      // The same address with the right token is not refused for its failures.
      expect((await triggerFrom(n.url, hook.token, '127.0.0.9')).status).toBe(202);
    }
    // Another address has its own count.
    expect((await triggerFrom(nodes[2].url, 'not-a-token', '127.0.0.10')).status).toBe(404);
  });

  it('queue: calls spread over the nodes run one at a time, in acceptance order, each handed over when the one ahead ends', async () => {
    const { serverId } = await agentOn(nodes[0].url, 'queueing');
    const records = path.join(tmp, 'queue');
    await mkdir(records);
    // The scripts run as devpilot-run: they append to a file in here.
    await chmod(records, 0o777);
    const file = path.join(records, 'runs.log');
    const script = await createScript(
      api(nodes[0]),
      `echo "start $DEVPILOT_EXECUTION_ID" >> ${file}\nsleep 0.3\necho "end $DEVPILOT_EXECUTION_ID" >> ${file}\n`,
    );
    const hook = await api(nodes[0]).post(`/api/v1/scripts/${script.id}/webhooks`, { name: 'queued', serverId, concurrency: 'queue' });
    expect(hook.status).toBe(201);
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => triggerWith(nodes[i % 3].url, hook.body.token as string)));
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(202));
    // Ten minutes between sweeps: only a run's end, on whichever node sees it, hands the next one over.
    const runs = await Promise.all(answers.map((a, i) => waitForTerminal(api(nodes[(i + 1) % 3]), a.body.executionId as string, 30_000)));
    expect(runs.map((r) => r.status)).toEqual(Array(6).fill('succeeded'));
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    const ran = lines.filter((_, i) => i % 2 === 0).map((l) => l.replace('start ', ''));
    // No overlap: each start is followed by its own end.
    expect(lines).toEqual(ran.flatMap((id) => [`start ${id}`, `end ${id}`]));
    const accepted = [...runs].sort((a, b) => Date.parse(a.queuedAt) - Date.parse(b.queuedAt)).map((r) => r.id as string);
    expect(ran).toEqual(accepted);
  });
});

describe('a node killed in the middle of a streaming run', () => {
  it('loses nothing: the run completes byte for byte, the viewer sees each chunk once, every trigger is refused or runs once', async () => {
    const proxy = api(nginx);
    const { serverId } = await agentOn(nginx.url, 'through-nginx');
    const holder = nodeHolding(serverId);
    expect(holder).toBeGreaterThanOrEqual(0);

    const marker = path.join(tmp, 'release');
    const lines = 400;
    // Half the output, then wait for the test, then the rest (printf: one chunk per line, or close to it).
    const script = await createScript(
      proxy,
      `i=0; while [ $i -lt ${lines / 2} ]; do i=$((i+1)); echo "line $i"; done; while [ ! -e ${marker} ]; do sleep 0.05; done; ` +
        `while [ $i -lt ${lines} ]; do i=$((i+1)); echo "line $i"; sleep 0.005; done`,
    );
    const expected = Array.from({ length: lines }, (_, i) => `line ${i + 1}\n`).join('');
    const quick = await createScript(proxy, 'echo once');
    const hook = await createWebhook(proxy, quick.id, { serverId });

    const { executionId } = await run(proxy, script.id, serverId);
    // A viewer through nginx; if the node it landed on is the one killed, it reconnects and
    // continues after the last seq it holds, as the dashboard does.
    const seen: ViewerClient[] = [];
    const connectViewer = async (): Promise<void> => {
      const afterSeq = seen.length ? lastSeq(seen) : undefined;
      const v = await waitFor('a viewer connected through nginx', async () => ViewerClient.connect(nginx.url, adminKey).catch(() => undefined), 30_000);
      viewers.push(v);
      seen.push(v);
      v.socket.once('disconnect', () => {
        if (!closing && !v.terminalStatus(executionId)) void connectViewer();
      });
      expect(await v.subscribe(executionId, afterSeq)).toEqual({ ok: true });
    };
    await connectViewer();
    await waitFor('the first half on the viewer', () => bytesOf(seen).toString().includes(`line ${lines / 2}\n`), 30_000);

    // Triggers around the kill, through nginx: each is answered, and each accepted one runs once.
    const calls: Promise<{ status: number; body: any }>[] = [];
    for (let i = 0; i < 4; i++) calls.push(triggerWith(nginx.url, hook.token));
    await nodes[holder].stop('SIGKILL');
    writeFileSync(marker, '');
    for (let i = 0; i < 6; i++) calls.push(triggerWith(nginx.url, hook.token));
    const answers = await Promise.all(calls);

    const done = await waitForTerminal(proxy, executionId, 60_000);
    expect(done.status).toBe('succeeded');
    expect((await getOutput(proxy, executionId)).bytes.toString()).toBe(expected);
    await waitFor('the viewer to see the end', () => seen.some((v) => v.terminalStatus(executionId)), 30_000);
    const seqs = seen.flatMap((v) => v.seqs(executionId));
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i));
    expect(bytesOf(seen).toString()).toBe(expected);
    // The agent came back through nginx to a node that is alive.
    const now = nodeHolding(serverId);
    expect(now).not.toBe(holder);

    for (const a of answers) {
      // Refused with a status that says so (nginx's 502 for a call cut with the node), never an answer that lies.
      if (a.status !== 202) expect([502, 503]).toContain(a.status);
    }
    const acceptedIds = answers.filter((a) => a.status === 202).map((a) => a.body.executionId as string);
    expect(acceptedIds.length).toBeGreaterThan(0);
    const runs = await waitFor(
      'every run of the webhook to end',
      async () => {
        const list = (await proxy.get(`/api/v1/executions?webhookId=${hook.id}&limit=100`)).body.items as { id: string; status: string }[];
        return list.every((e) => ['succeeded', 'failed', 'lost', 'cancelled', 'timed_out', 'undeliverable'].includes(e.status)) ? list : undefined;
      },
      60_000,
    );
    // Every accepted call has its run; a cut call may have been committed too, and runs like the others.
    expect(runs.map((r) => r.id)).toEqual(expect.arrayContaining(acceptedIds));
    expect(runs.length).toBeLessThanOrEqual(answers.length);
    for (const r of runs) {
      expect(r.status).toBe('succeeded');
      expect((await getOutput(proxy, r.id)).bytes.toString()).toBe('once\n');
    }
  }, 180_000);
});

function lastSeq(list: ViewerClient[]): number {
  const all = list.flatMap((v) => v.seqs(executionIdOf(v)));
  return all.length ? Math.max(...all) : -1;
}

function executionIdOf(v: ViewerClient): string {
  return [...v.output.keys()][0] ?? '';
}

function bytesOf(list: ViewerClient[]): Buffer {
  return Buffer.concat(list.map((v) => v.bytes(executionIdOf(v))));
}
