import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { sign as githubSign } from '@octokit/webhooks-methods';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { callTrigger, createWebhook, serverAndScript, TRIGGER_PATH, type TriggerResponse } from './support/webhook-fixtures.js';

/**
 * Callers as they really send: the token in the path or a header, each signature scheme signed
 * with the sender's own published code (GitHub's @octokit/webhooks-methods, the Standard Webhooks
 * reference package, Slack's documented v0 algorithm written out here), stale timestamps, and
 * deliveries seen before. Against the real control plane and PostgreSQL.
 */
let db: TestDatabase;
let cp: ControlPlane;
let owner: Api;
let serverId: string;
let scriptId: string;
/** Every token and secret this file used: none may appear in the control plane's output. */
const secretsSeen: string[] = [];

const PUSH = JSON.stringify({ ref: 'refs/heads/main', after: 'a'.repeat(40), repository: { full_name: 'acme/app' }, pusher: { name: 'octo' } });

async function webhook(body: { signatureScheme?: string; hmacSecret?: string; allowedIps?: string[]; concurrency?: string; cooldownSeconds?: number } = {}) {
  const w = await createWebhook(owner, scriptId, { serverId, ...body });
  secretsSeen.push(w.token);
  if (typeof w.hmacSecret === 'string') secretsSeen.push(w.hmacSecret);
  return w;
}

/** POSTs to the path form: `/script_execute/{token}`. */
function callPath(token: string, body: string | Buffer | undefined, headers: Record<string, string> = {}): Promise<TriggerResponse> {
  return callTrigger(cp.url, body, headers, token);
}

const executionsOf = async (webhookId: string) => (await owner.get(`/api/v1/executions?webhookId=${webhookId}&limit=100`)).body.items as { id: string }[];

/** Slack's documented request signing: v0=hex(HMAC-SHA256(signing secret, "v0:{timestamp}:{body}")). */
function slackHeaders(secret: string, body: string, ts = Math.floor(Date.now() / 1000)): Record<string, string> {
  const sig = createHmac('sha256', secret).update(`v0:${ts}:${body}`).digest('hex');
  return { 'x-slack-request-timestamp': String(ts), 'x-slack-signature': `v0=${sig}` };
}

/** Standard Webhooks headers, signed by the reference package. */
function standardHeaders(secret: string, body: string, at = new Date(), id = `msg_${randomUUID()}`): Record<string, string> {
  const signature = new StandardWebhook(secret).sign(id, at, body);
  return { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signature };
}

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_LOG_LEVEL: 'debug', DEVPILOT_PRUNE_INTERVAL_SECONDS: '1' } });
  owner = new Api(cp.url, cp.adminKey);
  ({ serverId, scriptId } = await serverAndScript(owner, 'senders'));
});

afterAll(async () => {
  await cp?.stop();
  await db?.drop();
});

