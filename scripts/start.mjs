#!/usr/bin/env node
// `npm start`: build when the sources are newer than the build, then run the control plane with
// the local agent on (DEVPILOT_LOCAL_AGENT=false turns it off). Signals are passed on, so Ctrl-C
// stops everything cleanly, the embedded PostgreSQL included.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { CONTROL_PLANE_NODE_FLAGS } from './control-plane-node-flags.mjs';

const root = path.resolve(import.meta.dirname, '..');
const main = path.join(root, 'dist/apps/control-plane/apps/control-plane/src/main.js');
const outputs = [main, path.join(root, 'dist/agent/devpilot-agent.cjs'), path.join(root, 'dist/dashboard/index.html')];

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function needsBuild() {
  if (outputs.some((f) => !existsSync(f))) return true;
  const sources = Math.max(
    newestSource(path.join(root, 'apps')),
    newestSource(path.join(root, 'libs')),
    statSync(path.join(root, 'package-lock.json')).mtimeMs,
  );
  return sources > Math.min(...outputs.map((f) => statSync(f).mtimeMs));
}

if (needsBuild()) {
  console.log('Building (first start, or the sources changed)...');
  const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const env = { ...process.env };
if (!env.DEVPILOT_LOCAL_AGENT) env.DEVPILOT_LOCAL_AGENT = 'true';
const child = spawn(process.execPath, [...CONTROL_PLANE_NODE_FLAGS, main], { cwd: process.cwd(), env, stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (child.exitCode === null) child.kill(sig);
  });
}
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
