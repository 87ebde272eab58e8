import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { ROOT } from './control-plane.js';

/**
 * A TCP relay in front of a PostgreSQL server that a test can make unreachable:
 * - `blackhole()`: every open connection is cut and new ones are accepted but never answered
 *   (a network partition: the client can only time out);
 * - `refuse()`: every open connection is cut and new ones are closed at once (the server is down);
 * - `open()`: forwards again, possibly to a new port (`retarget`, after a real restart).
 */
export class DatabaseGate {
  private mode: 'open' | 'blackhole' | 'refuse' = 'open';
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private targetPort: number,
  ) {}

  static async start(targetPort: number): Promise<DatabaseGate> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const gate = new DatabaseGate(server, (server.address() as net.AddressInfo).port, targetPort);
    server.on('connection', (client) => gate.accept(client));
    return gate;
  }

  private accept(client: net.Socket): void {
    this.sockets.add(client);
    client.on('error', () => undefined).on('close', () => this.sockets.delete(client));
    if (this.mode === 'refuse') return void client.destroy();
    if (this.mode === 'blackhole') return; // held open, never answered
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    this.sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', drop).on('close', () => {
      this.sockets.delete(upstream);
      drop();
    });
    client.on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Rewrites a URL of the target server so it goes through the gate. */
  via(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  private cutAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  blackhole(): void {
    this.mode = 'blackhole';
    this.cutAll();
  }

  refuse(): void {
    this.mode = 'refuse';
    this.cutAll();
  }

  open(targetPort = this.targetPort): void {
    this.targetPort = targetPort;
    // Connections held by the black hole were never answered: the clients gave up on them already.
    this.cutAll();
    this.mode = 'open';
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

interface EmbeddedPostgresLike {
  start(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A PostgreSQL server of the test's own (the embedded binaries, from the build), which the test
 * may stop and start again; every start listens on a new port (use a DatabaseGate in front).
 */
export class OwnPostgres {
  private constructor(
    private readonly pg: EmbeddedPostgresLike,
    private readonly dir: string,
    public url: string,
  ) {}

  static async start(): Promise<OwnPostgres> {
    const modulePath = path.join(ROOT, 'dist/apps/control-plane/apps/control-plane/src/database/embedded-postgres.js');
    const { EmbeddedPostgres } = (await import(modulePath)) as {
      EmbeddedPostgres: new (o: { dataDir: string; log: (m: string) => void }) => EmbeddedPostgresLike;
    };
    const dir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-own-pg-'));
    const pg = new EmbeddedPostgres({ dataDir: dir, log: () => undefined });
    return new OwnPostgres(pg, dir, await pg.start());
  }

  get port(): number {
    return Number(new URL(this.url).port);
  }

  async stop(): Promise<void> {
    await this.pg.stop();
  }

  /** Starts it again (a new port); returns the new URL. */
  async restart(): Promise<string> {
    await this.pg.stop();
    this.url = await this.pg.start();
    return this.url;
  }

  async destroy(): Promise<void> {
    await this.pg.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
