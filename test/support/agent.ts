import { existsSync } from 'node:fs';
import { copyFile, mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './control-plane.js';
import { ManagedProcess } from './processes.js';

export const AGENT_BUNDLE = path.join(ROOT, 'dist/agent/devpilot-agent.cjs');

export interface AgentProcess {
  proc: ManagedProcess;
  /** SIGTERM by default, and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartAgentOptions {
  url: string;
  token: string;
  concurrency?: number;
  env?: NodeJS.ProcessEnv;
  /**
   * Run it where no interpreter exists: a mount namespace with empty /usr/bin and /usr/local/bin
   * and a private copy of node (root only). Scripts then fail with "interpreter not found".
   */
  withoutInterpreters?: boolean;
}

/** Starts the built agent (npm run build:agent) as a real process; the token goes in the environment. */
export async function startAgent(opts: StartAgentOptions): Promise<AgentProcess> {
  if (!existsSync(AGENT_BUNDLE)) throw new Error(`${AGENT_BUNDLE} is missing: run npm run build:agent first`);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DEVPILOT_URL: opts.url,
    DEVPILOT_AGENT_TOKEN: opts.token,
    DEVPILOT_AGENT_CONCURRENCY: String(opts.concurrency ?? 4),
    DEVPILOT_AGENT_KILL_GRACE_MS: '1000',
    DEVPILOT_AGENT_SHUTDOWN_GRACE_MS: '2000',
    ...opts.env,
  };
  let proc: ManagedProcess;
  if (opts.withoutInterpreters) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-agent-node-'));
    const node = path.join(dir, 'node');
    await copyFile(process.execPath, node);
    const bundle = path.join(dir, 'devpilot-agent.cjs');
    await copyFile(AGENT_BUNDLE, bundle);
    proc = ManagedProcess.spawn(
      'unshare',
      ['--mount', '--', 'sh', '-c', 'mount -t tmpfs none /usr/local/bin && mount -t tmpfs none /usr/bin && exec "$0" "$@"', node, bundle],
      env,
    );
  } else {
    proc = ManagedProcess.spawn(process.execPath, [AGENT_BUNDLE], env);
  }
  return { proc, stop: (signal) => proc.stop(signal) };
}

/** A TCP relay in front of the control plane whose connections a test can cut. */
export class CuttableProxy {
  /** While true, new connections are dropped at once: the agent stays offline. */
  private refusing = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly sockets: Set<net.Socket>,
  ) {}

  static async start(targetPort: number): Promise<CuttableProxy> {
    const sockets = new Set<net.Socket>();
    const holder: { proxy?: CuttableProxy } = {};
    const server = net.createServer((client) => {
      if (holder.proxy?.refusing) return void client.destroy();
      const upstream = net.connect(targetPort, '127.0.0.1');
      sockets.add(client);
      sockets.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    holder.proxy = new CuttableProxy(server, (server.address() as net.AddressInfo).port, sockets);
    return holder.proxy;
  }

  /** Cuts every connection and refuses new ones until resume(). */
  block(): void {
    this.refusing = true;
    this.cut();
  }

  resume(): void {
    this.refusing = false;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get connections(): number {
    return this.sockets.size / 2;
  }

  /** Cuts every connection in both directions at once (the listener stays: the agent can come back). */
  cut(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
