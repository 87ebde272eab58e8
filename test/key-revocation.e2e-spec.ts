// Deleting an API key closes everything it holds open at once (feed sockets and SSE streams), and
// SSE streams count against the same per-key connection limit as feed sockets.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, readEvents, run } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { ProtocolAgent } from './support/protocol-agent.js';
import { ViewerClient } from './support/viewer.js';

const PER_KEY = 3;
let db: TestDatabase;
let cp: ControlPlane;
let owner: Api;
let agent: ProtocolAgent;
let executionId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_VIEWER_CONNECTIONS_PER_KEY: String(PER_KEY) } });
  owner = new Api(cp.url, cp.adminKey);
  const server = await createServer(owner, 'revocation');
  // An agent that accepts the start and never finishes: the run stays open, and so do its streams.
  agent = await ProtocolAgent.connect(cp.url, server.agentToken);
  const script = await createScript(owner, 'sleep 600');
  executionId = (await run(owner, script.id, server.id)).executionId;
  await agent.waitForStart(executionId);
});

afterAll(async () => {
  agent?.close();
  await cp?.stop();
  await db?.drop();
});

async function viewerKey(name: string): Promise<Api> {
  const k = await owner.post('/api/v1/api-keys', { name, role: 'viewer' });
  expect(k.status).toBe(201);
  return Object.assign(new Api(cp.url, k.body.key), { id: k.body.id as string });
}

/** An SSE stream held open; `settled` says how it ended (closed by the server, or still open at the deadline). */
function openStream(api: Api) {
  let opened = false;
  const settled = readEvents(api, executionId, { timeoutMs: 20_000, onOpen: () => (opened = true) }).then(
    (r) => (r.status !== 200 ? `refused ${r.status}` : r.ended ? 'closed' : 'still open at the deadline'),
    () => 'closed',
  );
  return { settled, opened: () => opened };
}

describe('a deleted API key', () => {
  it('loses its feed sockets and SSE streams at once; other keys keep theirs', async () => {
    const doomed = await viewerKey('doomed');
    const kept = await viewerKey('kept');
    const socket = await ViewerClient.connect(cp.url, doomed.key);
    expect(await socket.subscribe(executionId)).toEqual({ ok: true });
    const stream = openStream(doomed);
    const other = await ViewerClient.connect(cp.url, kept.key);
    await waitFor('the stream open', () => stream.opened());

    const gone = new Promise<string>((resolve) => socket.socket.once('disconnect', (reason) => resolve(reason)));
    expect((await owner.delete(`/api/v1/api-keys/${(doomed as Api & { id: string }).id}`)).status).toBe(204);
    expect(await gone).toBe('io server disconnect');
    expect(await stream.settled).toBe('closed');
    expect(other.socket.connected).toBe(true);
    // Refused on the upgrade request, before any packet.
    await expect(ViewerClient.connect(cp.url, doomed.key)).rejects.toThrow('websocket error');
    other.close();
  });
});

describe('connections per key', () => {
  it('counts SSE streams with feed sockets against one limit', async () => {
    const api = await viewerKey('capped');
    const sockets = [await ViewerClient.connect(cp.url, api.key), await ViewerClient.connect(cp.url, api.key)];
    const stream = openStream(api);
    await waitFor('the stream open', () => stream.opened());
    const refused = await api.get(`/api/v1/executions/${executionId}/events`);
    expect([refused.status, refused.body.code]).toEqual([429, 'TOO_MANY_CONNECTIONS']);
    await expect(ViewerClient.connect(cp.url, api.key)).rejects.toThrow(/too many connections/);
    // A place freed is a place to take.
    sockets.pop()!.close();
    await waitFor('a place free again', async () => {
      try {
        sockets.push(await ViewerClient.connect(cp.url, api.key));
        return true;
      } catch {
        return undefined;
      }
    });
    for (const s of sockets) s.close();
  });
});
