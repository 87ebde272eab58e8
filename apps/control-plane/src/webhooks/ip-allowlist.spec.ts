import { describe, expect, it } from '@jest/globals';
import { Allowlist, canonicalAddress, InvalidAllowlistEntry, MAX_ALLOWED_IPS, normalizeAllowlist } from './ip-allowlist.js';

describe('normalizeAllowlist', () => {
  it('keeps addresses and CIDRs in one canonical form, without duplicates', () => {
    expect(
      normalizeAllowlist(['10.1.2.3/8', ' 192.168.0.1', '192.168.0.1', '2001:0DB8:0000::1', '2001:db8::1/32', '::ffff:1.2.3.4', '::ffff:10.0.0.0/104', '0.0.0.0/0', '::/0']),
    ).toEqual(['10.0.0.0/8', '192.168.0.1', '2001:db8::1', '2001:db8::/32', '1.2.3.4', '0.0.0.0/0', '::/0']);
  });

  it.each(['', 'localhost', '10', '10.1', '1.2.3', '0x0a.0.0.1', '256.0.0.1', '10.0.0.0/33', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8/8', '::1/129', 'fe80::1%eth0', '1.2.3.4 5.6.7.8', ':::'])(
    'refuses %j and names it',
    (bad) => {
      expect(() => normalizeAllowlist(['127.0.0.1', bad])).toThrow(InvalidAllowlistEntry);
      expect(() => normalizeAllowlist([bad])).toThrow(`"${bad}"`);
    },
  );

  it('refuses more than the maximum number of entries', () => {
    const many = Array.from({ length: MAX_ALLOWED_IPS + 1 }, (_, i) => `10.0.${Math.floor(i / 256)}.${i % 256}`);
    expect(() => normalizeAllowlist(many)).toThrow(InvalidAllowlistEntry);
    expect(normalizeAllowlist(many.slice(0, MAX_ALLOWED_IPS))).toHaveLength(MAX_ALLOWED_IPS);
  });
});

describe('Allowlist', () => {
  const list = new Allowlist(normalizeAllowlist(['10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '::1']));

  it.each([
    ['10.255.0.1', true],
    ['11.0.0.1', false],
    ['192.168.1.7', true],
    ['192.168.1.8', false],
    ['::ffff:10.1.2.3', true],
    ['::ffff:192.168.1.7', true],
    ['::ffff:11.0.0.1', false],
    ['2001:db8:ffff::1', true],
    ['2001:db9::1', false],
    ['::1', true],
    ['::2', false],
    ['not an ip', false],
    ['', false],
  ] as const)('%s -> %s', (ip, allowed) => {
    expect(list.allows(ip)).toBe(allowed);
  });

  it('an IPv4 range never matches IPv6 addresses of the same bits, and the reverse', () => {
    expect(new Allowlist(['0.0.0.0/0']).allows('::1')).toBe(false);
    expect(new Allowlist(['::/0']).allows('127.0.0.1')).toBe(false);
    expect(new Allowlist(['::/0']).allows('::ffff:127.0.0.1')).toBe(false);
  });
});

describe('canonicalAddress', () => {
  it('unmaps IPv4-mapped IPv6 and compresses IPv6', () => {
    expect(canonicalAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(canonicalAddress('2001:0db8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalAddress(undefined)).toBeNull();
    expect(canonicalAddress('nope')).toBeNull();
  });
});
