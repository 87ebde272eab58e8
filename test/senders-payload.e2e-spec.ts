import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PAYLOAD_SINCE_PROTOCOL } from '@app/protocol';
import { sign as githubSign } from '@octokit/webhooks-methods';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type AgentProcess, startAgent } from './support/agent.js';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { FakeAgent } from './support/fake-agent.js';
import { createScript, createServer, getOutput, waitForStatus, waitForTerminal } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { TRIGGER_PATH } from './support/webhook-fixtures.js';

/**
 * The script sees the request when its webhook passes it (`passPayload`): a GitHub push signed by
 * GitHub's own code, run by the real agent (as root it runs scripts as devpilot-run, so the file
 * is that user's), copied by the script and compared byte for byte with what was sent.
 */
let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
let agent: AgentProcess;
let serverId: string;
let agentToken: string;
/** Where the scripts copy their payload file: writable by the user scripts run as. */
let copies: string;

// A marker no log may contain: the body is never logged.
const MARKER = `secret-body-${randomUUID()}`;
const PUSH = JSON.stringify({ ref: 'refs/heads/main', after: 'b'.repeat(40), repository: { full_name: 'acme/app' }, head_commit: { message: `ünïcode ✓ ${MARKER}` } });

const SCRIPT = () => `set -e
cp "$DEVPILOT_PAYLOAD_FILE" '${copies}'/"$DEVPILOT_EXECUTION_ID"
echo "file=$DEVPILOT_PAYLOAD_FILE"
echo "mode=$(stat -c %a "$DEVPILOT_PAYLOAD_FILE") owner=$(stat -c %U "$DEVPILOT_PAYLOAD_FILE")"
echo "event=$DEVPILOT_EVENT"
echo "delivery=$DEVPILOT_DELIVERY_ID"
echo "type=$DEVPILOT_CONTENT_TYPE"
echo "run=$DEVPILOT_TRIGGER $DEVPILOT_WEBHOOK_NAME $DEVPILOT_EXECUTION_ID"
`;

beforeAll(async () => {
  copies = mkdtempSync(path.join(os.tmpdir(), 'devpilot-payload-copies-'));
  chmodSync(copies, 0o777);
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url });
  api = new Api(cp.url, cp.adminKey);
  const server = await createServer(api, 'payload');
  serverId = server.id;
  agentToken = server.agentToken;
  agent = await startAgent({ url: cp.url, token: agentToken });
  await waitFor('the agent online', async () => (await api.get(`/api/v1/servers/${serverId}`)).body.status === 'online');
});

afterAll(async () => {
  await agent?.stop();
  await cp?.stop();
  await db?.drop();
  if (copies) rmSync(copies, { recursive: true, force: true });
});

async function githubHook(content: string, passPayload: boolean, name = 'deploy on push'): Promise<{ id: string; token: string; secret: string }> {
  const script = await createScript(api, content);
  const r = await api.post(`/api/v1/scripts/${script.id}/webhooks`, { name, serverId, signatureScheme: 'github', ...(passPayload ? { passPayload } : {}) });
  expect(r.status).toBe(201);
  expect(r.body.passPayload).toBe(passPayload);
  return { id: r.body.id, token: r.body.token, secret: r.body.hmacSecret };
}