describe('where the token may be', () => {
  it('the path, X-Webhook-Token and Authorization: Bearer, with any body', async () => {
    const w = await webhook();
    const form = 'payload=%7B%22ref%22%3A%22main%22%7D';
    const formType = { 'content-type': 'application/x-www-form-urlencoded' };
    expect((await callPath(w.token, form, formType)).status).toBe(202);
    expect((await callPath(w.token, undefined)).status).toBe(202);
    expect((await callTrigger(cp.url, PUSH, { 'content-type': 'application/json', 'x-webhook-token': w.token })).status).toBe(202);
    expect((await callTrigger(cp.url, 'plain text', { 'content-type': 'text/plain', authorization: `Bearer ${w.token}` })).status).toBe(202);
    // A token in the header wins over a body that has a `token` of its own (never read then).
    expect((await callTrigger(cp.url, JSON.stringify({ token: 'not-this' }), { 'content-type': 'application/json', 'x-webhook-token': w.token })).status).toBe(202);
    expect((await owner.get(`/api/v1/webhooks/${w.id}`)).body.callCount).toBe(5);
  });

  it('two different tokens: 400; the query string is never read; an unknown path token: 404', async () => {
    const w = await webhook();
    const other = await webhook();
    const two = await callPath(w.token, undefined, { 'x-webhook-token': other.token });
    expect(two.status).toBe(400);
    expect(two.body.code).toBe('VALIDATION_ERROR');
    const same = await callPath(w.token, undefined, { authorization: `Bearer ${w.token}` });
    expect(same.status).toBe(202);
    const query = await fetch(`${cp.url}${TRIGGER_PATH}?token=${w.token}`, { method: 'POST' });
    expect(query.status).toBe(400);
    const unknown = await callPath(randomBytes(32).toString('hex'), undefined);
    expect(unknown.status).toBe(404);
    expect((await unknown.body).code).toBe('INVALID_TOKEN');
    // A form body with the token in it is not JSON: still 400, as before.
    const formBody = await callTrigger(cp.url, `token=${w.token}`, { 'content-type': 'application/x-www-form-urlencoded' });
    expect(formBody.status).toBe(400);
  });

  it('the path form answers GET with 405, and a body over the limit with 413', async () => {
    const w = await webhook();
    const get = await fetch(`${cp.url}${TRIGGER_PATH}/${w.token}`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    const big = await callPath(w.token, Buffer.alloc(1024 * 1024 + 1, 0x61), { 'content-type': 'application/octet-stream' });
    expect(big.status).toBe(413);
    expect(big.body.code).toBe('PAYLOAD_TOO_LARGE');
  });
});

describe('creating webhooks with a scheme', () => {
  it('github, gitlab and standard-webhooks generate a secret, shown once; slack needs one', async () => {
    for (const scheme of ['github', 'gitlab', 'standard-webhooks']) {
      const w = await webhook({ signatureScheme: scheme });
      expect(w).toMatchObject({ signatureScheme: scheme, hmacEnabled: true, hmacSecret: expect.any(String) });
      if (scheme === 'standard-webhooks') expect(w.hmacSecret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
      const again = await owner.get(`/api/v1/webhooks/${w.id}`);
      expect(again.body.signatureScheme).toBe(scheme);
      expect(again.body).not.toHaveProperty('hmacSecret');
      expect(JSON.stringify(again.body)).not.toContain(w.hmacSecret);
    }
    const slack = await owner.post(`/api/v1/scripts/${scriptId}/webhooks`, { name: 's', serverId, signatureScheme: 'slack' });
    expect(slack.status).toBe(400);
    expect(slack.body.code).toBe('VALIDATION_ERROR');
    const bad = await owner.post(`/api/v1/scripts/${scriptId}/webhooks`, { name: 's', serverId, signatureScheme: 'standard-webhooks', hmacSecret: 'not base64!' });
    expect(bad.status).toBe(400);
    const unknown = await owner.post(`/api/v1/scripts/${scriptId}/webhooks`, { name: 's', serverId, signatureScheme: 'bitbucket' });
    expect(unknown.status).toBe(400);
    const plain = await webhook();
    expect(plain).toMatchObject({ signatureScheme: 'devpilot', hmacEnabled: false });
    expect(plain).not.toHaveProperty('hmacSecret');
  });

  it('the scheme is immutable: PATCH answers 400 IMMUTABLE_FIELD', async () => {
    const w = await webhook({ signatureScheme: 'github' });
    const r = await owner.patch(`/api/v1/webhooks/${w.id}`, { signatureScheme: 'devpilot' });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('IMMUTABLE_FIELD');
    expect((await owner.get(`/api/v1/webhooks/${w.id}`)).body.signatureScheme).toBe('github');
  });
});

describe('github (signed by @octokit/webhooks-methods)', () => {
  it('accepts JSON and form-encoded pushes; refuses a wrong secret, an altered byte, a missing header', async () => {
    const w = await webhook({ signatureScheme: 'github' });
    const secret = w.hmacSecret as string;
    const json = await callPath(w.token, PUSH, { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': await githubSign(secret, PUSH) });
    expect(json.status).toBe(202);
    const form = `payload=${encodeURIComponent(PUSH)}`;
    const formed = await callPath(w.token, form, { 'content-type': 'application/x-www-form-urlencoded', 'x-hub-signature-256': await githubSign(secret, form) });
    expect(formed.status).toBe(202);

    const wrong = await callPath(w.token, PUSH, { 'content-type': 'application/json', 'x-hub-signature-256': await githubSign('not the secret', PUSH) });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toEqual({ statusCode: 401, code: 'INVALID_SIGNATURE', message: 'Invalid HMAC signature' });
    const altered = PUSH.replace('main', 'maim');
    const changed = await callPath(w.token, altered, { 'content-type': 'application/json', 'x-hub-signature-256': await githubSign(secret, PUSH) });
    expect(changed.status).toBe(401);
    expect(changed.body.code).toBe('INVALID_SIGNATURE');
    const missing = await callPath(w.token, PUSH, { 'content-type': 'application/json' });
    expect(missing.status).toBe(401);
    // Our own header does not pass for a github webhook.
    const ours = await callPath(w.token, PUSH, { 'content-type': 'application/json', 'x-webhook-signature': createHmac('sha256', secret).update(PUSH).digest('hex') });
    expect(ours.status).toBe(401);
    expect((await owner.get(`/api/v1/webhooks/${w.id}`)).body.callCount).toBe(2);
  });
});

describe('gitlab', () => {
  it('X-Gitlab-Token equal to the secret passes; anything else is 401', async () => {
    const w = await webhook({ signatureScheme: 'gitlab' });
    const ok = await callPath(w.token, PUSH, { 'content-type': 'application/json', 'x-gitlab-event': 'Push Hook', 'x-gitlab-token': w.hmacSecret as string });
    expect(ok.status).toBe(202);
    for (const given of [undefined, `${w.hmacSecret as string}x`, (w.hmacSecret as string).slice(1), 'nope']) {
      const r = await callPath(w.token, PUSH, { 'content-type': 'application/json', ...(given === undefined ? {} : { 'x-gitlab-token': given }) });
      expect({ given, status: r.status, code: r.body.code }).toEqual({ given, status: 401, code: 'INVALID_SIGNATURE' });
    }
  });
});

describe('standard-webhooks (signed by the reference package)', () => {
  it('accepts a signed call, several signatures in one header; refuses wrong secret, altered byte, stale timestamp', async () => {
    const w = await webhook({ signatureScheme: 'standard-webhooks' });
    const secret = w.hmacSecret as string;
    const body = JSON.stringify({ type: 'invoice.paid', data: { id: 'in_1' } });
    const json = { 'content-type': 'application/json' };
    expect((await callPath(w.token, body, { ...json, ...standardHeaders(secret, body) })).status).toBe(202);

    // A sender rotating its secret sends two signatures: any valid one passes.
    const other = `whsec_${randomBytes(32).toString('base64')}`;
    const h = standardHeaders(secret, body);
    const rotated = new StandardWebhook(other).sign(h['webhook-id']!, new Date(Number(h['webhook-timestamp']) * 1000), body);
    expect((await callPath(w.token, body, { ...json, ...h, 'webhook-signature': `${rotated} ${h['webhook-signature']}` })).status).toBe(202);

    const wrong = await callPath(w.token, body, { ...json, ...standardHeaders(other, body) });
    expect(wrong.status).toBe(401);
    expect(wrong.body.code).toBe('INVALID_SIGNATURE');
    const altered = await callPath(w.token, body.replace('in_1', 'in_2'), { ...json, ...standardHeaders(secret, body) });
    expect(altered.status).toBe(401);
    expect(altered.body.code).toBe('INVALID_SIGNATURE');
    for (const skew of [-301_000, 301_000, -3600_000]) {
      const stale = await callPath(w.token, body, { ...json, ...standardHeaders(secret, body, new Date(Date.now() + skew)) });
      expect(stale.status).toBe(401);
      expect(stale.body).toEqual({ statusCode: 401, code: 'STALE_SIGNATURE', message: 'Signature timestamp outside the tolerance' });
    }
    // Within the tolerance it passes.
    expect((await callPath(w.token, body, { ...json, ...standardHeaders(secret, body, new Date(Date.now() - 200_000)) })).status).toBe(202);
  });

  it('an owner-given whsec_ secret works with the reference signer', async () => {
    const secret = `whsec_${randomBytes(24).toString('base64')}`;
    secretsSeen.push(secret);
    const w = await webhook({ signatureScheme: 'standard-webhooks', hmacSecret: secret });
    expect(w).not.toHaveProperty('hmacSecret');
    expect((await callPath(w.token, '{}', { 'content-type': 'application/json', ...standardHeaders(secret, '{}') })).status).toBe(202);
  });
});

describe('slack (v0 signing, written out from its documentation)', () => {
  const SIGNING = `slack-${randomBytes(16).toString('hex')}`;

  it('accepts a signed slash command (form-encoded); refuses wrong secret, altered byte, stale timestamp', async () => {
    secretsSeen.push(SIGNING);
    const w = await webhook({ signatureScheme: 'slack', hmacSecret: SIGNING });
    const form = 'token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T0001&command=%2Fdeploy&text=main&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1234';
    const type = { 'content-type': 'application/x-www-form-urlencoded' };
    expect((await callPath(w.token, form, { ...type, ...slackHeaders(SIGNING, form) })).status).toBe(202);
    const wrong = await callPath(w.token, form, { ...type, ...slackHeaders('other', form) });
    expect(wrong.status).toBe(401);
    expect(wrong.body.code).toBe('INVALID_SIGNATURE');
    const altered = await callPath(w.token, form.replace('main', 'mainx'), { ...type, ...slackHeaders(SIGNING, form) });
    expect(altered.status).toBe(401);
    const stale = await callPath(w.token, form, { ...type, ...slackHeaders(SIGNING, form, Math.floor(Date.now() / 1000) - 301) });
    expect(stale.status).toBe(401);
    expect(stale.body.code).toBe('STALE_SIGNATURE');
    const noTimestamp = await callPath(w.token, form, { ...type, 'x-slack-signature': slackHeaders(SIGNING, form)['x-slack-signature']! });
    expect(noTimestamp.status).toBe(401);
    expect(noTimestamp.body.code).toBe('INVALID_SIGNATURE');
  });

  it("answers Slack's url_verification with its challenge and runs nothing", async () => {
    const w = await webhook({ signatureScheme: 'slack', hmacSecret: SIGNING });
    const body = JSON.stringify({ token: 'Jhj5dZrVaK7ZwHHjRyZWjbDl', challenge: '3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P', type: 'url_verification' });
    const r = await callPath(w.token, body, { 'content-type': 'application/json', ...slackHeaders(SIGNING, body) });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ challenge: '3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P' });
    // Unsigned, the challenge is not answered.
    expect((await callPath(w.token, body, { 'content-type': 'application/json' })).status).toBe(401);
    expect(await executionsOf(w.id)).toHaveLength(0);
  });
});

describe('deliveries seen before', () => {
  it('a replayed GitHub delivery answers 200 duplicate with the first execution; nothing runs again', async () => {
    const w = await webhook({ signatureScheme: 'github' });
    const headers = { 'content-type': 'application/json', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': await githubSign(w.hmacSecret as string, PUSH) };
    const first = await callPath(w.token, PUSH, headers);
    expect(first.status).toBe(202);
    const replay = await callPath(w.token, PUSH, headers);
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ executionId: first.body.executionId, duplicate: true, links: first.body.links });
    expect(replay.body.status).toEqual(expect.any(String));
    // Another delivery id runs.
    const next = await callPath(w.token, PUSH, { ...headers, 'x-github-delivery': randomUUID() });
    expect(next.status).toBe(202);
    expect(await executionsOf(w.id)).toHaveLength(2);
    expect((await owner.get(`/api/v1/webhooks/${w.id}`)).body.callCount).toBe(2);
    const log = (await owner.get(`/api/v1/webhooks/${w.id}/deliveries`)).body.items as { code: string; executionId: string | null }[];
    expect(log).toContainEqual(expect.objectContaining({ code: 'DUPLICATE', executionId: first.body.executionId }));
  });

  it('Idempotency-Key, webhook-id, X-Gitlab-Event-UUID and Slack timestamp+signature are delivery ids; ids are per webhook', async () => {
    const a = await webhook();
    const b = await webhook();
    const key = { 'idempotency-key': `deploy-${randomUUID()}` };
    const ra = await callPath(a.token, undefined, key);
    expect(ra.status).toBe(202);
    expect((await callPath(a.token, undefined, key)).status).toBe(200);
    expect((await callPath(b.token, undefined, key)).status).toBe(202);

    const sw = await webhook({ signatureScheme: 'standard-webhooks' });
    const h = standardHeaders(sw.hmacSecret as string, '{}');
    expect((await callPath(sw.token, '{}', { 'content-type': 'application/json', ...h })).status).toBe(202);
    expect((await callPath(sw.token, '{}', { 'content-type': 'application/json', ...h })).body.duplicate).toBe(true);

    const gl = await webhook({ signatureScheme: 'gitlab' });
    const gh = { 'x-gitlab-token': gl.hmacSecret as string, 'x-gitlab-event-uuid': randomUUID() };
    expect((await callPath(gl.token, PUSH, gh)).status).toBe(202);
    expect((await callPath(gl.token, PUSH, gh)).status).toBe(200);

    const SIGNING = `slack-${randomBytes(16).toString('hex')}`;
    secretsSeen.push(SIGNING);
    const sl = await webhook({ signatureScheme: 'slack', hmacSecret: SIGNING });
    const sh = { 'content-type': 'application/x-www-form-urlencoded', ...slackHeaders(SIGNING, 'text=hi') };
    expect((await callPath(sl.token, 'text=hi', sh)).status).toBe(202);
    expect((await callPath(sl.token, 'text=hi', sh)).status).toBe(200);
  });

  it('a rejected call is not remembered: after a wrong signature, the same id with the right one runs', async () => {
    const w = await webhook({ signatureScheme: 'github' });
    const id = randomUUID();
    const bad = await callPath(w.token, PUSH, { 'x-github-delivery': id, 'x-hub-signature-256': await githubSign('wrong', PUSH) });
    expect(bad.status).toBe(401);
    const good = await callPath(w.token, PUSH, { 'x-github-delivery': id, 'x-hub-signature-256': await githubSign(w.hmacSecret as string, PUSH) });
    expect(good.status).toBe(202);
  });

  it('an expired id runs again, and the pruning job forgets it', async () => {
    const w = await webhook();
    const key = { 'idempotency-key': `expiring-${randomUUID()}` };
    expect((await callPath(w.token, undefined, key)).status).toBe(202);
    expect((await callPath(w.token, undefined, key)).status).toBe(200);
    // As if 24 h had passed.
    await db.query(`UPDATE webhook_delivery_id SET expires_at = now() - interval '1 second' WHERE webhook_id = $1`, [w.id]);
    const again = await callPath(w.token, undefined, key);
    expect(again.status).toBe(202);
    expect(await executionsOf(w.id)).toHaveLength(2);
    await db.query(`UPDATE webhook_delivery_id SET expires_at = now() - interval '1 second' WHERE webhook_id = $1`, [w.id]);
    await waitFor('the expired id pruned', async () => ((await db.query(`SELECT 1 FROM webhook_delivery_id WHERE webhook_id = $1`, [w.id])) as unknown[]).length === 0);
  });

  it('50 concurrent identical deliveries create exactly one execution', async () => {
    const w = await webhook({ signatureScheme: 'github' });
    const headers = { 'content-type': 'application/json', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': await githubSign(w.hmacSecret as string, PUSH) };
    const answers = await Promise.all(Array.from({ length: 50 }, () => callPath(w.token, PUSH, headers)));
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(49);
    const ids = new Set(answers.map((r) => r.body.executionId as string));
    expect(ids.size).toBe(1);
    expect(await executionsOf(w.id)).toHaveLength(1);
    expect((await owner.get(`/api/v1/webhooks/${w.id}`)).body.callCount).toBe(1);
  });
});

describe('concurrency policy and cooldown (no agent: runs stay queued, i.e. active)', () => {
  it('skip: of 20 concurrent calls one runs, the others answer 200 skipped naming it', async () => {
    const w = await webhook({ concurrency: 'skip' });
    const answers = await Promise.all(Array.from({ length: 20 }, () => callPath(w.token, undefined)));
    const accepted = answers.filter((r) => r.status === 202);
    expect(accepted).toHaveLength(1);
    const id = accepted[0]!.body.executionId as string;
    for (const r of answers.filter((a) => a.status !== 202)) {
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ status: 'skipped', reason: 'ALREADY_RUNNING', executionId: id });
    }
    expect(await executionsOf(w.id)).toHaveLength(1);
    // Once it ended, the next call runs.
    expect((await owner.post(`/api/v1/executions/${id}/cancel`)).status).toBe(202);
    expect((await callPath(w.token, undefined)).status).toBe(202);
  });

  it('cooldown: of 20 concurrent calls one runs, the others answer 200 skipped COOLDOWN naming it', async () => {
    const w = await webhook({ cooldownSeconds: 3600 });
    const answers = await Promise.all(Array.from({ length: 20 }, () => callPath(w.token, undefined)));
    const accepted = answers.filter((r) => r.status === 202);
    expect(accepted).toHaveLength(1);
    for (const r of answers.filter((a) => a.status !== 202)) {
      expect(r.body).toEqual({ status: 'skipped', reason: 'COOLDOWN', executionId: accepted[0]!.body.executionId });
    }
    // Ending the run does not end the cooldown.
    await owner.post(`/api/v1/executions/${accepted[0]!.body.executionId as string}/cancel`);
    expect((await callPath(w.token, undefined)).body.reason).toBe('COOLDOWN');
    // A shorter cooldown (editable) lets the next call run.
    expect((await owner.patch(`/api/v1/webhooks/${w.id}`, { cooldownSeconds: 0 })).body.cooldownSeconds).toBe(0);
    expect((await callPath(w.token, undefined)).status).toBe(202);
  });

  it('replace: 10 concurrent calls all run in turn; each earlier one is cancelled naming a later one; one stays', async () => {
    const w = await webhook({ concurrency: 'replace' });
    const answers = await Promise.all(Array.from({ length: 10 }, () => callPath(w.token, undefined)));
    expect(answers.map((r) => r.status)).toEqual(Array(10).fill(202));
    const ids = answers.map((r) => r.body.executionId as string);
    const runs = await Promise.all(ids.map(async (id) => (await owner.get(`/api/v1/executions/${id}`)).body));
    const active = runs.filter((r) => r.status === 'queued');
    expect(active).toHaveLength(1);
    const cancelled = runs.filter((r) => r.status === 'cancelled');
    expect(cancelled).toHaveLength(9);
    for (const r of cancelled) {
      const by = /replaced by execution ([0-9a-f-]{36})/.exec(r.error as string)?.[1];
      expect(ids).toContain(by);
      expect(by).not.toBe(r.id);
    }
  });

  it('the policy is editable and validated; a duplicate is answered before the policy', async () => {
    const w = await webhook({ concurrency: 'skip' });
    for (const body of [{ concurrency: 'queue-ish' }, { cooldownSeconds: -1 }, { cooldownSeconds: 86401 }, { cooldownSeconds: 1.5 }]) {
      expect((await owner.patch(`/api/v1/webhooks/${w.id}`, body)).status).toBe(400);
    }
    const key = { 'idempotency-key': randomUUID() };
    const first = await callPath(w.token, undefined, key);
    expect(first.status).toBe(202);
    const again = await callPath(w.token, undefined, key);
    expect(again.body).toMatchObject({ duplicate: true, executionId: first.body.executionId });
    expect((await callPath(w.token, undefined)).body).toMatchObject({ status: 'skipped', reason: 'ALREADY_RUNNING' });
    const edited = await owner.patch(`/api/v1/webhooks/${w.id}`, { concurrency: 'parallel' });
    expect(edited.body.concurrency).toBe('parallel');
    expect((await callPath(w.token, undefined)).status).toBe(202);
  });
});

describe('logs', () => {
  it('no token or secret appears in the control plane output (the path form is redacted)', async () => {
    const w = await webhook();
    expect((await callPath(w.token, undefined)).status).toBe(202);
    const logs = cp.proc.logs;
    expect(logs).toContain('script_execute/[redacted]');
    for (const secret of secretsSeen) expect(logs).not.toContain(secret);
  });
});
