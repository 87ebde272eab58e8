import ipaddr from 'ipaddr.js';
import type { Pool } from 'pg';
import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterPostgres } from 'rate-limiter-flexible';

/** Where the counts live: the shared table (every node counts together) or, without one, this process. */
export interface FailureStore {
  pool: Pool;
  /** Keeps the limiters that share the table apart. */
  keyPrefix: string;
}

/** The table (migration 1764730000000) every node's limiters share. */
const TABLE = 'trigger_failure_limit';

/**
 * Counts failures per key: a caller address (invalid tokens), or an address and a webhook
 * (invalid signatures). After `points` failures within `windowSeconds`, further failures of that
 * key are answered 429 for `windowSeconds`; a call that passes its checks is never refused for it.
 * IPv6 callers are counted per /64, the block one host usually controls. With a store, the counts
 * are in PostgreSQL, shared by every control-plane node (only failures touch it: a valid call
 * never reads it); if the database cannot be reached, this process counts on its own meanwhile.
 */
export class TriggerFailureLimiter {
  private readonly limiter: RateLimiterAbstract;

  constructor(
    private readonly points: number,
    private readonly windowSeconds: number,
    store?: FailureStore,
  ) {
    const memory = new RateLimiterMemory({ points, duration: windowSeconds });
    this.limiter = store
      ? new RateLimiterPostgres({
          storeClient: store.pool,
          storeType: 'pool',
          tableName: TABLE,
          tableCreated: true,
          keyPrefix: store.keyPrefix,
          points,
          duration: windowSeconds,
          insuranceLimiter: memory,
        })
      : memory;
  }

  /** Seconds until the address may try again, or 0 when it is not blocked. */
  async blockedFor(ip: string): Promise<number> {
    const r = await this.limiter.get(keyOf(ip));
    return r && r.consumedPoints >= this.points ? Math.max(1, Math.ceil(r.msBeforeNext / 1000)) : 0;
  }

  /** Records one invalid token from the address. */
  async failed(ip: string): Promise<void> {
    const key = keyOf(ip);
    try {
      const r = await this.limiter.consume(key);
      // The last allowed failure starts a full window of refusal.
      if (r.consumedPoints >= this.points) await this.limiter.block(key, this.windowSeconds);
    } catch {
      // Already over the limit: it stays blocked.
    }
  }
}

function keyOf(key: string): string {
  const [ip = key, rest] = key.split('|', 2);
  const address = addressKey(ip);
  return rest === undefined ? address : `${address}|${rest}`;
}

function addressKey(ip: string): string {
  if (!ipaddr.isValid(ip)) return ip;
  const a = ipaddr.process(ip);
  if (a.kind() === 'ipv4') return a.toString();
  return `${ipaddr.IPv6.networkAddressFromCIDR(`${a.toString()}/64`).toString()}/64`;
}