/** A GitHub delivery as GitHub sends it, signed with @octokit/webhooks-methods. */
async function deliver(hook: { token: string; secret: string }, body: string, contentType: string, delivery: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${cp.url}${TRIGGER_PATH}/${hook.token}`, {
    method: 'POST',
    headers: {
      'content-type': contentType,
      'x-github-event': 'push',
      'x-github-delivery': delivery,
      'x-hub-signature-256': await githubSign(hook.secret, body),
      'user-agent': 'GitHub-Hookshot/044aadd',
      ...headers,
    },
    body,
  });
  return { status: res.status, body: (await res.json()) as any };
}

/** The lines `key=value` a run printed. */
function printed(output: string): Record<string, string> {
  return Object.fromEntries(output.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

async function payloadRows(executionId: string): Promise<number> {
  return (await db.query<{ n: string }>(`SELECT count(*) AS n FROM execution_payload WHERE execution_id = $1`, [executionId]))[0]!.n === '0' ? 0 : 1;
}

describe('passPayload with a real agent', () => {
  const sent = [
    { as: 'JSON', type: 'application/json', body: PUSH },
    { as: 'form-encoded', type: 'application/x-www-form-urlencoded', body: `payload=${encodeURIComponent(PUSH)}` },
  ];
  for (const { as, type, body } of sent) {
    it(`a GitHub push sent ${as} reaches the script byte for byte, in a 0600 file removed after the run`, async () => {
      const hook = await githubHook(SCRIPT(), true);
      const delivery = randomUUID();
      const r = await deliver(hook, body, type, delivery, { prefer: 'wait=30' });
      expect(r.status).toBe(200);
      expect(r.body.status).toBe('succeeded');
      const id = r.body.executionId as string;
      const out = printed(r.body.output as string);

      expect(readFileSync(path.join(copies, id))).toEqual(Buffer.from(body));
      expect(out.mode).toBe('600 owner=devpilot-run');
      expect(out.event).toBe('push');
      expect(out.delivery).toBe(delivery);
      expect(out.type).toBe(type);
      expect(out.run).toBe(`webhook deploy on push ${id}`);
      expect(out.file).toMatch(/^\/.+/);
      // The run's folder goes as the user who owns it, after the result.
      await waitFor('the payload file removed', () => Promise.resolve(!existsSync(out.file!)));
      expect(await payloadRows(id)).toBe(0);

      // Nowhere in the script's text, nor in any log.
      const exec = await api.get(`/api/v1/executions/${id}`);
      expect(JSON.stringify(exec.body)).not.toContain(MARKER);
      expect(cp.proc.logs).not.toContain(MARKER);
      expect(agent.proc.logs).not.toContain(MARKER);
    });
  }

  it('a body near the trigger’s limit (1 MiB by default) arrives whole', async () => {
    const hook = await githubHook(SCRIPT(), true, 'large');
    const big = JSON.stringify({ ref: 'refs/heads/main', blob: 'x'.repeat(1024 * 1024 - 200) });
    const r = await deliver(hook, big, 'application/json', randomUUID(), { prefer: 'wait=30' });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('succeeded');
    expect(readFileSync(path.join(copies, r.body.executionId as string)).equals(Buffer.from(big))).toBe(true);
    expect(await payloadRows(r.body.executionId as string)).toBe(0);
  });

  it('a webhook that does not pass the request gives none of its variables; every run still gets its own', async () => {
    const hook = await githubHook(
      'env | grep -E "^DEVPILOT_(PAYLOAD_FILE|EVENT|DELIVERY_ID|CONTENT_TYPE)=" | sed "s/^/leak=/" || true; echo "run=$DEVPILOT_TRIGGER $DEVPILOT_WEBHOOK_NAME $DEVPILOT_EXECUTION_ID"',
      false,
      'no payload',
    );
    const r = await deliver(hook, PUSH, 'application/json', randomUUID(), { prefer: 'wait=30' });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('succeeded');
    expect(r.body.output).not.toContain('leak=');
    expect(printed(r.body.output as string).run).toBe(`webhook no payload ${r.body.executionId as string}`);
    expect((await db.query(`SELECT 1 FROM execution_payload`)).length).toBe(0);
  });

  it('turning passPayload on by PATCH applies to the next call (the trigger does not keep the old setting)', async () => {
    const hook = await githubHook('test -n "$DEVPILOT_PAYLOAD_FILE" && echo "got=$(cat "$DEVPILOT_PAYLOAD_FILE")" || echo got=none', false, 'toggled');
    const before = await deliver(hook, PUSH, 'application/json', randomUUID(), { prefer: 'wait=30' });
    expect(printed(before.body.output as string).got).toBe('none');
    const patched = await api.patch(`/api/v1/webhooks/${hook.id}`, { passPayload: true });
    expect(patched.status).toBe(200);
    expect(patched.body.passPayload).toBe(true);
    const after = await deliver(hook, PUSH, 'application/json', randomUUID(), { prefer: 'wait=30' });
    expect(after.body.status).toBe('succeeded');
    expect(printed(after.body.output as string).got).toBe(PUSH);
    expect((await api.patch(`/api/v1/webhooks/${hook.id}`, { passPayload: 'yes' })).body.code).toBe('VALIDATION_ERROR');
  });

  it('a run queued while its agent is offline gets its payload when the agent connects; kept sealed until then, gone after', async () => {
    const hook = await githubHook(SCRIPT(), true, 'queued');
    await agent.stop();
    await waitFor('the agent offline', async () => (await api.get(`/api/v1/servers/${serverId}`)).body.status === 'offline');
    const delivery = randomUUID();
    const r = await deliver(hook, PUSH, 'application/json', delivery);
    expect(r.status).toBe(202);
    const id = r.body.executionId as string;
    expect((await api.get(`/api/v1/executions/${id}`)).body.status).toBe('queued');

    const [kept] = await db.query<{ body_encrypted: Buffer; event: string; delivery_id: string; content_type: string }>(
      `SELECT body_encrypted, event, delivery_id, content_type FROM execution_payload WHERE execution_id = $1`,
      [id],
    );
    expect(kept).toMatchObject({ event: 'push', delivery_id: delivery, content_type: 'application/json' });
    // Sealed: neither the body nor any part of it is stored in the clear.
    expect(kept!.body_encrypted.includes(Buffer.from(MARKER))).toBe(false);
    expect(kept!.body_encrypted.includes(Buffer.from('refs/heads/main'))).toBe(false);

    agent = await startAgent({ url: cp.url, token: agentToken });
    const done = await waitForTerminal(api, id);
    expect(done.status).toBe('succeeded');
    const out = printed((await getOutput(api, id)).bytes.toString());
    expect(readFileSync(path.join(copies, id))).toEqual(Buffer.from(PUSH));
    expect(out.mode).toBe('600 owner=devpilot-run');
    expect(out.delivery).toBe(delivery);
    expect(await payloadRows(id)).toBe(0);
  });

  it('a run that is to get the request is never sent to an agent too old to give it (protocol 3): it fails, saying so', async () => {
    const old = await createServer(api, 'old-agent');
    const fake = await FakeAgent.connect(cp.url, old.agentToken, PAYLOAD_SINCE_PROTOCOL - 1);
    try {
      const script = await createScript(api, 'echo RAN');
      const r = await api.post(`/api/v1/scripts/${script.id}/webhooks`, { name: 'to an old agent', serverId: old.id, signatureScheme: 'github', passPayload: true });
      expect(r.status).toBe(201);
      const call = await deliver({ token: r.body.token, secret: r.body.hmacSecret }, PUSH, 'application/json', randomUUID());
      expect(call.status).toBe(202);
      const done = await waitForTerminal(api, call.body.executionId as string);
      expect(done.status).toBe('failed');
      expect(done.error).toContain('too old to give it');
      expect(fake.started.map((s) => s.executionId)).not.toContain(call.body.executionId);
      expect(await payloadRows(call.body.executionId as string)).toBe(0);
    } finally {
      fake.socket.disconnect();
    }
  });

  it('a cancelled run loses its payload too, and its file', async () => {
    const hook = await githubHook('echo "file=$DEVPILOT_PAYLOAD_FILE"; sleep 60', true, 'cancelled');
    const r = await deliver(hook, PUSH, 'application/json', randomUUID());
    expect(r.status).toBe(202);
    const id = r.body.executionId as string;
    await waitForStatus(api, id, 'running');
    let file = '';
    await waitFor('the script printed its file', async () => {
      file = printed((await getOutput(api, id)).bytes.toString()).file ?? '';
      return file !== '';
    });
    expect(existsSync(file)).toBe(true);
    expect(await payloadRows(id)).toBe(1);
    expect((await api.post(`/api/v1/executions/${id}/cancel`)).status).toBe(202);
    expect((await waitForTerminal(api, id)).status).toBe('cancelled');
    expect(await payloadRows(id)).toBe(0);
    await waitFor('the payload file removed', () => Promise.resolve(!existsSync(file)));
  });

  it('the file of a run goes when its agent shuts down in the middle of it', async () => {
    const hook = await githubHook('echo "file=$DEVPILOT_PAYLOAD_FILE"; sleep 60', true, 'shutdown');
    const r = await deliver(hook, PUSH, 'application/json', randomUUID());
    expect(r.status).toBe(202);
    const id = r.body.executionId as string;
    let file = '';
    await waitFor('the script printed its file', async () => {
      file = printed((await getOutput(api, id)).bytes.toString()).file ?? '';
      return file !== '';
    });
    expect(existsSync(file)).toBe(true);
    await agent.stop();
    expect(existsSync(file)).toBe(false);
    expect((await waitForTerminal(api, id)).status).toBe('cancelled');
    expect(await payloadRows(id)).toBe(0);
    agent = await startAgent({ url: cp.url, token: agentToken });
  });
});
