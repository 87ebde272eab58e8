import { rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import type { Interpreter, OutputStream, StartExecution } from '@app/protocol';
import { silentLogger, type Logger } from './logger.js';
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
}

export type ScriptSpec = Pick<StartExecution, 'interpreter' | 'content' | 'env' | 'timeoutMs'>;

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

let fileCounter = 0;

/**
 * The script's environment: exactly what the control plane sent, plus a minimal PATH, HOME and
 * LANG when not given. Never the agent's own environment (it holds the agent token).
 */
export function scriptEnv(sent: Record<string, string>): Record<string, string> {
  return { PATH: DEFAULT_PATH, HOME: homedir(), LANG: 'C.UTF-8', ...sent };
}

/**
 * One script run: written to a private temp file, run by its interpreter in its own process group,
 * output handed to `onOutput` as it comes. Never rejects: failures become a `RunResult`.
 */
export class ScriptRun {
  readonly result: Promise<RunResult>;
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

  private async run(): Promise<RunResult> {
    let file: string | undefined;
    try {
      const dir = await privateScriptsDir();
      file = join(dir, `script-${process.pid}-${++fileCounter}.${EXTENSIONS[this.spec.interpreter]}`);
      // Synchronous: a script is at most 1 MiB, and the promise API costs three thread-pool round
      // trips (open, write, close) before the spawn can start.
      writeFileSync(file, this.spec.content, { mode: 0o600, flag: 'wx' });
      if (this.stop) return this.outcome(null, null, null);
      return await this.spawn(file);
    } catch (err) {
      return this.failed(`could not prepare the script: ${(err as Error).message}`);
    } finally {
      for (const t of this.timers) clearTimeout(t);
      if (file) removeFile(file, this.log);
    }
  }

  private async spawn(file: string): Promise<RunResult> {
    const child = execa(this.spec.interpreter, [file], {
      env: scriptEnv(this.spec.env),
      extendEnv: false,
      stdin: 'ignore',
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
