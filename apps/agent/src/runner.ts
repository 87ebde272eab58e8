import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { SerialCoalescer } from '@app/common';
import type { Interpreter, OutputStream, RunPayload, StartExecution } from '@app/protocol';
import { silentLogger, type Logger } from './logger.js';
import type { ScriptUser } from './script-users.js';
import { scriptsDirPrefix } from './temp-files.js';

/** How a script run ended, in the words of `execution.finished`. */
export interface RunResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  cancelled: boolean;
  /** Why the script could not run, or why the agent stopped it; null for an ordinary end. */
  error: string | null;
}

export interface RunOptions {
  killGraceMs: number;
  onOutput: (stream: OutputStream, data: Buffer) => void;
  /**
   * After the script exits, how long to keep reading while a background process it started still
   * holds stdout/stderr open (`nohup server &`); then stop reading so the run can end.
   */
  pipeLingerMs?: number;
  /** The script's process exists (called once, not when it could not be spawned). */
  onSpawn?: () => void;
  logger?: Logger;
  /** Run as this user (through setpriv) in a private working directory it owns; else as the agent. */
  runAs?: { user: ScriptUser; setpriv: string };
}

/** A file a run gets, written where only the user it runs as can read it. */
interface RunFile {
  name: string;
  content: string | Buffer;
}

export type ScriptSpec = Pick<StartExecution, 'interpreter' | 'content' | 'env' | 'timeoutMs' | 'payload'>;

const EXTENSIONS: Record<Interpreter, string> = { bash: 'sh', sh: 'sh', python3: 'py', node: 'js' };
// The node running the agent is known to exist, so a `node` script finds it even on a bare PATH.
const DEFAULT_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']
  .concat(dirname(process.execPath))
  .filter((dir, i, all) => all.indexOf(dir) === i)
  .join(delimiter);

let scriptsDir: Promise<string> | null = null;

/**
 * One private folder (0700) per agent process for the script files, made on first use and removed
 * when the process exits: a folder per run cost a mkdtemp, a chmod and a recursive rm each time.
 * Its name carries the agent's pid, so a later agent can tell it was left by a dead one.
 * Each script file is 0600, named after its execution, and removed when its run ends.
 * (Runs as another user get a working directory of their own instead: see runAsUser.)
 */
function privateScriptsDir(): Promise<string> {
  scriptsDir ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), scriptsDirPrefix(process.pid)));
    await chmod(dir, 0o700);
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  })().catch((err: unknown) => {
    scriptsDir = null;
    throw err;
  });
  return scriptsDir;
}

let umask: string | undefined;

