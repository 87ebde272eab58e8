import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { callTrigger, createWebhook, serverAndScript, TRIGGER_PATH, triggerWith } from './support/webhook-fixtures.js';

/**
 * The request log of the real app at debug, so that every request has its line: the trigger's
 * calls are at debug (the delivery log records each of them), the management API's at info, and
 * no token reaches a line in any of the forms a caller may send it.
 */
let db: TestDatabase;
let cp: ControlPlane;
let owner: Api;
let token: string;

interface RequestLine {
  level: number;
  msg: string;
  req: { id: string; method: string; url: string };
  res?: { statusCode: number };
}

/** The "request completed" (or errored) line of the request with this id, once it is written. */
function lineOf(id: string): Promise<RequestLine> {
  return waitFor(`the request line of ${id}`, () =>
    cp.proc.logs
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Partial<RequestLine>)
      .find((l): l is RequestLine => l.req?.id === id && l.res !== undefined),
  );
}

const requestId = (name: string) => `${name}-${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_LOG_LEVEL: 'debug' } });
  owner = new Api(cp.url, cp.adminKey);
  const { serverId, scriptId } = await serverAndScript(owner, 'logging');
  token = (await createWebhook(owner, scriptId, { serverId })).token;
});

afterAll(async () => {
  await cp?.stop();
  await db?.drop();
});

describe('request log lines', () => {
  it('writes an accepted trigger call at debug, with its URL', async () => {
    const id = requestId('trigger-ok');
    const r = await triggerWith(cp.url, token, { 'x-request-id': id });
    expect(r.status).toBe(202);
    const line = await lineOf(id);
    expect(line.level).toBe(20);
    expect(line.req.url).toBe(TRIGGER_PATH);
    expect(line.res?.statusCode).toBe(202);
  });

  it('writes a refused trigger call at debug too', async () => {
    const id = requestId('trigger-unknown');
    const r = await triggerWith(cp.url, randomBytes(32).toString('hex'), { 'x-request-id': id });
    expect(r.status).toBe(404);
    expect((await lineOf(id)).level).toBe(20);
  });

  it('writes management calls at info', async () => {
    const id = requestId('mgmt');
    const r = await owner.request('GET', '/api/v1/me', undefined, { 'x-request-id': id });
    expect(r.status).toBe(200);
    const line = await lineOf(id);
    expect(line.level).toBe(30);
    expect(line.req.url).toBe('/api/v1/me');
  });

  it('redacts a token sent in the path, in the query, or on a mistyped path', async () => {
    const inPath = requestId('path-token');
    const r1 = await fetch(`${cp.url}${TRIGGER_PATH}/${token}`, { method: 'POST', headers: { 'x-request-id': inPath } });
    expect(r1.status).toBeLessThan(500);
    const l1 = await lineOf(inPath);
    expect(l1.req.url).toBe(`${TRIGGER_PATH}/[redacted]`);
    expect(l1.level).toBe(20);

    const inQuery = requestId('query-token');
    const r2 = await fetch(`${cp.url}${TRIGGER_PATH}?token=${token}`, { method: 'POST', headers: { 'x-request-id': inQuery } });
    expect(r2.status).toBe(400);
    expect((await lineOf(inQuery)).req.url).toBe(`${TRIGGER_PATH}?[redacted]`);

    const mistyped = requestId('mistyped');
    const r3 = await fetch(`${cp.url}/api/v1/webhook/script_execute/${token}`, { method: 'POST', headers: { 'x-request-id': mistyped } });
    expect(r3.status).toBe(404);
    const l3 = await lineOf(mistyped);
    expect(l3.level).toBe(30);
    expect(l3.req.url).toBe('/api/v1/webhook/script_execute/[redacted]');
  });

  it('never writes the token, whichever header carried it', async () => {
    const id = requestId('header-token');
    await callTrigger(cp.url, '{}', { 'content-type': 'application/json', 'x-webhook-token': token, authorization: `Bearer ${token}`, 'x-request-id': id });
    await lineOf(id);
    expect(cp.proc.logs).not.toContain(token);
    expect(cp.proc.logs).not.toContain(cp.adminKey);
  });
});
