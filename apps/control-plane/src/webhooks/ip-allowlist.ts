import ipaddr from 'ipaddr.js';

type Address = ipaddr.IPv4 | ipaddr.IPv6;
type Range = [Address, number];

/** The most entries one webhook's allowlist may hold. */
export const MAX_ALLOWED_IPS = 100;

/** Why an allowlist entry was refused; the message names the entry. */
export class InvalidAllowlistEntry extends Error {}

/**
 * Validates allowlist entries (single IPv4/IPv6 addresses and CIDR ranges) and returns them in one
 * canonical form: IPv4-mapped IPv6 becomes IPv4, IPv6 is compressed, a CIDR is reduced to its network
 * address (`10.1.2.3/8` -> `10.0.0.0/8`), duplicates are dropped, order is kept.
 */
export function normalizeAllowlist(entries: readonly string[]): string[] {
  if (entries.length > MAX_ALLOWED_IPS) throw new InvalidAllowlistEntry(`allowedIps may hold at most ${MAX_ALLOWED_IPS} entries`);
  const out: string[] = [];
  for (const entry of entries) {
    const normalized = normalizeEntry(entry);
    if (!out.includes(normalized)) out.push(normalized);
  }
  return out;
}

function normalizeEntry(raw: string): string {
  const entry = typeof raw === 'string' ? raw.trim() : '';
  const bad = () => new InvalidAllowlistEntry(`allowedIps: "${String(raw).slice(0, 100)}" is not an IP address or CIDR range`);
  if (!entry || entry.length > 100 || entry.includes('%')) throw bad();
  const slash = entry.indexOf('/');
  const address = strictParse(slash < 0 ? entry : entry.slice(0, slash));
  if (!address) throw bad();
  if (slash < 0) return unmap(address).toString();
  const prefixText = entry.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) throw bad();
  let prefix = Number(prefixText);
  let base: Address = address;
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() && prefix >= 96) {
    base = (address as ipaddr.IPv6).toIPv4Address();
    prefix -= 96;
  }
  if (prefix > (base.kind() === 'ipv4' ? 32 : 128)) throw bad();
  const network =
    base.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(`${base.toString()}/${prefix}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${base.toString()}/${prefix}`);
  return `${network.toString()}/${prefix}`;
}

/** Only the forms people write: dotted-quad IPv4 (not `10` or `0x0a.1`) and standard IPv6. */
function strictParse(text: string): Address | null {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (!text.includes(':') || !ipaddr.IPv6.isValid(text)) return null;
  return ipaddr.IPv6.parse(text);
}

function unmap(address: Address): Address {
  return address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() ? (address as ipaddr.IPv6).toIPv4Address() : address;
}

/**
 * The canonical form of a caller's address (what `req.ip` gave): `::ffff:a.b.c.d` becomes
 * `a.b.c.d`. Null for something that is not an address.
 */
export function canonicalAddress(ip: string | undefined): string | null {
  if (!ip || !ipaddr.isValid(ip)) return null;
  return ipaddr.process(ip).toString();
}

/** A parsed allowlist, ready to test addresses against. */
export class Allowlist {
  private readonly ranges: Range[];

  constructor(normalizedEntries: readonly string[]) {
    this.ranges = normalizedEntries.map((e) => {
      if (e.includes('/')) return ipaddr.parseCIDR(e);
      const a = ipaddr.parse(e);
      return [a, a.kind() === 'ipv4' ? 32 : 128] as Range;
    });
  }

  get empty(): boolean {
    return this.ranges.length === 0;
  }

  /** True if the address is in one entry; an unparsable address is never allowed. */
  allows(ip: string | undefined): boolean {
    if (!ip || !ipaddr.isValid(ip)) return false;
    const address = ipaddr.process(ip);
    return this.ranges.some(([base, prefix]) => base.kind() === address.kind() && address.match(base, prefix));
  }
}

/**
 * Allowlists parsed once and reused: the trigger sees the same few lists over and over.
 * Bounded; on overflow it simply starts again.
 */
export class AllowlistCache {
  private readonly cache = new Map<string, Allowlist>();

  constructor(private readonly max = 1000) {}

  get(entries: readonly string[]): Allowlist {
    const key = entries.join(',');
    let list = this.cache.get(key);
    if (!list) {
      if (this.cache.size >= this.max) this.cache.clear();
      list = new Allowlist(entries);
      this.cache.set(key, list);
    }
    return list;
  }
}
