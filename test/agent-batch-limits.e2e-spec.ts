import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { MAX_CHUNKS_PER_BATCH } from '@app/protocol';
import { createHash, randomBytes } from 'node:crypto';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getOutput, run } from './support/executions.js';
import { FakeAgent } from './support/fake-agent.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url });
  api = new Api(cp.url, cp.adminKey);
});

afterAll(async () => {
  await cp?.stop();
  await db?.drop();
});

describe('agent batches at the protocol limit', () => {
  // socket.io-parser refuses more than 10 binary attachments per packet unless told otherwise,
  // and the server then drops the agent: a fast script's batches have many more chunks.
  it(`stores a batch of ${MAX_CHUNKS_PER_BATCH} chunks in one message without dropping the agent`, async () => {
    const server = await createServer(api, 'batcher');
    const agent = await FakeAgent.connect(cp.url, server.agentToken);
    const script = await createScript(api, 'true', { name: 'many chunks' });
    const { executionId } = await run(api, script.id, server.id);
    await agent.waitStarted(executionId);
    const chunks = Array.from({ length: MAX_CHUNKS_PER_BATCH }, (_, i) => ({ stream: (i % 3 ? 'stdout' : 'stderr') as 'stdout' | 'stderr', data: randomBytes(100 + i) }));
    const acked = await agent.batch(executionId, chunks);
    expect(acked).toBe(MAX_CHUNKS_PER_BATCH - 1);
    expect(agent.disconnectReason).toBeNull();
    const out = await getOutput(api, executionId);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(sha(out.bytes)).toBe(sha(Buffer.concat(chunks.map((c) => c.data))));
    agent.socket.close();
  });
});
