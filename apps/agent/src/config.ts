import { MAX_RUN_AS_LENGTH, RUN_AS_PATTERN } from '@app/protocol';
import { parseArgs } from 'node:util';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { isLogLevel, type LogLevel } from './logger.js';
import { DEFAULT_SCRIPT_USER } from './script-users.js';

/**
 * Where the agent token comes from. Preferred: a 0600 file. From the environment, the agent
 * re-executes itself without it (see token.ts); from a file descriptor, a parent that started it
 * (the control plane's local agent, or that re-execution) hands it over through a pipe.
 */
export type TokenSource =
  | { kind: 'argument'; token: string }
  | { kind: 'file'; path: string; removeAfterRead: boolean }
  | { kind: 'fd'; fd: number }
  | { kind: 'environment'; token: string };

/** Everything the agent needs to run, parsed once at start. */
export interface AgentConfig {
  url: string;
  tokenSource: TokenSource;
  /** Scripts run as this user when the agent can switch users and the script names no `runAs`. */
  runAsDefault: string;
  /** Users a script's `runAs` may name (besides the default). */
  allowRunAs: string[];
  concurrency: number;
  /** SIGTERM -> SIGKILL delay when a script is stopped (timeout, cancel, shutdown). */
  killGraceMs: number;
  /** How long running scripts may go on after SIGTERM/SIGINT on the agent. */
  shutdownGraceMs: number;
  logLevel: LogLevel;
  /** A PEM file of CA certificates trusted in addition to the system's (a private CA). */
  caFile?: string;
}

export type CliCommand = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; config: AgentConfig };

/** A usage or configuration mistake: printed to the user as is, then exit 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export const DEFAULT_CONCURRENCY = 4;
export const DEFAULT_KILL_GRACE_MS = 5_000;
export const DEFAULT_SHUTDOWN_GRACE_MS = 30_000;

export const USAGE = `Usage: devpilot-agent --url URL (--token-file FILE | --token TOKEN) [options]

Connects to a Devpilot control plane and runs the scripts it sends.

Options:
  --url URL            control plane URL, e.g. https://cp.example.com   (env DEVPILOT_URL)
  --token-file FILE    a file (mode 0600) holding this server's agent token
                                                                        (env DEVPILOT_AGENT_TOKEN_FILE)
  --token TOKEN        the agent token itself (visible in ps: prefer the file, or
                       env DEVPILOT_AGENT_TOKEN, which the agent removes by re-executing itself)
  --allow-run-as LIST  comma-separated users a script's "run as" may name (default: none)
                                                                        (env DEVPILOT_ALLOW_RUN_AS)
  --run-as-default USER  the user scripts run as when the agent can switch users
                       (root, or CAP_SETUID+CAP_SETGID+CAP_KILL) (default ${DEFAULT_SCRIPT_USER})
                                                                        (env DEVPILOT_RUN_AS_DEFAULT)
  --concurrency N      scripts run at once, more wait in order (default ${DEFAULT_CONCURRENCY})
                                                                        (env DEVPILOT_AGENT_CONCURRENCY)
  --log-level LEVEL    debug, info, warn or error (default info)      (env DEVPILOT_AGENT_LOG_LEVEL)
  --ca-file PEM        also trust the CA certificates in this PEM file, for a control plane
                       behind a private CA                              (env DEVPILOT_CA_FILE)
  -h, --help           show this help
  -v, --version        print the agent version

An agent that cannot switch users runs scripts as itself, and says so at start.
Other environment: DEVPILOT_AGENT_KILL_GRACE_MS (default ${DEFAULT_KILL_GRACE_MS}),
DEVPILOT_AGENT_SHUTDOWN_GRACE_MS (default ${DEFAULT_SHUTDOWN_GRACE_MS}).
Exit codes: 0 stopped by SIGTERM/SIGINT, 2 bad configuration or the control plane refused this agent.
`;

/** Reads the command line and the environment; an empty environment value counts as unset. */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv): CliCommand {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        'token-file': { type: 'string' },
        'allow-run-as': { type: 'string' },
        'run-as-default': { type: 'string' },
        concurrency: { type: 'string' },
        'log-level': { type: 'string' },
        'ca-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    }));
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };

  const url = values.url || nonEmpty(env.DEVPILOT_URL);
  if (!url) throw new ConfigError('missing --url (or DEVPILOT_URL)');
  const tokenSource = tokenSourceOf(values.token, values['token-file'], env);
  checkUrl(url);
  const runAsDefault = userName('--run-as-default', values['run-as-default'] || nonEmpty(env.DEVPILOT_RUN_AS_DEFAULT) || DEFAULT_SCRIPT_USER);
  const allowRaw = values['allow-run-as'] ?? nonEmpty(env.DEVPILOT_ALLOW_RUN_AS) ?? '';
  const allowRunAs = [...new Set(allowRaw.split(',').map((u) => u.trim()).filter(Boolean).map((u) => userName('--allow-run-as', u)))];
  if (allowRunAs.length > 63) throw new ConfigError('--allow-run-as lists more than 63 users');

  const logLevel = values['log-level'] || nonEmpty(env.DEVPILOT_AGENT_LOG_LEVEL) || 'info';
  if (!isLogLevel(logLevel)) throw new ConfigError(`invalid log level "${logLevel}"`);

  const caFile = values['ca-file'] || nonEmpty(env.DEVPILOT_CA_FILE);
  return {
    kind: 'run',
    config: {
      url,
      tokenSource,
      runAsDefault,
      allowRunAs,
      ...(caFile ? { caFile } : {}),
      concurrency: integer('--concurrency', values.concurrency || nonEmpty(env.DEVPILOT_AGENT_CONCURRENCY), DEFAULT_CONCURRENCY, 1, 1024),
      killGraceMs: integer('DEVPILOT_AGENT_KILL_GRACE_MS', nonEmpty(env.DEVPILOT_AGENT_KILL_GRACE_MS), DEFAULT_KILL_GRACE_MS, 0, 3_600_000),
      shutdownGraceMs: integer('DEVPILOT_AGENT_SHUTDOWN_GRACE_MS', nonEmpty(env.DEVPILOT_AGENT_SHUTDOWN_GRACE_MS), DEFAULT_SHUTDOWN_GRACE_MS, 0, 86_400_000),
      logLevel,
    },
  };
}

