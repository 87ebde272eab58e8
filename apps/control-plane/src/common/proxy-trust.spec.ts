import { describe, expect, it } from '@jest/globals';
import type { IncomingMessage } from 'node:http';
import { describeListenAddress, trustProxyWarnings, untrustedForwardingDetector, wideTrustEntries } from './proxy-trust.js';

describe('trust proxy settings', () => {
  it('calls named ranges and CIDRs wider than one host wide, exact addresses not', () => {
    expect(wideTrustEntries(['loopback', '10.0.0.0/8', '10.0.0.5', '10.0.0.5/32', '::1', 'fd00::/8', '::1/128', 'uniquelocal'])).toEqual([
      'loopback',
      '10.0.0.0/8',
      'fd00::/8',
      'uniquelocal',
    ]);
  });

  it('warns about a range only while HOST accepts other machines', () => {
    expect(trustProxyWarnings('0.0.0.0', ['loopback'])).toHaveLength(1);
    expect(trustProxyWarnings('::', ['10.0.0.0/8'])[0]).toContain('10.0.0.0/8');
    expect(trustProxyWarnings('192.168.1.10', ['192.168.1.0/24'])).toHaveLength(1);
    expect(trustProxyWarnings('127.0.0.1', ['loopback'])).toEqual([]);
    expect(trustProxyWarnings('localhost', ['10.0.0.0/8'])).toEqual([]);
    expect(trustProxyWarnings('0.0.0.0', ['127.0.0.1', '10.0.0.5'])).toEqual([]);
    expect(trustProxyWarnings('0.0.0.0', [])).toEqual([]);
  });

  it('describes the address the server listens on', () => {
    expect(describeListenAddress({ address: '0.0.0.0', family: 'IPv4', port: 3000 })).toBe('0.0.0.0:3000 (all IPv4 interfaces)');
    expect(describeListenAddress({ address: '::', family: 'IPv6', port: 3000 })).toBe('[::]:3000 (all interfaces)');
    expect(describeListenAddress({ address: '127.0.0.1', family: 'IPv4', port: 80 })).toBe('127.0.0.1:80');
  });

  it('reports X-Forwarded-For from an untrusted peer once, and nothing for trusted peers or plain requests', () => {
    const warned: string[] = [];
    const detect = untrustedForwardingDetector((a) => a === '127.0.0.1', (peer) => warned.push(peer));
    const req = (peer: string, xff?: string) => ({ headers: xff ? { 'x-forwarded-for': xff } : {}, socket: { remoteAddress: peer } }) as unknown as IncomingMessage;
    detect(req('10.0.0.9'));
    detect(req('127.0.0.1', '1.2.3.4'));
    expect(warned).toEqual([]);
    detect(req('10.0.0.9', '1.2.3.4'));
    detect(req('10.0.0.8', '1.2.3.4'));
    expect(warned).toEqual(['10.0.0.9']);
  });
});
