// The peer: adnanh/webhook (Debian package `webhook`), a Go server that runs a command per request.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, ManagedProcess, waitFor } from './util.mjs';

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

let checked;
/** The webhook binary, installed with apt-get when missing and we are root; else null and why. */
export function peerBinary(log) {
  if (checked) return checked;
  let bin = which('webhook');
  if (!bin && process.getuid?.() === 0 && which('apt-get')) {
    log('adnanh/webhook is missing: apt-get install -y webhook');
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', timeout: 180_000 });
    spawnSync('apt-get', ['install', '-y', '-qq', 'webhook'], { stdio: 'ignore', timeout: 180_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    bin = which('webhook');
  }
  checked = bin
    ? { bin }
    : { bin: null, why: 'adnanh/webhook is not installed and could not be installed here (needs root and apt-get): `sudo apt-get install -y webhook`; the peer baselines are skipped' };
  return checked;
}

/**
 * Starts the peer with the given hooks, each `{id, command, args?, output}`; every hook requires a
 * valid `X-Webhook-Signature` (hex HMAC-SHA256 of the body) under `secret`, like our trigger.
 */
export async function startPeer(bin, hooks, secret) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-bench-peer-'));
  const file = path.join(dir, 'hooks.json');
  await writeFile(
    file,
    JSON.stringify(
      hooks.map((h) => ({
        id: h.id,
        'execute-command': h.command,
        'pass-arguments-to-command': (h.args ?? []).map((a) => ({ source: 'string', name: a })),
        'include-command-output-in-response': h.output,
        'response-message': 'ok',
        'trigger-rule': { match: { type: 'payload-hmac-sha256', secret, parameter: { source: 'header', name: 'X-Webhook-Signature' } } },
      })),
      null,
      2,
    ),
  );
  const port = await freePort();
  const proc = new ManagedProcess('peer', bin, ['-hooks', file, '-ip', '127.0.0.1', '-port', String(port)], { env: { PATH: process.env.PATH } });
  const url = `http://127.0.0.1:${port}`;
  await waitFor('the peer listening', async () => {
    if (!proc.running) throw new Error(`it exited: ${proc.tail}`);
    // An unknown hook answers 404 once the server listens.
    return (await fetch(`${url}/hooks/__probe`, { signal: AbortSignal.timeout(1000) })).status > 0;
  }, 15_000, 100);
  return {
    url,
    proc,
    async stop() {
      await proc.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
