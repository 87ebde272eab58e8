// The unprivileged user agents started as root run scripts as (install.sh and npm start create it
// too): the tests, the benchmarks and the soak start agents as root on this machine.
import { execFileSync } from 'node:child_process';

export const SCRIPT_USER = 'devpilot-run';

/** Creates `devpilot-run` when running as root and it is missing. */
export function ensureScriptUser() {
  if (process.getuid?.() !== 0) return;
  try {
    execFileSync('id', ['-u', SCRIPT_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--create-home', '--home-dir', `/var/lib/${SCRIPT_USER}`, '--shell', '/usr/sbin/nologin', SCRIPT_USER]);
  }
}
