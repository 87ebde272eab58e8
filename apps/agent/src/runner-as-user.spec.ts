import { beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OutputStream } from '@app/protocol';
import { createLogger, type Logger } from './logger.js';
import { ScriptRun, type ScriptSpec } from './runner.js';
import { parsePasswd, ScriptUsers, switchAbility, type ScriptUser } from './script-users.js';
import { liveGroupMembers } from './testing/process-group.js';

// The user switch needs root (or the unit's capabilities); the tests run as root here and in CI.
const root = process.getuid?.() === 0;
const USER = 'devpilot-run';
let user: ScriptUser;
let setpriv: string;

function run(content: string, extra: Partial<ScriptSpec> = {}, via = setpriv, logger?: Logger) {
  const out: { stream: OutputStream; data: Buffer }[] = [];
  const script = new ScriptRun(
    { interpreter: 'bash', content, env: {}, timeoutMs: 10_000, ...extra },
    { killGraceMs: 200, onOutput: (stream, data) => out.push({ stream, data }), pipeLingerMs: 200, runAs: { user, setpriv: via }, ...(logger ? { logger } : {}) },
  );
  const text = (stream: OutputStream) => Buffer.concat(out.filter((o) => o.stream === stream).map((o) => o.data)).toString();
  return { script, text };
}

describe('parsing and policy', () => {
  it('reads a passwd line and the capabilities of /proc/self/status', () => {
    expect(parsePasswd('deploy:x:1001:1002:Deploy:/home/deploy:/bin/bash\n')).toEqual({ name: 'deploy', uid: 1001, gid: 1002, home: '/home/deploy' });
    expect(parsePasswd('nonsense')).toBeNull();
    expect(switchAbility('CapEff:\t0000000000000000\n')).toEqual({ why: 'the agent is not root and lacks CAP_SETUID, CAP_SETGID and CAP_KILL' });
    // CAP_KILL, CAP_SETGID, CAP_SETUID: bits 5, 6, 7.
    const withCaps = switchAbility('CapEff:\t00000000000000e0\n');
    expect('setpriv' in withCaps || withCaps.why === 'setpriv (util-linux) is not installed').toBe(true);
    expect(switchAbility('CapEff:\t0000000000000060\n')).toHaveProperty('why');
  });

  it('allows the default user and the listed ones; an agent that cannot switch allows only itself', () => {
    const switching = new ScriptUsers('/usr/bin/setpriv', 'devpilot-run', ['deploy']);
    expect(switching.check(undefined)).toEqual({ ok: true });
    expect(switching.check('deploy')).toEqual({ ok: true });
    expect(switching.check('devpilot-run')).toEqual({ ok: true });
    expect(switching.check('root')).toMatchObject({ ok: false, reason: expect.stringContaining('does not allow') });
    const fixed = new ScriptUsers(null, 'devpilot-run', ['deploy'], 'not root');
    expect(fixed.runsScriptsAs).toBe(fixed.self);
    expect(fixed.check(fixed.self)).toEqual({ ok: true });
    expect(fixed.check('deploy')).toMatchObject({ ok: false, reason: expect.stringContaining('cannot switch users') });
  });
});

