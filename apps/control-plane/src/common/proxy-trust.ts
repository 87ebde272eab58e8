import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import ipaddr from 'ipaddr.js';

const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  return ipaddr.isValid(host) && ipaddr.process(host).range() === 'loopback';
}

/** Entries that name more than one address: a named range, or a CIDR wider than one host. */
export function wideTrustEntries(trustProxy: string[]): string[] {
  return trustProxy.filter((entry) => {
    if (NAMED_RANGES.has(entry)) return true;
    if (!entry.includes('/')) return false;
    const [addr, bits] = ipaddr.parseCIDR(entry);
    return bits < (addr.kind() === 'ipv4' ? 32 : 128);
  });
}

/**
 * Settings that let callers choose the address the allowlists see. A trusted range is any of its
 * members' word for the caller's address; when HOST also accepts connections from other machines,
 * a member that is not the proxy can connect directly and set X-Forwarded-For itself.
 */
export function trustProxyWarnings(host: string, trustProxy: string[]): string[] {
  const wide = wideTrustEntries(trustProxy);
  if (wide.length === 0 || isLoopbackHost(host)) return [];
  return [
    `DEVPILOT_TRUST_PROXY=${trustProxy.join(',')} trusts every address in ${wide.join(', ')} while HOST=${host} accepts ` +
      'connections from other machines: any of those addresses can connect directly and set X-Forwarded-For to pass an ' +
      "IP allowlist. List the proxy's exact address(es) in DEVPILOT_TRUST_PROXY, and set HOST=127.0.0.1 when the proxy " +
      'runs on this machine.',
  ];
}

/** `0.0.0.0:3000 (all IPv4 interfaces)`: where the server really listens, not a URL that guesses. */
export function describeListenAddress(address: AddressInfo | string | null): string {
  if (address === null) return 'nowhere';
  if (typeof address === 'string') return address;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const all = address.address === '0.0.0.0' ? ' (all IPv4 interfaces)' : address.address === '::' ? ' (all interfaces)' : '';
  return `${host}:${address.port}${all}`;
}

/**
 * Calls `warn` once, for the first request that carries X-Forwarded-For from a peer the trust
 * setting does not cover: behind a proxy that is not trusted, every caller has the proxy's address.
 */
export function untrustedForwardingDetector(
  isTrusted: (address: string) => boolean,
  warn: (peer: string) => void,
): (req: IncomingMessage) => void {
  let warned = false;
  return (req) => {
    if (warned || req.headers['x-forwarded-for'] === undefined) return;
    const peer = req.socket.remoteAddress;
    if (!peer || isTrusted(peer)) return;
    warned = true;
    warn(peer);
  };
}

export function untrustedForwardingWarning(peer: string): string {
  return (
    `a request came with X-Forwarded-For from ${peer}, which DEVPILOT_TRUST_PROXY does not list: the header is ignored ` +
    `and every caller through that proxy has its address (${peer}). If ${peer} is your reverse proxy, set DEVPILOT_TRUST_PROXY=${peer}. ` +
    'Said once.'
  );
}