/** The PEM text of a CA file, checked to hold at least one certificate. */
export function readCaFile(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the CA file ${file}: ${(err as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(`the CA file ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return pem;
}

function tokenSourceOf(argument: string | undefined, file: string | undefined, env: NodeJS.ProcessEnv): TokenSource {
  if (argument) return { kind: 'argument', token: argument };
  const path = file || nonEmpty(env.DEVPILOT_AGENT_TOKEN_FILE);
  if (path) return { kind: 'file', path, removeAfterRead: !file && env.DEVPILOT_AGENT_TOKEN_FILE_ONCE === '1' };
  const fd = nonEmpty(env.DEVPILOT_AGENT_TOKEN_FD);
  if (fd !== undefined) return { kind: 'fd', fd: integer('DEVPILOT_AGENT_TOKEN_FD', fd, 3, 3, 1023) };
  const token = nonEmpty(env.DEVPILOT_AGENT_TOKEN);
  if (token) return { kind: 'environment', token };
  throw new ConfigError('missing --token-file (or DEVPILOT_AGENT_TOKEN_FILE, or DEVPILOT_AGENT_TOKEN)');
}

function userName(option: string, name: string): string {
  if (name.length > MAX_RUN_AS_LENGTH || !RUN_AS_PATTERN.test(name)) throw new ConfigError(`${option}: "${name}" is not a valid user name`);
  return name;
}

/**
 * The token in a file: refused when other users could read it (group or other permissions),
 * since whoever holds it can act as this server's agent.
 */
export function readTokenFile(file: string): string {
  let text: string;
  let mode: number;
  try {
    const fd = openSync(file, 'r');
    try {
      mode = fstatSync(fd).mode;
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    throw new ConfigError(`cannot read the token file ${file}: ${(err as Error).message}`);
  }
  if (mode & 0o077) {
    throw new ConfigError(`the token file ${file} may be read by other users (mode ${(mode & 0o777).toString(8)}): chmod 600 ${file}`);
  }
  const token = text.trim();
  if (!token) throw new ConfigError(`the token file ${file} is empty`);
  return token;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function integer(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function checkUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`--url is not a URL: "${url}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(`--url must start with http:// or https://, got "${url}"`);
  }
}
