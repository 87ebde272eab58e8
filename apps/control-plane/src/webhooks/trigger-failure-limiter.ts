import ipaddr from 'ipaddr.js';
import { RateLimiterMemory } from 'rate-limiter-flexible';

/**
 * Counts failures per key: a caller address (invalid tokens), or an address and a webhook
 * (invalid signatures). After `points` failures within `windowSeconds`, further failures of that
 * key are answered 429 for `windowSeconds`; a call that passes its checks is never refused for it.
 * IPv6 callers are counted per /64, the block one host usually controls. In-process memory: with
 * several control-plane nodes each one counts on its own.
 */
export class TriggerFailureLimiter {
  private readonly limiter: RateLimiterMemory;

  constructor(
    private readonly points: number,
    private readonly windowSeconds: number,
  ) {
    this.limiter = new RateLimiterMemory({ points, duration: windowSeconds });
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
