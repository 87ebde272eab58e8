// An agent that ignores the script's limits (a tenant's own, hostile agent): the control plane
// stores at most maxOutputBytes, ends the run past its timeout whatever the agent says, and refuses
// exit codes, signals and error texts no real process could produce.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { createScript, createServer, getExecution, getOutput, run, waitForStatus } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { ProtocolAgent } from './support/protocol-agent.js';

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
let agent: ProtocolAgent;
let serverId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_SWEEP_INTERVAL_MS: '250', DEVPILOT_RUN_TIMEOUT_GRACE_SECONDS: '1' } });
  api = new Api(cp.url, cp.adminKey);
  const server = await createServer(api, 'hostile-limits');
  serverId = server.id;
  agent = await ProtocolAgent.connect(cp.url, server.agentToken);
});

afterAll(async () => {
  agent?.close();
  await cp?.stop();
  await db?.drop();
});

describe("the control plane enforces a script's limits itself", () => {
  it('stores at most maxOutputBytes of what the agent sends, and says the output was cut', async () => {
    const script = await createScript(api, 'yes', { maxOutputBytes: 1000, timeoutSeconds: 60 });
    const { executionId } = await run(api, script.id, serverId);
    await agent.waitForStart(executionId);
    const chunk = Buffer.alloc(256 * 1024, 'x');
    for (let seq = 0; seq < 8; seq++) expect(await agent.output(executionId, [{ seq, stream: 'stdout', data: chunk }])).toEqual({ ackedSeq: seq });
    // The agent claims nothing was truncated; the control plane knows better.
    expect(await agent.finished(executionId, 7, { exitCode: 0, outputBytes: 8 * chunk.length, truncated: false })).toEqual({ ok: true });
    const e = await waitForStatus(api, executionId, 'succeeded');
    expect(e).toMatchObject({ outputBytes: 1000, outputTruncated: true, outputTruncatedBy: 'script_limit' });
    expect((await getOutput(api, executionId)).bytes.length).toBe(1000);
  });

  it('refuses exit codes, signals and error texts no process could produce, and the run still ends', async () => {
    const script = await createScript(api, 'sleep 100', { timeoutSeconds: 1 });
    const { executionId } = await run(api, script.id, serverId);
    await agent.waitForStart(executionId);
    for (const bad of [{ exitCode: 2147483647 }, { exitCode: -1 }, { exitCode: null, signal: 'rm -rf /' }, { exitCode: 1, error: 'fake\u001b[2Jscreen' }]) {
      const reply = await agent.finished(executionId, -1, bad);
      expect([JSON.stringify(bad), reply.error?.code]).toEqual([JSON.stringify(bad), 'INVALID_PAYLOAD']);
    }
    expect(agent.connected).toBe(true);
    // The agent never says the run ended: past timeout + grace the control plane ends it and tells the agent.
    const e = await waitForStatus(api, executionId, 'timed_out', 30_000);
    expect(e.exitCode).toBeNull();
    expect(e.error).toMatch(/no end was reported within its timeout/);
    expect((await getExecution(api, executionId)).status).toBe('timed_out');
  });
});
