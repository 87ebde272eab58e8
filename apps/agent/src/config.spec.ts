import { describe, expect, it } from '@jest/globals';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseCli, readCaFile, readTokenFile } from './config.js';

describe('parseCli', () => {
  it('takes url and token from flags, with defaults for the rest', () => {
    const cmd = parseCli(['--url', 'https://cp.example.com', '--token', 'tok'], {});
    expect(cmd).toEqual({
      kind: 'run',
      config: {
        url: 'https://cp.example.com',
        tokenSource: { kind: 'argument', token: 'tok' },
        runAsDefault: 'devpilot-run',
        allowRunAs: [],
        concurrency: 4,
        killGraceMs: 5000,
        shutdownGraceMs: 30000,
        logLevel: 'info',
      },
    });
  });

  it('falls back to the environment, where an empty value counts as unset', () => {
    const cmd = parseCli([], {
      DEVPILOT_URL: 'http://localhost:3000',
      DEVPILOT_AGENT_TOKEN: 'from-env',
      DEVPILOT_AGENT_CONCURRENCY: '',
      DEVPILOT_AGENT_KILL_GRACE_MS: '250',
      DEVPILOT_AGENT_SHUTDOWN_GRACE_MS: '1000',
    });
    expect(cmd.kind === 'run' && cmd.config).toMatchObject({
      url: 'http://localhost:3000',
      tokenSource: { kind: 'environment', token: 'from-env' },
      concurrency: 4,
      killGraceMs: 250,
      shutdownGraceMs: 1000,
    });
  });

  it('prefers flags over the environment', () => {
    const cmd = parseCli(['--concurrency', '2', '--token', 'flag'], { DEVPILOT_URL: 'http://x', DEVPILOT_AGENT_TOKEN: 'env', DEVPILOT_AGENT_CONCURRENCY: '9' });
    expect(cmd.kind === 'run' && [cmd.config.tokenSource, cmd.config.concurrency]).toEqual([{ kind: 'argument', token: 'flag' }, 2]);
  });

  it('answers --help and --version without needing a url', () => {
    expect(parseCli(['--help'], {})).toEqual({ kind: 'help' });
    expect(parseCli(['-v'], {})).toEqual({ kind: 'version' });
  });

  it.each([
    [[], 'missing --url'],
    [['--url', 'http://x'], 'missing --token'],
    [['--url', 'ftp://x', '--token', 't'], 'http:// or https://'],
    [['--url', 'not a url', '--token', 't'], 'not a URL'],
    [['--url', 'http://x', '--token', 't', '--concurrency', '0'], 'between 1 and'],
    [['--url', 'http://x', '--token', 't', '--concurrency', 'many'], 'whole number'],
    [['--url', 'http://x', '--token', 't', '--log-level', 'loud'], 'invalid log level'],
    [['--url', 'http://x', '--token', 't', '--allow-run-as', 'deploy,bad user'], '--allow-run-as: "bad user" is not a valid user name'],
    [['--url', 'http://x', '--token', 't', '--run-as-default', 'x'.repeat(33)], 'is not a valid user name'],
    [['--bogus'], "Unknown option '--bogus'"],
  ])('refuses %j with a clear message', (argv, message) => {
    expect(() => parseCli(argv, {})).toThrow(ConfigError);
    expect(() => parseCli(argv, {})).toThrow(message);
  });

  it('takes a CA file from --ca-file or DEVPILOT_CA_FILE', () => {
    const base = { DEVPILOT_URL: 'https://x', DEVPILOT_AGENT_TOKEN: 't' };
    const fromFlag = parseCli(['--ca-file', '/etc/ca.pem'], { ...base, DEVPILOT_CA_FILE: '/other.pem' });
    expect(fromFlag.kind === 'run' && fromFlag.config.caFile).toBe('/etc/ca.pem');
    const fromEnv = parseCli([], { ...base, DEVPILOT_CA_FILE: '/env.pem' });
    expect(fromEnv.kind === 'run' && fromEnv.config.caFile).toBe('/env.pem');
    const none = parseCli([], { ...base, DEVPILOT_CA_FILE: '' });
    expect(none.kind === 'run' && 'caFile' in none.config).toBe(false);
  });
});

describe('token sources and users', () => {
  const base = { DEVPILOT_URL: 'https://x' };
  const config = (argv: string[], env: NodeJS.ProcessEnv) => {
    const cmd = parseCli(argv, { ...base, ...env });
    if (cmd.kind !== 'run') throw new Error('not a run');
    return cmd.config;
  };

  it('prefers the token file to the environment, and knows a one-time hand-over file', () => {
    expect(config(['--token-file', '/etc/t'], { DEVPILOT_AGENT_TOKEN: 'env' }).tokenSource).toEqual({ kind: 'file', path: '/etc/t', removeAfterRead: false });
    expect(config([], { DEVPILOT_AGENT_TOKEN_FILE: '/tmp/x/token', DEVPILOT_AGENT_TOKEN_FILE_ONCE: '1' }).tokenSource).toEqual({
      kind: 'file',
      path: '/tmp/x/token',
      removeAfterRead: true,
    });
    expect(config([], { DEVPILOT_AGENT_TOKEN_FD: '3' }).tokenSource).toEqual({ kind: 'fd', fd: 3 });
    expect(config([], { DEVPILOT_AGENT_TOKEN: 'env' }).tokenSource).toEqual({ kind: 'environment', token: 'env' });
  });

  it('reads the users scripts may run as', () => {
    expect(config(['--token', 't', '--allow-run-as', 'deploy, backup,deploy'], {}).allowRunAs).toEqual(['deploy', 'backup']);
    expect(config(['--token', 't'], { DEVPILOT_ALLOW_RUN_AS: 'root', DEVPILOT_RUN_AS_DEFAULT: 'nobody' })).toMatchObject({ allowRunAs: ['root'], runAsDefault: 'nobody' });
  });

  it('reads a 0600 token file and refuses one other users may read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-token-'));
    try {
      const file = join(dir, 'token');
      writeFileSync(file, 'dpa_secret\n', { mode: 0o600 });
      expect(readTokenFile(file)).toBe('dpa_secret');
      chmodSync(file, 0o640);
      expect(() => readTokenFile(file)).toThrow('may be read by other users (mode 640): chmod 600');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('readCaFile', () => {
  it('returns the PEM text, and refuses a missing file or one without a certificate', () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-ca-'));
    try {
      const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
      writeFileSync(join(dir, 'ca.pem'), pem);
      writeFileSync(join(dir, 'key.pem'), '-----BEGIN PRIVATE KEY-----\n');
      expect(readCaFile(join(dir, 'ca.pem'))).toBe(pem);
      expect(() => readCaFile(join(dir, 'key.pem'))).toThrow('holds no PEM certificate');
      expect(() => readCaFile(join(dir, 'missing.pem'))).toThrow(`cannot read the CA file ${join(dir, 'missing.pem')}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
