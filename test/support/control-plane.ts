import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, ManagedProcess, waitFor } from './processes.js';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const CONTROL_PLANE_MAIN = path.join(ROOT, 'dist/apps/control-plane/apps/control-plane/src/main.js');

export interface ControlPlane {
  url: string;
  port: number;
  adminKey: string;
  dataDir: string;
  env: NodeJS.ProcessEnv;
  proc: ManagedProcess;
  /** Stops it (SIGTERM by default) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Starts it again with the same port, data dir, database and key. */
  restart(): Promise<void>;
}

export interface StartOptions {
  /** The database URL; omit for the embedded default under dataDir. */
  databaseUrl?: string;
  dataDir?: string;
  port?: number;
  env?: NodeJS.ProcessEnv;
}

/** Starts the built control plane as a real process (run `npm run build` first) and waits for /health. */
export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  if (!existsSync(CONTROL_PLANE_MAIN)) throw new Error(`${CONTROL_PLANE_MAIN} is missing: run npm run build first`);
  const port = opts.port ?? (await freePort());
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'devpilot-cp-')));
  const adminKey = `test-admin-${randomBytes(24).toString('hex')}`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: String(port),
    HOST: '127.0.0.1',
    DEVPILOT_DATA_DIR: dataDir,
    DEVPILOT_ADMIN_API_KEY: adminKey,
    DATABASE_URL: opts.databaseUrl ?? '',
    DEVPILOT_LOCAL_AGENT: 'false',
    DEVPILOT_PUBLIC_URL: `http://127.0.0.1:${port}`,
    ...opts.env,
  };
  const cp: ControlPlane = {
    url: `http://127.0.0.1:${port}`,
    port,
    adminKey,
    dataDir,
    env,
    proc: ManagedProcess.spawn(process.execPath, [CONTROL_PLANE_MAIN], env),
    stop: (signal) => cp.proc.stop(signal),
    async restart() {
      if (cp.proc.running) await cp.proc.stop();
      cp.proc = ManagedProcess.spawn(process.execPath, [CONTROL_PLANE_MAIN], env);
      await waitHealthy(cp);
    },
  };
  await waitHealthy(cp);
  return cp;
}

async function waitHealthy(cp: ControlPlane): Promise<void> {
  try {
    await waitFor(
      'control plane /health',
      async () => {
        if (!cp.proc.running) throw new Error('exited');
        return (await fetch(`${cp.url}/health`)).status === 200;
      },
      60_000,
    );
  } catch (e) {
    throw new Error(`control plane did not become healthy: ${String(e)}\n--- its output:\n${cp.proc.logs.slice(-5000)}`, { cause: e });
  }
}
