import { describe, expect, it } from '@jest/globals';
import { ConfigError, parseCli } from './config.js';

describe('parseCli', () => {
  it('takes url and token from flags, with defaults for the rest', () => {
    const cmd = parseCli(['--url', 'https://cp.example.com', '--token', 'tok'], {});
    expect(cmd).toEqual({
      kind: 'run',
      config: { url: 'https://cp.example.com', token: 'tok', concurrency: 4, killGraceMs: 5000, shutdownGraceMs: 30000, logLevel: 'info' },
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
      token: 'from-env',
      concurrency: 4,
      killGraceMs: 250,
      shutdownGraceMs: 1000,
    });
  });

  it('prefers flags over the environment', () => {
    const cmd = parseCli(['--concurrency', '2', '--token', 'flag'], { DEVPILOT_URL: 'http://x', DEVPILOT_AGENT_TOKEN: 'env', DEVPILOT_AGENT_CONCURRENCY: '9' });
    expect(cmd.kind === 'run' && [cmd.config.token, cmd.config.concurrency]).toEqual(['flag', 2]);
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
    [['--bogus'], "Unknown option '--bogus'"],
  ])('refuses %j with a clear message', (argv, message) => {
    expect(() => parseCli(argv, {})).toThrow(ConfigError);
    expect(() => parseCli(argv, {})).toThrow(message);
  });
});
