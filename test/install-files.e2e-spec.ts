// What an operator installs: the agent's install.sh (its env-file step, run in a temp root, since
// systemd does not run here) and the systemd units (checked by systemd-analyze where it exists).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './support/control-plane.js';

const INSTALL_SH = path.join(ROOT, 'apps/agent/install.sh');
const PEM = '-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-install-'));
  writeFileSync(path.join(dir, 'ca.pem'), PEM);
  writeFileSync(path.join(dir, 'not-a-cert.pem'), 'hello\n');
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs install.sh's own env-file steps (the functions the full install calls) under `root`. */
function envFileStep(root: string, env: Record<string, string>) {
  const r = spawnSync('sh', ['-c', '. "$1" && install_ca_file && write_env_file', 'sh', INSTALL_SH], {
    env: { PATH: process.env.PATH, DEVPILOT_INSTALL_FUNCTIONS_ONLY: '1', DEVPILOT_INSTALL_ROOT: root, ...env },
    encoding: 'utf8',
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
}

describe('install.sh', () => {
  it('keeps the operator’s lines in /etc/devpilot-agent.env and replaces only its own settings', () => {
    const root = path.join(dir, 'root');
    const envFile = path.join(root, 'etc/devpilot-agent.env');
    mkdirSync(path.dirname(envFile), { recursive: true });
    const operatorLines = ['# proxy for this site', 'HTTPS_PROXY=http://proxy.internal:3128', 'DEVPILOT_AGENT_CONCURRENCY=8', 'NODE_OPTIONS=--max-old-space-size=256'];
    writeFileSync(envFile, ['DEVPILOT_URL=https://old.example.com', operatorLines[0], operatorLines[1], 'DEVPILOT_AGENT_TOKEN=old-token', operatorLines[2], operatorLines[3], ''].join('\n'));

    envFileStep(root, { DEVPILOT_URL: 'https://cp.example.com', DEVPILOT_AGENT_TOKEN: 'new-token', DEVPILOT_CA_FILE: path.join(dir, 'ca.pem') });
    const owned = ['DEVPILOT_URL=https://cp.example.com', 'DEVPILOT_AGENT_TOKEN=new-token', 'DEVPILOT_CA_FILE=/etc/devpilot-agent/ca.pem'];
    expect(readFileSync(envFile, 'utf8')).toBe([...operatorLines, ...owned, ''].join('\n'));
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    const ca = path.join(root, 'etc/devpilot-agent/ca.pem');
    expect(readFileSync(ca, 'utf8')).toBe(PEM);
    expect(statSync(ca).mode & 0o777).toBe(0o644);

    // Run again (a token rotation) without --ca-file: the CA set before stays, nothing doubles.
    envFileStep(root, { DEVPILOT_URL: 'https://cp.example.com', DEVPILOT_AGENT_TOKEN: 'rotated' });
    expect(readFileSync(envFile, 'utf8')).toBe(
      [...operatorLines, 'DEVPILOT_CA_FILE=/etc/devpilot-agent/ca.pem', 'DEVPILOT_URL=https://cp.example.com', 'DEVPILOT_AGENT_TOKEN=rotated', ''].join('\n'),
    );
  });

  it('takes --ca-file, refuses a file without a certificate, and names it in the by-hand command', () => {
    const run = (...args: string[]) => spawnSync('sh', [INSTALL_SH, '--url', 'https://cp.example.com', '--token', 't', ...args], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    const bad = run('--ca-file', path.join(dir, 'not-a-cert.pem'));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('holds no PEM certificate');
    const good = run(`--ca-file=${path.join(dir, 'ca.pem')}`);
    // Here it stops at the root or systemd check, after the arguments were taken.
    expect(good.status).toBe(1);
    if (process.getuid?.() === 0) expect(good.stderr).toContain(`--ca-file ${path.join(dir, 'ca.pem')}`);
    else expect(good.stderr).toContain('run as root');
  });
});

const hasSystemdAnalyze = spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0;

(hasSystemdAnalyze ? describe : describe.skip)('systemd units', () => {
  it.each(['deploy/devpilot.service', 'apps/agent/systemd/devpilot-agent.service'])('%s passes systemd-analyze verify', (unit) => {
    const r = spawnSync('systemd-analyze', ['verify', path.join(ROOT, unit)], { encoding: 'utf8' });
    expect(r.stderr.split('\n').filter((l) => l.includes(path.basename(unit)))).toEqual([]);
    expect(r.status).toBe(0);
  });
});
