import { AGENT_IO_PATH, DASHBOARD_IO_PATH, MAX_CHUNKS_PER_BATCH, MAX_JSON_DEPTH, MAX_MESSAGE_BYTES, MAX_VIEWER_MESSAGE_BYTES } from '@app/protocol';
import type { INestApplicationContext } from '@nestjs/common';
import { IoAdapter } from '@nestjs/platform-socket.io';
import type { IncomingMessage } from 'node:http';
import type { Server, ServerOptions } from 'socket.io';
import * as parser from 'socket.io-parser';
import { HandshakeGates } from './handshake-gates.js';
import { jsonTooDeep } from './json-depth.js';

/**
 * socket.io-parser refuses a packet with more than 10 binary attachments by default and the
 * server then drops the connection. Every output chunk of an agent's batch is one attachment, so
 * the decoder must accept a full batch (plus a margin for the ack framing). A text packet nested
 * deeper than the protocol ever needs is refused before JSON.parse sees it (the connection closes).
 */
class BatchDecoder extends parser.Decoder {
  constructor() {
    super({ maxAttachments: MAX_CHUNKS_PER_BATCH + 8 });
  }

  override add(obj: unknown): void {
    if (typeof obj === 'string' && jsonTooDeep(obj, MAX_JSON_DEPTH)) throw new Error(`packet nested deeper than ${MAX_JSON_DEPTH}`);
    super.add(obj);
  }
}

/**
 * The socket.io servers, one per engine path: `/socket.io/` for agents (large output batches),
 * `/dashboard-io/` for viewers (tiny messages, so a small buffer). Nest creates one server per
 * gateway `path` and takes its engine options from the first gateway of that path; the options
 * that matter are set here. Every engine checks the credential of a new connection in
 * `allowRequest`, on the HTTP request, before any packet is parsed (HandshakeGates).
 */
export class DevpilotIoAdapter extends IoAdapter {
  /** The cluster adapter (see createClusterAdapter), given by the caller; none: this process alone. */
  cluster: ClusterAdapter | null = null;

  constructor(private readonly app: INestApplicationContext) {
    super(app);
  }

  override createIOServer(port: number, options?: ServerOptions): Server {
    const path = options?.path ?? AGENT_IO_PATH;
    const viewers = path === DASHBOARD_IO_PATH;
    return super.createIOServer(port, {
      ...options,
      // Both engines (agents, viewers) on the cluster adapter: their namespaces differ, so their channels do too.
      ...(this.cluster ? { adapter: this.cluster.adapter } : {}),
      path,
      // Viewers behind proxies that do not pass WebSocket may need long-polling; agents never.
      transports: viewers ? ['websocket', 'polling'] : ['websocket'],
      maxHttpBufferSize: viewers ? MAX_VIEWER_MESSAGE_BYTES : MAX_MESSAGE_BYTES,
      parser: { ...parser, Decoder: BatchDecoder },
      allowRequest: (req: IncomingMessage, done: (message: string | null | undefined, success: boolean) => void) => {
        const check = this.app.get(HandshakeGates, { strict: false }).get(path);
        if (!check) return done('this socket.io path takes no connections', false);
        check(req).then(
          (refusal) => done(refusal, refusal === null),
          () => done('the credential could not be checked; retry later', false),
        );
      },
    } as ServerOptions) as Server;
  }

  /** After the socket.io server closed (Nest disposes the adapter on shutdown): the cluster's clients. */
  override async dispose(): Promise<void> {
    await super.dispose();
    await this.cluster?.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Several nodes: the socket.io adapter that carries room emits (with acks), fetchSockets,
// disconnectSockets and serverSideEmit between the control-plane processes of one cluster.
// PostgreSQL (the control plane's own database, one LISTEN connection per node) unless REDIS_URL
// is set. The adapter is given to the server at creation, so both namespaces use it.
// ---------------------------------------------------------------------------------------------

/** Nodes tell each other they are alive this often; one silent for CLUSTER_HEARTBEAT_TIMEOUT_MS is gone. */
const CLUSTER_HEARTBEAT_MS = 2_000;
const CLUSTER_HEARTBEAT_TIMEOUT_MS = 6_000;
/** How long fetchSockets and serverSideEmit with acks wait for the other nodes. */
const CLUSTER_REQUEST_TIMEOUT_MS = 3_000;

export interface ClusterAdapter {
  kind: 'postgres' | 'redis';
  adapter: NonNullable<ServerOptions['adapter']>;
  close(): Promise<void>;
}

/** Connects the adapter's clients; the caller closes it after the socket.io server. */
export async function createClusterAdapter(
  options: { databaseUrl: string; redisUrl: string | null },
  onError: (err: Error) => void,
): Promise<ClusterAdapter> {
  const clusterOptions = {
    heartbeatInterval: CLUSTER_HEARTBEAT_MS,
    heartbeatTimeout: CLUSTER_HEARTBEAT_TIMEOUT_MS,
    requestsTimeout: CLUSTER_REQUEST_TIMEOUT_MS,
  };
  if (options.redisUrl) {
    const { createClient } = await import('redis');
    const { createAdapter } = await import('@socket.io/redis-adapter');
    const pub = createClient({ url: options.redisUrl });
    const sub = pub.duplicate();
    pub.on('error', onError);
    sub.on('error', onError);
    await Promise.all([pub.connect(), sub.connect()]);
    // Redis pub/sub channels ignore the database number: the channels are named after the
    // control plane's database, so clusters sharing a Redis (on other databases) stay apart.
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: options.databaseUrl });
    await client.connect();
    let database: string;
    try {
      database = (await client.query<{ db: string }>('SELECT current_database() AS db')).rows[0].db;
    } finally {
      await client.end();
    }
    return {
      kind: 'redis',
      adapter: createAdapter(pub, sub, { key: `devpilot:${database}`, requestsTimeout: CLUSTER_REQUEST_TIMEOUT_MS }) as ClusterAdapter['adapter'],
      close: async () => {
        await Promise.allSettled([pub.quit(), sub.quit()]);
      },
    };
  }
  const { default: pg } = await import('pg');
  const { createAdapter } = await import('@socket.io/postgres-adapter');
  // Its own small pool: one connection stays in LISTEN, the others publish (NOTIFY, attachments).
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 4, application_name: 'devpilot-cluster' });
  pool.on('error', onError);
  // A client the adapter holds (its LISTEN connection) is not idle, so the pool's handler does not
  // see its errors: unhandled, a database outage would end the process.
  pool.on('connect', (client) => client.on('error', onError));
  let closed = false;
  return {
    kind: 'postgres',
    adapter: createAdapter(pool, { ...clusterOptions, errorHandler: onError }) as ClusterAdapter['adapter'],
    close: async () => {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