/** The agent's umask, as `umask` prints it (read from /proc: `process.umask()` without arguments is deprecated). */
function agentUmask(): string {
  umask ??= /^Umask:\s*(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0022';
  return umask;
}

let shared: Promise<string> | null = null;

/**
 * The same folder opened for runs as other users: 01733, so they may each create their own
 * working directory in it (0700) but not list it, nor remove or rename what others made (sticky).
 */
function sharedScriptsDir(): Promise<string> {
  shared ??= privateScriptsDir().then(async (dir) => {
    await chmod(dir, 0o1733);
    return dir;
  });
  shared.catch(() => (shared = null));
  return shared;
}

let fileCounter = 0;

/**
 * The script's environment: exactly what the control plane sent, plus a minimal PATH, HOME and
 * LANG when not given. Never the agent's own environment (it holds the agent token).
 */
export function scriptEnv(sent: Record<string, string>, user?: ScriptUser): Record<string, string> {
  if (!user) return { PATH: DEFAULT_PATH, HOME: homedir(), LANG: 'C.UTF-8', ...sent };
  return { PATH: DEFAULT_PATH, LANG: 'C.UTF-8', ...sent, HOME: user.home, USER: user.name, LOGNAME: user.name };
}

/**
 * The variables a run gets with its webhook's request: the file holding the raw body, the
 * sender's event, its delivery id and the body's content type.
 */
export function payloadEnv(payload: RunPayload, file: string): Record<string, string> {
  return {
    DEVPILOT_PAYLOAD_FILE: file,
    DEVPILOT_EVENT: payload.event,
    DEVPILOT_DELIVERY_ID: payload.deliveryId,
    DEVPILOT_CONTENT_TYPE: payload.contentType,
  };
}

/** The name of the request's file in a run's own working directory (runs as another user). */
const PAYLOAD_FILE = 'payload';

/**
 * Run by `sh` as the script's user (after setpriv): makes the private working directory (0700,
 * owned by that user), writes the run's files into it from stdin (`head -c` reads exactly each
 * file's length from the pipe), then replaces itself with the interpreter, stdin on /dev/null.
 * The script then gets the agent's umask back. Arguments: umask, dir, file count, then name and
 * byte length of each file, then the command.
 */
const AS_USER_PREPARE = [
  'u=$1; d=$2; n=$3; shift 3',
  'umask 077',
  'mkdir -m 700 -- "$d" && cd -- "$d" || { echo "devpilot-agent: cannot create the working directory $d as $(id -un) (it must be able to enter every folder above it: check TMPDIR)" >&2; exit 126; }',
  'while [ "$n" -gt 0 ]; do',
  '  head -c "$2" > "$1" || { echo "devpilot-agent: cannot write $1" >&2; exit 126; }',
  '  shift 2; n=$((n - 1))',
  'done',
  'umask "$u"',
  'exec "$@" < /dev/null',
].join('\n');

/**
 * One script run: written to a private temp file, run by its interpreter in its own process group,
 * output handed to `onOutput` as it comes. Never rejects: failures become a `RunResult`. A run
 * given its webhook's request gets it as a 0600 file beside the script (owned by the user it runs
 * as), removed with the script whatever the outcome.
 */
export class ScriptRun {
  readonly result: Promise<RunResult>;
  /** Resolves once the run's files are gone (for a run as another user, after its result). */
  readonly cleaned: Promise<void>;
  private markCleaned!: () => void;
  private stdout?: Readable;
  private stderr?: Readable;
  private pid?: number;
  private paused = false;
  private exited = false;
  private stop: { reason: 'timeout' | 'cancel'; error: string | null } | null = null;
  private killDeadline?: number;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly log: Logger;

  constructor(
    private readonly spec: ScriptSpec,
    private readonly opts: RunOptions,
  ) {
    this.log = opts.logger ?? silentLogger;
    this.cleaned = new Promise((resolve) => (this.markCleaned = resolve));
    this.result = this.run();
  }

  /** Stop reading the script's pipes: once the pipe buffer is full, the script blocks on write. */
  pause(): void {
    this.paused = true;
    this.stdout?.pause();
    this.stderr?.pause();
  }

  resume(): void {
    this.paused = false;
    this.stdout?.resume();
    this.stderr?.resume();
  }

  /** SIGTERM to the process group, SIGKILL after the grace period. False if it already ended. */
  cancel(error: string | null = null): boolean {
    if (this.exited) return false;
    if (this.stop?.reason !== 'cancel') this.stop = { reason: 'cancel', error };
    this.terminate();
    return true;
  }

  /** The files a run gets: the script (the interpreter runs the first one), and the request if it gets one. */
  private files(): RunFile[] {
    const files: RunFile[] = [{ name: `script.${EXTENSIONS[this.spec.interpreter]}`, content: this.spec.content }];
    if (this.spec.payload) files.push({ name: PAYLOAD_FILE, content: Buffer.from(this.spec.payload.body.buffer, this.spec.payload.body.byteOffset, this.spec.payload.body.byteLength) });
    return files;
  }

  private async run(): Promise<RunResult> {
    if (this.opts.runAs) return this.runAsUser(this.opts.runAs);
    let file: string | undefined;
    let payloadFile: string | undefined;
    try {
      const dir = await privateScriptsDir();
      const n = ++fileCounter;
      file = join(dir, `script-${process.pid}-${n}.${EXTENSIONS[this.spec.interpreter]}`);
      // Synchronous: a script is at most 1 MiB, and the promise API costs three thread-pool round
      // trips (open, write, close) before the spawn can start.
      writeFileSync(file, this.spec.content, { mode: 0o600, flag: 'wx' });
      let env = scriptEnv(this.spec.env);
      if (this.spec.payload) {
        payloadFile = join(dir, `payload-${process.pid}-${n}`);
        writeFileSync(payloadFile, this.spec.payload.body, { mode: 0o600, flag: 'wx' });
        env = { ...env, ...payloadEnv(this.spec.payload, payloadFile) };
      }
      if (this.stop) return this.outcome(null, null, null);
      return await this.spawn(this.spec.interpreter, [file], { env });
    } catch (err) {
      return this.failed(`could not prepare the script: ${(err as Error).message}`);
    } finally {
      for (const t of this.timers) clearTimeout(t);
      if (file) removeFile(file, this.log);
      if (payloadFile) removeFile(payloadFile, this.log);
      this.markCleaned();
    }
  }

  /**
   * As another user: its private working directory (in the agent's folder) and files are made by
   * that user (the agent may lack CAP_CHOWN and CAP_DAC_OVERRIDE), so they are removed by it too,
   * once the run is over.
   */
  private async runAsUser({ user, setpriv }: NonNullable<RunOptions['runAs']>): Promise<RunResult> {
    let dir: string | undefined;
    try {
      const base = await sharedScriptsDir();
      if (this.stop) return this.outcome(null, null, null);
      // The name cannot be guessed, and mkdir fails (never reuses) if it exists.
      dir = join(base, `run-${randomBytes(12).toString('hex')}`);
      const files = this.files().map((f) => ({ path: join(dir!, f.name), bytes: Buffer.from(f.content) }));
      const asUser = [setpriv, `--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--inh-caps=-all', '--ambient-caps=-all', '--'];
      const prepare = ['/bin/sh', '-c', AS_USER_PREPARE, 'devpilot-run', agentUmask(), dir, String(files.length), ...files.flatMap((f) => [f.path, String(f.bytes.length)])];
      return await this.spawn(asUser[0]!, [...asUser.slice(1), ...prepare, this.spec.interpreter, files[0]!.path], {
        env: { ...scriptEnv(this.spec.env, user), ...(this.spec.payload ? payloadEnv(this.spec.payload, join(dir, PAYLOAD_FILE)) : {}) },
        input: Buffer.concat(files.map((f) => f.bytes)),
        cwd: '/',
      });
    } catch (err) {
      return this.failed(`could not prepare the script: ${(err as Error).message}`);
    } finally {
      for (const t of this.timers) clearTimeout(t);
      // Not awaited: the run's result does not wait for its folder to go.
      if (dir) void removals.run(`${user.uid}:${user.gid}:${setpriv}`, { setpriv, user, dir, log: this.log }).finally(this.markCleaned);
      else this.markCleaned();
    }
  }

  private async spawn(
    command: string,
    args: string[],
    how: { env: Record<string, string>; input?: Buffer; cwd?: string } = { env: scriptEnv(this.spec.env) },
  ): Promise<RunResult> {
    const child = execa(command, args, {
      env: how.env,
      extendEnv: false,
      ...(how.input ? { input: how.input } : { stdin: 'ignore' as const }),
      ...(how.cwd ? { cwd: how.cwd } : {}),
      detached: true,
      buffer: false,
      reject: false,
      stripFinalNewline: false,
      forceKillAfterDelay: false,
    });
    this.pid = child.pid;
    this.stdout = child.stdout;
    this.stderr = child.stderr;
    child.stdout.on('data', (data: Buffer) => this.opts.onOutput('stdout', data));
    child.stderr.on('data', (data: Buffer) => this.opts.onOutput('stderr', data));
    if (this.paused) this.pause();
    if (child.pid !== undefined) this.opts.onSpawn?.();

    let exit: { code: number | null; signal: string | null } | undefined;
    const timeout = this.timer(() => {
      this.stop ??= { reason: 'timeout', error: null };
      this.terminate();
    }, this.spec.timeoutMs);
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      this.exited = true;
      clearTimeout(timeout);
      this.lingerOnPipes();
    });

    const result = await child;
    if (!exit && this.pid === undefined) {
      const code = 'code' in result ? result.code : undefined;
      return this.failed(
        code === 'ENOENT'
          ? `interpreter not found: ${this.spec.interpreter}`
          : `could not start ${this.spec.interpreter}: ${result.originalMessage || result.shortMessage}`,
      );
    }
    if (this.killDeadline !== undefined) await this.settleGroup(this.pid!);
    return this.outcome(exit?.code ?? result.exitCode ?? null, exit?.signal ?? result.signal ?? null, null);
  }

  private lingerOnPipes(): void {
    const ms = this.opts.pipeLingerMs ?? 2_000;
    const check = (): void => {
      const open = [this.stdout, this.stderr].filter((s): s is Readable => !!s && !s.readableEnded && !s.destroyed);
      if (open.length === 0) return;
      // While paused by backpressure the pipes may just hold unread output: wait for the reader.
      if (this.paused) return void this.timer(check, ms);
      this.log.warn('a background process still holds the output pipes open; stopped reading', { pid: this.pid });
      for (const s of open) s.destroy();
    };
    this.timer(check, ms);
  }

  private terminate(): void {
    if (this.killDeadline !== undefined || this.pid === undefined) return;
    const pid = this.pid;
    this.killDeadline = Date.now() + this.opts.killGraceMs;
    signalGroup(pid, 'SIGTERM');
    this.timer(() => signalGroup(pid, 'SIGKILL'), this.opts.killGraceMs);
  }

  /** After a stop, the rest of the group gets the same grace as the script, then SIGKILL. */
  private async settleGroup(pid: number): Promise<void> {
    while (Date.now() < this.killDeadline! && groupAlive(pid)) await new Promise((r) => setTimeout(r, 20));
    if (groupAlive(pid)) signalGroup(pid, 'SIGKILL');
  }

  private outcome(exitCode: number | null, signal: string | null, error: string | null): RunResult {
    return {
      exitCode,
      signal,
      timedOut: this.stop?.reason === 'timeout',
      cancelled: this.stop?.reason === 'cancel',
      error: error ?? this.stop?.error ?? null,
    };
  }

  private failed(message: string): RunResult {
    // Written as output too, so whoever watches the run sees why it did not start.
    this.opts.onOutput('stderr', Buffer.from(`${message}\n`));
    return this.outcome(null, null, message);
  }

  private timer(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }
}

interface Removal {
  setpriv: string;
  user: ScriptUser;
  dir: string;
  log: Logger;
}

/** Folders per `rm`: enough to take a burst in a few calls, few enough for a small argv. */
const MAX_REMOVALS_PER_CALL = 200;

/**
 * Removes runs' working directories as the user who owns them. Each removal is a process, and
 * forking the agent costs more than the run of a short script: the folders of one user that wait
 * while a removal runs go into the next one together.
 */
const removals = new SerialCoalescer<Removal, void>(
  async (_key, items) => removeAsUser(items),
  (group) => group.length < MAX_REMOVALS_PER_CALL,
);

/** Removes the folders (all of one user) in one `rm`, as that user; logs each one left behind. */
async function removeAsUser(items: Removal[]): Promise<void[]> {
  const { setpriv, user } = items[0]!;
  const r = await execa(setpriv, [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--inh-caps=-all', '--ambient-caps=-all', '--', 'rm', '-rf', '--', ...items.map((i) => i.dir)], {
    reject: false,
    stdin: 'ignore',
    cwd: '/',
    env: { PATH: DEFAULT_PATH },
    extendEnv: false,
  });
  if (r.exitCode !== 0) {
    // One exit status for all: the folders still there are the ones it failed on.
    for (const { dir, log } of items) if (existsSync(dir)) log.warn('the run\'s working directory was not removed', { dir, stderr: r.stderr });
  }
  return items.map(() => undefined);
}

function removeFile(file: string, log: Logger): void {
  try {
    unlinkSync(file);
  } catch (err) {
    log.warn('script file not removed', { err });
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
