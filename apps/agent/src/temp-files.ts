import { execFileSync } from 'node:child_process';
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The private folder of one agent process is `devpilot-agent-<its pid>-XXXXXX` in the temp dir. */
export const scriptsDirPrefix = (pid: number): string => `devpilot-agent-${pid}-`;

const CURRENT = /^devpilot-agent-(\d+)-[A-Za-z0-9]{6}$/;
// Earlier agents used `devpilot-XXXXXX` holding `script-<pid>-<n>.<ext>` files.
const LEGACY = /^devpilot-[A-Za-z0-9]{6}$/;
const LEGACY_FILE = /^script-(\d+)-\d+\.[a-z]+$/;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, as another user. Only ESRCH says the process is gone.
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Removes the script folders that agents killed without cleanup (SIGKILL, OOM, power loss) left in
 * `dir`: a script may hold secrets. Only folders this user owns, whose agent process is gone; a
 * live agent's folder, or one whose pid was reused by a live process, stays. Returns the removed paths.
 */
export function removeDeadAgentsScripts(dir: string = tmpdir(), asOthers?: ForeignRemover): string[] {
  const uid = process.getuid?.();
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const path = join(dir, name);
    const owner = ownerPid(path, name);
    if (owner === null || owner === process.pid || isAlive(owner)) continue;
    try {
      const st = lstatSync(path);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      // Runs as other users left their working folders (0700, theirs) inside: removed as their owners first.
      if (asOthers) removeForeignFolders(path, uid, asOthers);
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      // Gone meanwhile, or not ours to remove: leave it.
    }
  }
  return removed;
}

/** The pid of the agent that made the folder, or null when it is not an agent's scripts folder. */
function ownerPid(path: string, name: string): number | null {
  const current = CURRENT.exec(name);
  if (current) return Number(current[1]);
  if (!LEGACY.test(name)) return null;
  // A legacy folder names no pid; its files do. An empty one may belong to a live agent: keep it.
  let files: string[];
  try {
    files = readdirSync(path);
  } catch {
    return null;
  }
  const pids = new Set(files.map((f) => LEGACY_FILE.exec(f)?.[1]));
  if (files.length === 0 || pids.size !== 1 || pids.has(undefined)) return null;
  return Number([...pids][0]);
}

/** How to remove a folder as the user who owns it: setpriv, and the users scripts may run as. */
export interface ForeignRemover {
  setpriv: string;
  uids: ReadonlySet<number>;
}

/**
 * Removes the run folders of other users in a dead agent's folder, each as its owner (the agent
 * cannot enter them): only real folders owned by a user scripts may run as, never root's.
 */
function removeForeignFolders(path: string, uid: number | undefined, { setpriv, uids }: ForeignRemover): void {
  for (const name of readdirSync(path)) {
    const entry = join(path, name);
    const st = lstatSync(entry);
    if (!st.isDirectory() || st.uid === uid || st.uid === 0 || !uids.has(st.uid)) continue;
    try {
      execFileSync(setpriv, [`--reuid=${st.uid}`, `--regid=${st.gid}`, '--clear-groups', '--inh-caps=-all', '--ambient-caps=-all', '--', 'rm', '-rf', '--', entry], {
        stdio: 'ignore',
        cwd: '/',
        env: { PATH: '/usr/local/bin:/usr/bin:/bin' },
        timeout: 30_000,
      });
    } catch {
      // The folder's own removal below fails and says nothing: it stays for the next start.
    }
  }
}
