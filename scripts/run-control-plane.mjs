// Runs the built control plane in the foreground as a child of this process and passes on the
// signals a terminal, a service manager or a container runtime sends, so stopping this process
// stops the control plane, its local agent and its embedded PostgreSQL. Exits as the child did.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import { CONTROL_PLANE_NODE_FLAGS } from './control-plane-node-flags.mjs';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const CONTROL_PLANE_MAIN = path.join(ROOT, 'dist/apps/control-plane/apps/control-plane/src/main.js');
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Spawns `command` with stdio inherited, forwards FORWARDED signals to it; resolves with its exit code. */
export function runForwardingSignals(command, args, options) {
  const child = spawn(command, args, { stdio: 'inherit', ...options });
  const forward = (signal) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const signal of FORWARDED) process.on(signal, forward);
  return new Promise((resolve) => {
    child.once('error', (err) => {
      process.stderr.write(`could not start ${command}: ${err.message}\n`);
      resolve(1);
    });
    child.once('exit', (code, signal) => {
      for (const s of FORWARDED) process.off(s, forward);
      resolve(code ?? 128 + (constants.signals[signal] ?? 0));
    });
  });
}

/** Runs the control plane until it exits, then exits with its code. */
export async function runControlPlane(env) {
  if (!existsSync(CONTROL_PLANE_MAIN)) {
    process.stderr.write(`devpilot: ${CONTROL_PLANE_MAIN} is missing; run \`npm run build\` first\n`);
    process.exit(1);
  }
  process.exit(await runForwardingSignals(process.execPath, [...CONTROL_PLANE_NODE_FLAGS, CONTROL_PLANE_MAIN], { cwd: process.cwd(), env }));
}