(root ? describe : describe.skip)('ScriptRun as another user', () => {
  beforeAll(() => {
    try {
      execFileSync('id', ['-u', USER], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['--system', '--user-group', '--create-home', '--home-dir', `/var/lib/${USER}`, '--shell', '/usr/sbin/nologin', USER]);
    }
    user = parsePasswd(execFileSync('getent', ['passwd', USER], { encoding: 'utf8' }))!;
    const ability = switchAbility();
    if (!('setpriv' in ability)) throw new Error(ability.why);
    setpriv = ability.setpriv;
  });

  it("runs with the user's uid, gid, groups and HOME, without capabilities, in a private directory it owns", async () => {
    const { script, text } = run(
      [
        'echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) home=$HOME user=$USER"',
        'echo "pwd=$PWD"',
        'stat -c "dir=%a %U" .',
        'stat -c "file=%a %U" "$0"',
        'echo "umask=$(umask)"',
        "grep -E '^Cap(Inh|Prm|Eff|Amb):' /proc/self/status | tr -s '\\t' ' '",
      ].join('\n'),
    );
    expect(await script.result).toMatchObject({ exitCode: 0, error: null });
    const out = text('stdout');
    const groups = execFileSync('id', ['-G', USER], { encoding: 'utf8' }).trim();
    expect(out).toContain(`uid=${user.uid} gid=${user.gid} groups=${groups} home=${user.home} user=${USER}`);
    expect(out).toContain(`dir=700 ${USER}`);
    expect(out).toContain(`file=600 ${USER}`);
    // What the script itself creates follows the agent's umask, not the one its files were made with.
    expect(out).toContain(`umask=${/^Umask:\s*(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`);
    for (const cap of ['CapInh', 'CapPrm', 'CapEff', 'CapAmb']) expect(out).toContain(`${cap}: 0000000000000000`);
    // Removed by the user once the run is over.
    await script.cleaned;
    expect(existsSync(/pwd=(.*)/.exec(out)![1]!)).toBe(false);
  });

  it('writes the script file byte for byte, small or large, beside a binary request', async () => {
    // What the prepare shell might read as its own: a format, escapes, expansions, a leading dash, UTF-8, trailing newlines.
    const tricky = "-n %s %b \\n \\0 $HOME $(id) `id` 'q' \"d\" é ✓\n\n";
    const body = Buffer.from([0, 1, 2, 255, 10, 0]);
    for (const size of [0, 70 * 1024]) {
      const content = `#${'x'.repeat(size)}\n# ${tricky}cat "$0"; od -An -tx1 "$DEVPILOT_PAYLOAD_FILE"\n`;
      const { script, text } = run(content, { payload: { body, event: 'push', deliveryId: 'd', contentType: 'application/octet-stream' } });
      expect(await script.result).toMatchObject({ exitCode: 0, error: null });
      expect(text('stdout')).toBe(`${content} 00 01 02 ff 0a 00\n`);
    }
  });

  it('stops the whole process group of the other user on timeout and on cancel', async () => {
    const timedOut = run(`trap '' TERM; echo $$; sleep 30 & sleep 30`, { timeoutMs: 300 });
    expect(await timedOut.script.result).toMatchObject({ timedOut: true, signal: 'SIGKILL' });
    expect(liveGroupMembers(Number(timedOut.text('stdout').trim()))).toEqual([]);
    await timedOut.script.cleaned;

    const cancelled = run(`echo $$; sleep 30 & sleep 30`);
    while (!cancelled.text('stdout')) await new Promise((r) => setTimeout(r, 20));
    expect(cancelled.script.cancel()).toBe(true);
    expect(await cancelled.script.result).toMatchObject({ cancelled: true, signal: 'SIGTERM' });
    expect(liveGroupMembers(Number(cancelled.text('stdout').trim()))).toEqual([]);
    await cancelled.script.cleaned;
  });

  /** A setpriv that logs each removal (its arguments) and holds it until `open()`. */
  function holdingSetpriv() {
    const tools = mkdtempSync(join(tmpdir(), 'removal-batch-'));
    const log = join(tools, 'removals');
    const gate = join(tools, 'gate');
    const wrapper = join(tools, 'setpriv');
    writeFileSync(
      wrapper,
      ['#!/bin/sh', `case " $* " in *" rm -rf "*) echo "$*" >> ${log}; while [ ! -e ${gate} ]; do sleep 0.01; done ;; esac`, `exec ${setpriv} "$@"`].join('\n'),
    );
    chmodSync(wrapper, 0o755);
    return {
      wrapper,
      open: () => writeFileSync(gate, ''),
      /** The folders each removal was given. */
      removals: () => readFileSync(log, 'utf8').trim().split('\n').map((c) => c.split(' -- rm -rf -- ')[1]!.split(' ')),
      dispose: () => rmSync(tools, { recursive: true, force: true }),
    };
  }

  it('removes the folders of runs that end while a removal runs together, in one process', async () => {
    const held = holdingSetpriv();
    try {
      const runs = Array.from({ length: 5 }, () => run('echo "$PWD"', {}, held.wrapper));
      for (const r of runs) expect(await r.script.result).toMatchObject({ exitCode: 0, error: null });
      // The first run's removal is held; the others' wait behind it.
      held.open();
      await Promise.all(runs.map((r) => r.script.cleaned));
      const dirs = runs.map((r) => r.text('stdout').trim());
      expect(held.removals()).toHaveLength(2);
      expect(held.removals().flat().sort()).toEqual([...dirs].sort());
      for (const dir of dirs) expect(existsSync(dir)).toBe(false);
    } finally {
      held.dispose();
    }
  });

  it('warns about the folder a shared removal left, not the others', async () => {
    const held = holdingSetpriv();
    const warnings: unknown[] = [];
    const logger = createLogger('test', 'warn', (line) => warnings.push(JSON.parse(line)));
    let stuck: string | undefined;
    try {
      const runs = Array.from({ length: 3 }, () => run('mkdir sub; echo "$PWD"', {}, held.wrapper, logger));
      for (const r of runs) expect(await r.script.result).toMatchObject({ exitCode: 0 });
      const dirs = runs.map((r) => r.text('stdout').trim());
      // The last run's folder gets what its user cannot remove: a root-owned folder with a file.
      stuck = dirs[2]!;
      chownSync(join(stuck, 'sub'), 0, 0);
      writeFileSync(join(stuck, 'sub', 'file'), '');
      held.open();
      await Promise.all(runs.map((r) => r.script.cleaned));
      expect(held.removals().map((r) => r.length)).toEqual([1, 2]);
      expect(dirs.map((d) => existsSync(d))).toEqual([false, false, true]);
      expect(warnings).toEqual([expect.objectContaining({ msg: "the run's working directory was not removed", dir: stuck })]);
    } finally {
      if (stuck) rmSync(stuck, { recursive: true, force: true });
      held.dispose();
    }
  });
});
