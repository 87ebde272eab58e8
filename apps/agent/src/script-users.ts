import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';

/** A user scripts run as, from the user database (`getent passwd`, so NSS users count too). */
export interface ScriptUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** Runs a script as `user` (after the user switch), or as the agent itself when `user` is absent. */
export type UserChoice = { ok: true; user?: ScriptUser } | { ok: false; reason: string };

export const DEFAULT_SCRIPT_USER = 'devpilot-run';

// util-linux `setpriv` switches uid, gid and supplementary groups (initgroups) and drops the
// inheritable and ambient capabilities before it executes the script: Node's spawn sets uid/gid
// only, and an agent given ambient capabilities by its unit must not pass them on.
const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv', '/sbin/setpriv'];
// CAP_KILL (5), CAP_SETGID (6), CAP_SETUID (7): switch users, and signal their process groups.
const SWITCH_CAPS = (1n << 5n) | (1n << 6n) | (1n << 7n);
const LOOKUP_TTL_MS = 60_000;

/** Whether this process may switch users, and the tool it does it with. */
export function switchAbility(statusText?: string): { setpriv: string } | { why: string } {
  if (process.platform !== 'linux') return { why: `user switching is only supported on Linux (this is ${process.platform})` };
  let status = statusText;
  try {
    status ??= readFileSync('/proc/self/status', 'utf8');
  } catch {
    return { why: 'cannot read /proc/self/status to check capabilities' };
  }
  const eff = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(status)?.[1];
  if (!eff || (BigInt(`0x${eff}`) & SWITCH_CAPS) !== SWITCH_CAPS) {
    return { why: 'the agent is not root and lacks CAP_SETUID, CAP_SETGID and CAP_KILL' };
  }
  const setpriv = SETPRIV_PATHS.find((p) => existsSync(p));
  return setpriv ? { setpriv } : { why: 'setpriv (util-linux) is not installed' };
}

/** One line of `getent passwd`, or null. */
export function parsePasswd(line: string): ScriptUser | null {
  const f = line.trim().split(':');
  if (f.length < 7) return null;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || !f[0]) return null;
  return { name: f[0], uid, gid, home: f[5] || '/' };
}

function selfName(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}

/**
 * Who runs scripts on this agent. An agent that can switch users runs them as `defaultUser`
 * (devpilot-run), or as a script's `runAs` when `allow` lists it; one that cannot runs them as
 * itself, and a `runAs` naming anybody else is refused.
 */
export class ScriptUsers {
  readonly self = selfName();
  private readonly cache = new Map<string, { user: ScriptUser | null; at: number }>();

  constructor(
    /** The setpriv binary when this agent can switch users, else null. */
    readonly setpriv: string | null,
    readonly defaultUser: string,
    readonly allow: readonly string[],
    /** Why it cannot switch users (for the log), when it cannot. */
    readonly cannotSwitchBecause: string | null = null,
  ) {}

  static detect(defaultUser: string, allow: readonly string[]): ScriptUsers {
    const ability = switchAbility();
    return 'setpriv' in ability ? new ScriptUsers(ability.setpriv, defaultUser, allow) : new ScriptUsers(null, defaultUser, allow, ability.why);
  }

  get switches(): boolean {
    return this.setpriv !== null;
  }

  /** The user a script that names no `runAs` runs as. */
  get runsScriptsAs(): string {
    return this.switches ? this.defaultUser : this.self;
  }

  /** The users a `runAs` may name here. */
  get allowed(): string[] {
    return this.switches ? [...new Set([this.defaultUser, ...this.allow])] : [this.self];
  }

  /** Whether a script asking for `runAs` may run here: a refusal says why, before anything runs. */
  check(runAs: string | undefined): { ok: true } | { ok: false; reason: string } {
    if (runAs === undefined || this.allowed.includes(runAs)) return { ok: true };
    if (!this.switches) {
      return { ok: false, reason: `the script asks to run as "${runAs}", but this agent cannot switch users (it runs scripts as "${this.self}"); nothing ran` };
    }
    return {
      ok: false,
      reason: `the script asks to run as "${runAs}", which this agent does not allow (its --allow-run-as lists: ${this.allow.join(', ') || 'nobody'}); nothing ran`,
    };
  }

  /** The user a run goes to, looked up now (a user removed meanwhile fails the run, never falls back). */
  async choose(runAs: string | undefined): Promise<UserChoice> {
    const allowed = this.check(runAs);
    if (!allowed.ok) return allowed;
    if (!this.switches) return { ok: true };
    const name = runAs ?? this.defaultUser;
    const user = await this.lookup(name);
    return user ? { ok: true, user } : { ok: false, reason: `the user "${name}" does not exist on this machine; nothing ran` };
  }

  /** Synchronous lookup, for the check at start. */
  exists(name: string): boolean {
    return lookupSync(name) !== null;
  }

  /** The uids of the users scripts may run as here (at start: to clean what their runs left). */
  allowedUids(): Set<number> {
    if (!this.switches) return new Set();
    return new Set(this.allowed.map(lookupSync).flatMap((u) => (u ? [u.uid] : [])));
  }

  private async lookup(name: string): Promise<ScriptUser | null> {
    const hit = this.cache.get(name);
    if (hit && Date.now() - hit.at < LOOKUP_TTL_MS) return hit.user;
    const user = await new Promise<ScriptUser | null>((resolve) => {
      execFile('getent', ['passwd', name], { encoding: 'utf8' }, (err, stdout) => resolve(err ? null : parsePasswd(stdout)));
    });
    this.cache.set(name, { user, at: Date.now() });
    return user;
  }
}

function lookupSync(name: string): ScriptUser | null {
  try {
    return parsePasswd(execFileSync('getent', ['passwd', name], { encoding: 'utf8' }));
  } catch {
    return null;
  }
}
