import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectRefusal, MAX_CHUNK_BYTES, MAX_CHUNKS_PER_BATCH, PROTOCOL_VERSION } from '@app/protocol';
import { Agent, type AgentOptions } from './agent.js';
import { ScriptUsers } from './script-users.js';
import { FakeControlPlane } from './testing/fake-control-plane.js';
import { liveGroupMembers } from './testing/process-group.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('Agent against a socket.io control plane', () => {
  let cp: FakeControlPlane;
  let dir: string;
  const agents: Agent[] = [];

  function startAgent(over: Partial<AgentOptions> = {}): Agent {
    const agent = new Agent({
      url: cp.url,
      token: 'good-token',
      concurrency: 4,
      killGraceMs: 200,
      shutdownGraceMs: 2_000,
      flushTimeoutMs: 1_000,
      reconnectDelayMs: 20,
      reconnectDelayMaxMs: 100,
      // Scripts run as this test process (they write into its temp folders); the user switch has its own tests.
      users: new ScriptUsers(null, 'devpilot-run', []),
      ...over,
    });
    agents.push(agent);
    agent.start();
    return agent;
  }

  beforeEach(async () => {
    cp = await new FakeControlPlane().listen();
    dir = await mkdtemp(join(tmpdir(), 'agent-spec-'));
  });

  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    await cp.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('says who it is in the handshake and sends hello first', async () => {
    startAgent();
    await cp.until(() => cp.hellos.length === 1);
    expect(cp.handshakes[0]).toMatchObject({ token: 'good-token', protocolVersion: PROTOCOL_VERSION, platform: `${process.platform}-${process.arch}` });
    expect(typeof cp.handshakes[0]!.agentVersion).toBe('string');
    expect(typeof cp.handshakes[0]!.hostname).toBe('string');
    expect(cp.hellos[0]).toEqual({ running: [], finished: [] });
  });

  it('streams interleaved stdout and stderr as ordered chunks with the exact bytes', async () => {
    startAgent();
    const id = randomUUID();
    const script = 'echo out1; sleep 0.05; echo err1 >&2; sleep 0.05; printf out2; sleep 0.05; printf "err2\\n" >&2';
    expect(await cp.start({ executionId: id, content: script })).toEqual({ accepted: true });
    const done = await cp.waitFinished(id);
    const chunks = cp.output(id);
    expect(chunks.map((c) => [c.seq, c.stream, c.data.toString()])).toEqual([
      [0, 'stdout', 'out1\n'],
      [1, 'stderr', 'err1\n'],
      [2, 'stdout', 'out2'],
      [3, 'stderr', 'err2\n'],
    ]);
    expect(done).toEqual({
      executionId: id,
      exitCode: 0,
      signal: null,
      timedOut: false,
      cancelled: false,
      lastSeq: 3,
      outputBytes: 19,
      truncated: false,
      error: null,
    });
  });

  it('delivers 1 MiB of random binary output byte for byte', async () => {
    startAgent();
    const id = randomUUID();
    const file = join(dir, 'random.bin');
    await cp.start({ executionId: id, content: 'head -c 1048576 /dev/urandom > "$OUT"; cat "$OUT"', env: { OUT: file } });
    const done = await cp.waitFinished(id);
    const expected = await readFile(file);
    expect(expected.length).toBe(1024 * 1024);
    expect(sha256(cp.bytes(id, 'stdout'))).toBe(sha256(expected));
    expect(done).toMatchObject({ exitCode: 0, outputBytes: 1024 * 1024, lastSeq: cp.output(id).length - 1 });
    expect(cp.output(id).every((c) => c.data.length <= MAX_CHUNK_BYTES)).toBe(true);
    expect(cp.batches.every((b) => b.seqs.length <= MAX_CHUNKS_PER_BATCH)).toBe(true);
  });

  it('reports the exit code, and a missing interpreter as an error visible in stderr', async () => {
    startAgent();
    const failing = randomUUID();
    const missing = randomUUID();
    await cp.start({ executionId: failing, content: 'exit 3' });
    await cp.start({ executionId: missing, interpreter: 'python3', content: 'print(1)', env: { PATH: '/nonexistent' } });
    expect(await cp.waitFinished(failing)).toMatchObject({ exitCode: 3, signal: null, lastSeq: -1, error: null });
    expect(await cp.waitFinished(missing)).toMatchObject({ exitCode: null, error: 'interpreter not found: python3', lastSeq: 0 });
    expect(cp.bytes(missing, 'stderr').toString()).toBe('interpreter not found: python3\n');
  });

  it('times out: kills the whole process group and reports timedOut', async () => {
    startAgent();
    const id = randomUUID();
    await cp.start({ executionId: id, content: `trap '' TERM; echo $$; sleep 30 & sleep 30`, timeoutMs: 300 });
    const done = await cp.waitFinished(id);
    expect(done).toMatchObject({ timedOut: true, cancelled: false, exitCode: null, signal: 'SIGKILL' });
    expect(liveGroupMembers(Number(cp.bytes(id).toString().trim()))).toEqual([]);
  });

  it('cancels a running and a queued execution; unknown ids are not ok', async () => {
    startAgent({ concurrency: 1 });
    const running = randomUUID();
    const queued = randomUUID();
    await cp.start({ executionId: running, content: 'echo $$; sleep 30' });
    await cp.start({ executionId: queued, content: `touch "${dir}/queued-ran"` });
    await cp.until(() => cp.contiguous(running) > 0);
    expect(await cp.emit('execution.cancel', { executionId: queued })).toEqual({ ok: true });
    expect(await cp.emit('execution.cancel', { executionId: running })).toEqual({ ok: true });
    expect(await cp.emit('execution.cancel', { executionId: randomUUID() })).toEqual({ ok: false });
    expect(await cp.waitFinished(running)).toMatchObject({ cancelled: true, signal: 'SIGTERM', exitCode: null });
    expect(await cp.waitFinished(queued)).toMatchObject({ cancelled: true, exitCode: null, lastSeq: -1 });
    expect(liveGroupMembers(Number(cp.bytes(running).toString().trim()))).toEqual([]);
    await expect(readFile(join(dir, 'queued-ran'))).rejects.toThrow('ENOENT');
  });

  it('runs a redelivered start once, whether it is queued, running or finished', async () => {
    // One at a time, so starts run in the order they were accepted: a run started after the
    // redeliveries ends after any run they could have caused.
    startAgent({ concurrency: 1 });
    const id = randomUUID();
    const cmd = { executionId: id, content: `echo run >> "${dir}/runs"; sleep 0.2` };
    const acks = [await cp.start(cmd), await cp.start(cmd)];
    await cp.waitFinished(id);
    acks.push(await cp.start(cmd));
    const barrier = randomUUID();
    expect(await cp.start({ executionId: barrier, content: `echo barrier >> "${dir}/runs"` })).toEqual({ accepted: true });
    await cp.waitFinished(barrier);
    expect(acks).toEqual([{ accepted: true }, { accepted: true }, { accepted: true }]);
    expect(await readFile(join(dir, 'runs'), 'utf8')).toBe('run\nbarrier\n');
    expect(cp.finished.filter((f) => f.executionId === id)).toHaveLength(1);
  });

  it('refuses malformed commands with an error ack and keeps working', async () => {
    startAgent();
    expect(await cp.emit('execution.start', { executionId: 'nope', content: 1 })).toMatchObject({ error: { code: 'INVALID_PAYLOAD' } });
    expect(await cp.emit('execution.start', null)).toMatchObject({ error: { code: 'INVALID_PAYLOAD' } });
    expect(await cp.emit('execution.cancel', 'garbage')).toMatchObject({ error: { code: 'INVALID_PAYLOAD' } });
    cp.socket!.emit('execution.start', { executionId: randomUUID() }); // no ack function at all
    const id = randomUUID();
    expect(await cp.start({ executionId: id, content: 'echo still here' })).toEqual({ accepted: true });
    expect(cp.bytes(id).toString()).toBe('');
    await cp.waitFinished(id);
    expect(cp.bytes(id).toString()).toBe('still here\n');
  });

  it('never runs more than --concurrency scripts at once and starts the rest in order', async () => {
    startAgent({ concurrency: 2 });
    const ids = Array.from({ length: 5 }, () => randomUUID());
    for (const [i, id] of ids.entries()) {
      const script = `touch "${dir}/$DEVPILOT_N.running"; echo $DEVPILOT_N >> "${dir}/order"; ls "${dir}" | grep -c running; sleep 0.2; rm "${dir}/$DEVPILOT_N.running"`;
      expect(await cp.start({ executionId: id, content: script, env: { DEVPILOT_N: String(i) } })).toEqual({ accepted: true });
    }
    for (const id of ids) await cp.waitFinished(id);
    const seen = ids.map((id) => Number(cp.bytes(id).toString()));
    expect(Math.max(...seen)).toBe(2);
    const order = (await readFile(join(dir, 'order'), 'utf8')).trim().split('\n');
    expect([order.slice(0, 2).sort(), order.slice(2, 4).sort(), order[4]]).toEqual([['0', '1'], ['2', '3'], '4']);
  });

  it('applies backpressure when acks are slow: bounded unacked output, nothing lost', async () => {
    const window = 256 * 1024;
    let inFlight = 0;
    let maxInFlight = 0;
    cp.onOutput = (batch, ack) => {
      const bytes = batch.chunks.reduce((n, c) => n + c.data.byteLength, 0);
      inFlight += bytes;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => {
        inFlight -= bytes;
        ack({ ackedSeq: cp.store(batch) });
      }, 20);
    };
    startAgent({ windowBytes: window });
    const id = randomUUID();
    const file = join(dir, 'big.bin');
    await cp.start({ executionId: id, content: 'head -c 4194304 /dev/urandom > "$OUT"; cat "$OUT"; echo done >&2', env: { OUT: file } });
    const done = await cp.waitFinished(id);
    expect(done).toMatchObject({ exitCode: 0, outputBytes: 4 * 1024 * 1024 + 5 });
    expect(sha256(cp.bytes(id, 'stdout'))).toBe(sha256(await readFile(file)));
    // The window plus what the pipes still deliver after the pause (a read of each stream).
    expect(maxInFlight).toBeLessThanOrEqual(window + 2 * 64 * 1024 + 1024);
  });

  it('after the server drops the connection, says hello and resends exactly the unstored chunks', async () => {
    let dropping = true;
    let seenWhileDropping = 0;
    cp.onOutput = (batch, ack, socket) => {
      if (!dropping) return ack({ ackedSeq: cp.store(batch) });
      // First batch: stored but the ack is lost; second: lost entirely; then the connection drops.
      if (seenWhileDropping++ === 0) return void cp.store(batch);
      dropping = false;
      socket.disconnect(true);
    };
    startAgent();
    const id = randomUUID();
    await cp.start({ executionId: id, content: 'echo a; sleep 0.1; echo b; sleep 0.3; echo c; sleep 0.05; echo d' });
    const done = await cp.waitFinished(id);
    expect(cp.connections).toBe(2);
    expect(cp.hellos[1]!.running).toEqual([{ executionId: id, nextSeq: 2 }]);
    const resent = cp.batches.filter((b) => b.connection === 2 && b.executionId === id);
    expect(resent[0]!.seqs[0]).toBe(1);
    expect(cp.bytes(id).toString()).toBe('a\nb\nc\nd\n');
    expect(done).toMatchObject({ lastSeq: 3, outputBytes: 8 });
  });

  it('keeps an unacked finished report across a reconnect: in hello, then sent again', async () => {
    let first = true;
    cp.onFinished = (msg, ack, socket) => {
      if (first) {
        first = false;
        socket.conn.close(); // transport-level drop: the agent reconnects on its own
        return;
      }
      cp.finished.push(msg);
      ack({ ok: true });
    };
    startAgent();
    const id = randomUUID();
    await cp.start({ executionId: id, content: 'echo hi' });
    const done = await cp.waitFinished(id);
    expect(cp.hellos[1]!.finished).toEqual([done]);
    expect(done).toMatchObject({ exitCode: 0, lastSeq: 0 });
  });

  it('truncates past maxOutputBytes but keeps draining the pipes', async () => {
    startAgent();
    const id = randomUUID();
    await cp.start({ executionId: id, content: 'printf 0123456789ABCDEF; head -c 1000000 /dev/zero; echo end >&2; exit 4', maxOutputBytes: 10 });
    const done = await cp.waitFinished(id);
    expect(cp.bytes(id).toString()).toBe('0123456789');
    expect(done).toMatchObject({ exitCode: 4, truncated: true, outputBytes: 10, lastSeq: 0 });
  });

  it('acks a start before spawning it, and reports execution.spawned once its process exists', async () => {
    startAgent({ concurrency: 1 });
    const first = randomUUID();
    const second = randomUUID();
    const missing = randomUUID();
    let firstFinishedBeforeSecondSpawned: boolean | undefined;
    cp.onSpawned = (msg, ack) => {
      if (msg.executionId === second) firstFinishedBeforeSecondSpawned = cp.finished.some((f) => f.executionId === first);
      ack({ ok: true });
    };
    expect(await cp.start({ executionId: first, content: 'echo one; sleep 1' })).toEqual({ accepted: true });
    expect(await cp.start({ executionId: second, content: 'echo two' })).toEqual({ accepted: true });
    await cp.until(() => cp.contiguous(first) > 0);
    expect(cp.spawned.map((s) => s.executionId)).toEqual([first]);
    await cp.waitFinished(second);
    expect(cp.spawned.map((s) => s.executionId)).toEqual([first, second]);
    // The second waited in the agent's queue for the only slot.
    expect(firstFinishedBeforeSecondSpawned).toBe(true);
    // A process that could not be spawned is never reported spawned.
    await cp.start({ executionId: missing, interpreter: 'python3', content: 'print(1)', env: { PATH: '/nonexistent' } });
    expect(await cp.waitFinished(missing)).toMatchObject({ error: 'interpreter not found: python3' });
    expect(cp.spawned.map((s) => s.executionId)).toEqual([first, second]);
  });

  it('sends an unacked spawned report again after a reconnect', async () => {
    let first = true;
    cp.onSpawned = (_msg, ack, socket) => {
      if (!first) return ack({ ok: true });
      first = false;
      socket.conn.close();
    };
    startAgent();
    const id = randomUUID();
    await cp.start({ executionId: id, content: 'echo hi; sleep 0.3' });
    await cp.waitFinished(id);
    expect(cp.spawned).toEqual([
      { executionId: id, connection: 1 },
      { executionId: id, connection: 2 },
    ]);
  });

  it('treats an ack that does not match the protocol as no answer: reconnects, then resends what it covered', async () => {
    let invalid = 2;
    cp.onOutput = (batch, ack) => {
      if (invalid-- > 0) return ack({ ackedSeq: 2 ** 31 }); // beyond what a seq may be; not stored
      ack({ ackedSeq: cp.store(batch) });
    };
    startAgent();
    const id = randomUUID();
    await cp.start({ executionId: id, content: 'echo a; sleep 0.2; echo b' });
    const done = await cp.waitFinished(id);
    expect(cp.bytes(id).toString()).toBe('a\nb\n');
    expect(done).toMatchObject({ exitCode: 0, lastSeq: 1 });
    expect(cp.connections).toBeGreaterThanOrEqual(2);
    expect(cp.batches.filter((b) => b.executionId === id && b.seqs[0] === 0).length).toBeGreaterThanOrEqual(2);
  });

  it('treats a malformed hello reply as no answer: it takes no work on that connection and reconnects', async () => {
    let invalid = true;
    cp.onHello = (_hello, ack) => {
      if (!invalid) return ack({ resend: [] });
      invalid = false;
      ack({ resend: 'everything' });
    };
    startAgent();
    await cp.until(() => cp.hellos.length === 2);
    expect(cp.connections).toBe(2);
    const id = randomUUID();
    await cp.start({ executionId: id, content: 'echo after' });
    await cp.waitFinished(id);
    expect(cp.bytes(id).toString()).toBe('after\n');
  });

  it('stops when the control plane refuses the token', async () => {
    // Fake timers, real sockets: once it has exited, no timer is pending (a retry would be one) and
    // no transport is open, nothing is left that could try again later.
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'Date', 'hrtime', 'performance'] });
    try {
      const agent = startAgent({ token: 'bad-token' });
      await expect(agent.exited).resolves.toEqual({ code: 2, reason: 'unauthorized', refusal: 'UNAUTHORIZED' });
      // Closing the WebSocket arms a timer that the peer's close clears.
      const deadline = Date.now() + 5_000;
      while (jest.getTimerCount() > 0 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      expect(jest.getTimerCount()).toBe(0);
      expect(cp.transports).toBe(0);
      expect(cp.handshakes).toHaveLength(1);
    } finally {
      jest.useRealTimers();
    }
  });

  it('stops when the control plane does not speak its protocol version', async () => {
    cp.refuse = () => connectRefusal('UNSUPPORTED_PROTOCOL_VERSION', 'unsupported protocol version 2; supported: 3', { supportedVersions: [3] });
    const agent = startAgent();
    await expect(agent.exited).resolves.toEqual({ code: 2, reason: 'unsupported protocol version 2; supported: 3', refusal: 'UNSUPPORTED_PROTOCOL_VERSION' });
  });

  it('keeps retrying while the control plane is away', async () => {
    // A refusal without a final code (here even one whose words look final) is retried.
    cp.refuse = () => new Error('unauthorized');
    startAgent();
    await cp.until(() => cp.handshakes.length >= 3);
    cp.refuse = () => null;
    await cp.until(() => cp.hellos.length === 1);
  });

  it('shuts down gracefully: refuses new work, cancels queued work, lets running scripts finish', async () => {
    const agent = startAgent({ concurrency: 1, shutdownGraceMs: 5_000 });
    const running = randomUUID();
    const queued = randomUUID();
    await cp.start({ executionId: running, content: 'echo started; sleep 0.3; echo finished' });
    await cp.start({ executionId: queued, content: 'echo never' });
    await cp.until(() => cp.contiguous(running) > 0);
    const stopped = agent.stop();
    expect(await cp.start({ executionId: randomUUID(), content: 'echo no' })).toEqual({ accepted: false, reason: 'agent shutting down', code: 'SHUTTING_DOWN' });
    await stopped;
    await expect(agent.exited).resolves.toEqual({ code: 0 });
    expect(cp.finished.find((f) => f.executionId === running)).toMatchObject({ exitCode: 0, cancelled: false });
    expect(cp.bytes(running).toString()).toBe('started\nfinished\n');
    expect(cp.finished.find((f) => f.executionId === queued)).toMatchObject({ cancelled: true, error: 'agent shutting down', lastSeq: -1 });
  });

  it('on shutdown kills scripts that outlive the grace period', async () => {
    const agent = startAgent({ shutdownGraceMs: 200 });
    const id = randomUUID();
    await cp.start({ executionId: id, content: 'echo $$; sleep 30' });
    await cp.until(() => cp.contiguous(id) > 0);
    await agent.stop();
    expect(cp.finished.find((f) => f.executionId === id)).toMatchObject({ cancelled: true, signal: 'SIGTERM', error: 'agent shutting down' });
    expect(liveGroupMembers(Number(cp.bytes(id).toString().trim()))).toEqual([]);
  });
});
