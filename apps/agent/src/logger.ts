/** A tiny structured logger: one JSON object per line on stderr. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(name: string): Logger;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function isLogLevel(value: string): value is LogLevel {
  return value in RANK;
}

let stderrOpen = true;

/**
 * Writes to stderr until it fails, then drops everything. A closed stderr (`agent 2>&1 | head`, a
 * log collector gone) makes every write fail with EPIPE; unhandled, each failure is an uncaught
 * exception whose log line fails again, and the agent spins at 100% CPU instead of running scripts.
 */
export function writeStderr(line: string): void {
  if (!stderrOpen) return;
  if (process.stderr.destroyed) {
    stderrOpen = false;
    return;
  }
  process.stderr.write(line);
}

/** Installs the error handlers that make a closed stdout/stderr silence the agent, not crash or spin it. */
export function tolerateClosedOutput(): void {
  process.stderr.on('error', () => {
    stderrOpen = false;
  });
  // The agent writes to stdout only for --help and --version; a closed stdout must not throw either.
  process.stdout.on('error', () => undefined);
}

export function createLogger(name: string, level: LogLevel = 'info', write: (line: string) => void = writeStderr): Logger {
  const log = (at: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[at] < RANK[level]) return;
    const entry = { time: new Date().toISOString(), level: at, logger: name, msg, ...fields };
    write(`${JSON.stringify(entry, errorReplacer)}\n`);
  };
  return {
    debug: (msg, fields) => log('debug', msg, fields),
    info: (msg, fields) => log('info', msg, fields),
    warn: (msg, fields) => log('warn', msg, fields),
    error: (msg, fields) => log('error', msg, fields),
    child: (child) => createLogger(child, level, write),
  };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = createLogger('silent', 'error', () => undefined);

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}
