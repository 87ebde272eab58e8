import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { OutputStream } from '@app/protocol';
import { ScriptRun, scriptEnv, type ScriptSpec } from './runner.js';
import { liveGroupMembers } from './testing/process-group.js';

function run(content: string, extra: Partial<ScriptSpec> = {}, killGraceMs = 200) {
  const out: { stream: OutputStream; data: Buffer }[] = [];
  const script = new ScriptRun(
    { interpreter: 'bash', content, env: {}, timeoutMs: 10_000, ...extra },
    { killGraceMs, onOutput: (stream, data) => out.push({ stream, data }), pipeLingerMs: 200 },
  );
  const text = (stream: OutputStream) => Buffer.concat(out.filter((o) => o.stream === stream).map((o) => o.data)).toString();
  return { script, out, text };
}

describe('ScriptRun', () => {
  it('runs the script with its interpreter and reports the exit code and both streams', async () => {
    const { script, text } = run('echo out; echo err >&2; exit 3');
    expect(await script.result).toEqual({ exitCode: 3, signal: null, timedOut: false, cancelled: false, error: null });
    expect(text('stdout')).toBe('out\n');
    expect(text('stderr')).toBe('err\n');
  });

  it.each([
    ['sh', 'echo "$0"', /script-\d+-\d+\.sh\n$/],
    ['node', 'console.log(typeof require, process.argv[1].endsWith(".js"))', /^function true\n$/],
  ] as const)('runs %s scripts', async (interpreter, content, expected) => {
    const { script, text } = run(content, { interpreter });
    expect((await script.result).exitCode).toBe(0);
    expect(text('stdout')).toMatch(expected);
  });

  it('gives the script only the environment it was sent plus PATH, HOME and LANG, never the agent token', async () => {
    process.env.DEVPILOT_AGENT_TOKEN = 'secret-agent-token';
    try {
      const { script, text } = run('env', { env: { GREETING: 'hi', LANG: 'en_US.UTF-8' } });
      await script.result;
      const names = text('stdout').trim().split('\n').map((l) => l.split('=')[0]).filter((n) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(n!));
      expect(names.sort()).toEqual(['GREETING', 'HOME', 'LANG', 'PATH']);
      expect(text('stdout')).toContain('LANG=en_US.UTF-8');
      expect(text('stdout')).not.toContain('secret-agent-token');
    } finally {
      delete process.env.DEVPILOT_AGENT_TOKEN;
    }
  });

  it('keeps the env it was sent over the defaults', () => {
    expect(scriptEnv({ PATH: '/opt/bin' }).PATH).toBe('/opt/bin');
    expect(scriptEnv({}).PATH).toContain('/usr/bin');
  });

  it('gives a run its request as a 0600 file with the raw bytes, removed afterwards, and its variables', async () => {
    const body = Buffer.from([0x7b, 0x00, 0xff, 0x0a, 0x22, 0x7d]);
    const payload = { body: new Uint8Array(body), event: 'push', deliveryId: 'd-1', contentType: 'application/json' };
    const { script, text } = run('stat -c %a "$DEVPILOT_PAYLOAD_FILE"; echo "$DEVPILOT_PAYLOAD_FILE $DEVPILOT_EVENT $DEVPILOT_DELIVERY_ID $DEVPILOT_CONTENT_TYPE"; od -An -tx1 "$DEVPILOT_PAYLOAD_FILE"', { payload });
    expect((await script.result).exitCode).toBe(0);
    const [mode, vars, bytes] = text('stdout').trim().split('\n');
    const [file, ...rest] = vars!.split(' ');
    expect(mode).toBe('600');
    expect(rest).toEqual(['push', 'd-1', 'application/json']);
    expect(bytes!.trim()).toBe('7b 00 ff 0a 22 7d');
    expect(existsSync(file!)).toBe(false);
  });

  it('removes the file of a cancelled run too', async () => {
    const payload = { body: new Uint8Array(Buffer.from('{}')), event: '', deliveryId: '', contentType: 'application/json' };
    const { script, text } = run('echo "$DEVPILOT_PAYLOAD_FILE"; sleep 30', { payload });
    while (!text('stdout').includes('\n')) await new Promise((r) => setTimeout(r, 10));
    const file = text('stdout').trim();
    expect(existsSync(file)).toBe(true);
    script.cancel();
    expect((await script.result).cancelled).toBe(true);
    expect(existsSync(file)).toBe(false);
  });

  it('runs from a private temp file (0700 dir, 0600 file) that is gone afterwards', async () => {
    const { script, text } = run('stat -c %a "$(dirname "$0")" "$0"; echo "$0"');
    await script.result;
    const [dirMode, fileMode, file] = text('stdout').trim().split('\n');
    expect([dirMode, fileMode]).toEqual(['700', '600']);
    expect(path.basename(path.dirname(file!))).toMatch(/^devpilot-/);
    expect(existsSync(file!)).toBe(false);
    // Two runs never share a file name.
    const second = run('echo "$0"');
    await second.script.result;
    expect(second.text('stdout').trim()).not.toBe(file);
  });

  it('reports a missing interpreter as an error and as stderr output', async () => {
    const { script, text } = run('echo never', { interpreter: 'python3', env: { PATH: '/nonexistent' } });
    const result = await script.result;
    expect(result).toMatchObject({ exitCode: null, error: 'interpreter not found: python3' });
    expect(text('stderr')).toBe('interpreter not found: python3\n');
  });

  it('on timeout stops the whole process group, SIGKILL when SIGTERM is ignored', async () => {
    const { script, text } = run(`trap '' TERM; echo $$; sleep 30 & sleep 30`, { timeoutMs: 200 });
    const result = await script.result;
    expect(result).toMatchObject({ timedOut: true, cancelled: false, exitCode: null, signal: 'SIGKILL' });
    expect(liveGroupMembers(Number(text('stdout').trim()))).toEqual([]);
  });

  it('cancel sends SIGTERM to the group and reports cancelled', async () => {
    const { script, out, text } = run('echo $$; sleep 30 & wait');
    while (out.length === 0) await new Promise((r) => setTimeout(r, 10));
    expect(script.cancel('stop please')).toBe(true);
    expect(await script.result).toMatchObject({ cancelled: true, timedOut: false, signal: 'SIGTERM', error: 'stop please' });
    expect(liveGroupMembers(Number(text('stdout').trim()))).toEqual([]);
    expect(script.cancel()).toBe(false);
  });

  it('while paused the script blocks on a full pipe and loses nothing', async () => {
    const total = 1024 * 1024;
    const { script, out, text } = run(`head -c ${total} /dev/zero | tr '\\0' x; echo done >&2`);
    script.pause();
    await new Promise((r) => setTimeout(r, 300));
    const whilePaused = out.reduce((n, o) => n + o.data.length, 0);
    expect(whilePaused).toBeLessThan(total);
    expect(text('stderr')).toBe('');
    script.resume();
    await script.result;
    expect(text('stdout')).toBe('x'.repeat(total));
    expect(text('stderr')).toBe('done\n');
  });

  it('ends when the script exits even if a background process keeps its stdout open', async () => {
    const { script, text } = run('echo $$; sleep 30 & echo bye; exit 0');
    expect(await script.result).toMatchObject({ exitCode: 0, cancelled: false, timedOut: false });
    const pgid = Number(text('stdout').split('\n')[0]);
    expect(text('stdout')).toContain('bye\n');
    process.kill(-pgid, 'SIGKILL');
  });
});
