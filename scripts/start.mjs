#!/usr/bin/env node
// `npm start`: build when the sources are newer than the build, then run the control plane with
// the local agent on (DEVPILOT_LOCAL_AGENT=false turns it off). Signals are passed on, so Ctrl-C,
// or SIGTERM/SIGINT to this process (npm's script runs it with `exec`, so npm's forwarded signal
// lands here), stops everything cleanly, the embedded PostgreSQL included.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { CONTROL_PLANE_MAIN, ROOT as root, runControlPlane, runForwardingSignals } from './run-control-plane.mjs';

const outputs = [CONTROL_PLANE_MAIN, path.join(root, 'dist/agent/devpilot-agent.cjs'), path.join(root, 'dist/dashboard/index.html')];

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
  // Signals reach the build too: a stop during the first build must not leave it running.
  const status = await runForwardingSignals('npm', ['run', 'build', '--silent'], { cwd: root });
  if (status !== 0) process.exit(status);
}

const env = { ...process.env };
if (!env.DEVPILOT_LOCAL_AGENT) env.DEVPILOT_LOCAL_AGENT = 'true';
await runControlPlane(env);
