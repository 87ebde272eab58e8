import { MAX_CHUNKS_PER_BATCH, MAX_MESSAGE_BYTES } from '@app/protocol';
import { IoAdapter } from '@nestjs/platform-socket.io';
import type { Server, ServerOptions } from 'socket.io';
import * as parser from 'socket.io-parser';

/**
 * socket.io-parser refuses a packet with more than 10 binary attachments by default and the
 * server then drops the connection. Every output chunk of an agent's batch is one attachment, so
 * the decoder must accept a full batch (plus a margin for the ack framing).
 */
class BatchDecoder extends parser.Decoder {
  constructor() {
    super({ maxAttachments: MAX_CHUNKS_PER_BATCH + 8 });
  }
}

/**
 * The one socket.io server behind both namespaces. Engine options are per server, not per
 * namespace (Nest takes them from whichever gateway is created first), so they are set here:
 * both transports at the engine (viewers behind proxies may need long-polling; `/agent` refuses
 * anything but WebSocket in its own middleware), the message size limit and the parser.
 */
export class DevpilotIoAdapter extends IoAdapter {
  /** The cluster adapter (see createClusterAdapter), given by the caller; none: this process alone. */
  cluster: ClusterAdapter | null = null;

  override createIOServer(port: number, options?: ServerOptions): Server {
    return super.createIOServer(port, {
      ...options,
      ...(this.cluster ? { adapter: this.cluster.adapter } : {}),
      transports: ['websocket', 'polling'],
      maxHttpBufferSize: MAX_MESSAGE_BYTES,
      parser: { ...parser, Decoder: BatchDecoder },
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
