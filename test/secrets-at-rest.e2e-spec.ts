// After representative activity (workspaces, API keys, servers, token rotation, webhooks with
// HMAC secrets, signed and unsigned triggers, a real agent running scripts, a dashboard viewer),
// no webhook token, API key, agent token or HMAC secret is found in plain text (nor hex or base64
// of it) in the control plane's logs, the agent's logs or a dump of the database.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { type AgentProcess, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, run, waitForTerminal } from './support/executions.js';
import { recordFigure } from './support/figures.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { dumpDatabase, forms } from './support/secret-scan.js';
import { ViewerClient } from './support/viewer.js';
import { callTrigger, createWebhook, hmacHex, triggerWith } from './support/webhook-fixtures.js';

let db: TestDatabase;
let cp: ControlPlane;
const agents: AgentProcess[] = [];
/** Every secret the activity handled, by kind. */
const secrets: { kind: string; value: string }[] = [];
const keep = (kind: string, value: string) => {
  expect(typeof value).toBe('string');
  secrets.push({ kind, value });
  return value;
};

beforeAll(async () => {
  db = await createTestDatabase();
  // At debug, so the scan also covers the trigger's per-call request lines.
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_LOG_LEVEL: 'debug' } });
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  await cp?.stop();
  await db?.drop();
});

describe('secrets after a run of representative activity', () => {
  it('are in no log and nowhere in the database', async () => {
    const admin = new Api(cp.url, keep('admin API key', cp.adminKey));
    const ws = await admin.post('/api/v1/workspaces', { name: 'second team' });
    expect(ws.status).toBe(201);
    const second = new Api(cp.url, keep('workspace API key', ws.body.apiKey));
    for (const role of ['owner', 'viewer']) {
      const k = await admin.post('/api/v1/api-keys', { name: `${role} key`, role });
      expect(k.status).toBe(201);
      keep(`${role} API key`, k.body.key);
    }
    const revoked = await second.post('/api/v1/api-keys', { name: 'soon gone', role: 'owner' });
    keep('revoked API key', revoked.body.key);
    expect((await second.delete(`/api/v1/api-keys/${revoked.body.id}`)).status).toBe(204);

    // Servers, one token rotated; a real agent on the new token.
    const server = await createServer(admin, 'secrets');
    keep('agent token (rotated away)', server.agentToken);
    const rotated = await admin.post(`/api/v1/servers/${server.id}/agent-token`);
    expect(rotated.status).toBe(201);
    const agentToken = keep('agent token', rotated.body.agentToken);
    const other = await createServer(second, 'secrets-2');
    keep('agent token (second workspace)', other.agentToken);
    agents.push(await startAgent({ url: cp.url, token: agentToken }));
    await waitFor('agent online', async () => (await admin.get(`/api/v1/servers/${server.id}`)).body.status === 'online', 30_000);
    // The old token is refused (and logged as such, without itself).
    const refusedAgent = await startAgent({ url: cp.url, token: server.agentToken, env: { DEVPILOT_AGENT_LOG_LEVEL: 'debug' } });
    agents.push(refusedAgent);
    await waitFor('the old token refused', () => /refused/.test(refusedAgent.proc.logs), 20_000);

    // Scripts and webhooks, with and without HMAC; triggers signed, unsigned, wrong.
    const script = await createScript(admin, 'echo "run $DEVPILOT_EXECUTION_ID"');
    const hooks = [];
    for (let i = 0; i < 3; i++) {
      const hmacSecret = i === 0 ? undefined : keep('HMAC secret', `hmac-${randomBytes(18).toString('base64url')}`);
      const hook = await createWebhook(admin, script.id, { serverId: server.id, name: `hook-${i}`, ...(hmacSecret ? { hmacSecret } : {}) });
      keep('webhook token', hook.token);
      hooks.push({ hook, hmacSecret });
    }
    const ids: string[] = [];
    for (const { hook, hmacSecret } of hooks) {
      const body = JSON.stringify({ token: hook.token, ref: 'main' });
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (hmacSecret) headers['x-webhook-signature'] = keep('signature', hmacHex(hmacSecret, body));
      const ok = await callTrigger(cp.url, body, headers);
      expect(ok.status).toBe(202);
      ids.push(ok.body.executionId);
      if (hmacSecret) expect((await callTrigger(cp.url, body, { ...headers, 'x-webhook-signature': 'f'.repeat(64) })).status).toBe(401);
      // Reading the webhook back shows the token (with a curl snippet): only in the response.
      expect((await admin.get(`/api/v1/webhooks/${hook.id}`)).body.token).toBe(hook.token);
    }
    await admin.patch(`/api/v1/webhooks/${hooks[0]!.hook.id}`, { active: false });
    expect((await triggerWith(cp.url, hooks[0]!.hook.token)).status).toBe(404);
    expect((await admin.delete(`/api/v1/webhooks/${hooks[1]!.hook.id}`)).status).toBe(204);
    expect((await triggerWith(cp.url, hooks[1]!.hook.token)).status).toBe(404);
    ids.push((await run(admin, script.id, server.id)).executionId);
    // A canary the search must find: a script that prints a value lands in execution_output (bytea).
    const canaryTail = randomBytes(12).toString('hex');
    const canary = `canary-${canaryTail}`;
    const printer = await createScript(admin, `printf '%s-%s' canary ${canaryTail}`);
    ids.push((await run(admin, printer.id, server.id)).executionId);
    for (const id of ids) expect((await waitForTerminal(admin, id)).status).toBe('succeeded');

    // A dashboard viewer with a viewer key, and a refused one.
    const viewerKey = secrets.find((s) => s.kind === 'viewer API key')!.value;
    const viewer = await ViewerClient.connect(cp.url, viewerKey);
    expect(await viewer.subscribe(ids[0]!)).toEqual({ ok: true });
    await waitFor('the viewer got the backlog', () => viewer.bytes(ids[0]!).length > 0);
    viewer.close();
    await expect(ViewerClient.connect(cp.url, secrets.find((s) => s.kind === 'revoked API key')!.value)).rejects.toThrow('websocket error'); // refused on the upgrade request, before any packet
    // Wrong keys on the API: logged as refusals, not as keys.
    expect((await new Api(cp.url, secrets.find((s) => s.kind === 'revoked API key')!.value).get('/api/v1/me')).status).toBe(401);

    const dump = await dumpDatabase(db);
    const places = {
      'control plane logs': cp.proc.logs,
      'agent logs': agents.map((a) => a.proc.logs).join('\n'),
      [`database (${dump.how})`]: dump.text,
    };
    // The places are real: each holds what it should.
    expect(places['control plane logs']).toContain('script_execute');
    expect(places['agent logs']).toContain('connected');
    expect(dump.text).toContain(server.id);
    expect(dump.text.length).toBeGreaterThan(10_000);

    expect(dump.text.includes(canary)).toBe(false); // not in plain text: only as the bytes of the output
    expect(forms(canary).some((f) => dump.text.includes(f))).toBe(true);
    expect(forms(canary).some((f) => places['control plane logs'].includes(f))).toBe(false);

    const found: string[] = [];
    for (const [place, text] of Object.entries(places)) {
      for (const s of secrets) {
        for (const form of forms(s.value)) if (text.includes(form)) found.push(`${s.kind} in ${place}`);
      }
    }
    recordFigure('secrets', { secrets: secrets.length, kinds: [...new Set(secrets.map((s) => s.kind))], places: Object.keys(places), bytesSearched: Object.values(places).reduce((n, t) => n + t.length, 0), found });
    expect(found).toEqual([]);
  }, 120_000);
});

