import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isLogLevel, type LogLevel } from './logger.js';

/** Everything the agent needs to run, parsed once at start. */
export interface AgentConfig {
  url: string;
  token: string;
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

export const USAGE = `Usage: devpilot-agent --url URL --token TOKEN [options]

Connects to a Devpilot control plane and runs the scripts it sends.

Options:
  --url URL            control plane URL, e.g. https://cp.example.com   (env DEVPILOT_URL)
  --token TOKEN        this server's agent token                        (env DEVPILOT_AGENT_TOKEN)
  --concurrency N      scripts run at once, more wait in order (default ${DEFAULT_CONCURRENCY})
                                                                        (env DEVPILOT_AGENT_CONCURRENCY)
  --log-level LEVEL    debug, info, warn or error (default info)      (env DEVPILOT_AGENT_LOG_LEVEL)
  --ca-file PEM        also trust the CA certificates in this PEM file, for a control plane
                       behind a private CA                              (env DEVPILOT_CA_FILE)
  -h, --help           show this help
  -v, --version        print the agent version

Prefer the environment variable for the token: command-line arguments are visible to other users in ps.
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
  const token = values.token || nonEmpty(env.DEVPILOT_AGENT_TOKEN);
  if (!url) throw new ConfigError('missing --url (or DEVPILOT_URL)');
  if (!token) throw new ConfigError('missing --token (or DEVPILOT_AGENT_TOKEN)');
  checkUrl(url);

  const logLevel = values['log-level'] || nonEmpty(env.DEVPILOT_AGENT_LOG_LEVEL) || 'info';
  if (!isLogLevel(logLevel)) throw new ConfigError(`invalid log level "${logLevel}"`);

  const caFile = values['ca-file'] || nonEmpty(env.DEVPILOT_CA_FILE);
  return {
    kind: 'run',
    config: {
      url,
      token,
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
