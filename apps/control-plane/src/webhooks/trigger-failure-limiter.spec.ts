import { describe, expect, it } from '@jest/globals';
import { TriggerFailureLimiter } from './trigger-failure-limiter.js';

describe('TriggerFailureLimiter', () => {
  it('blocks an address after `points` failures, for about the window', async () => {
    const limiter = new TriggerFailureLimiter(3, 60);
    for (let i = 0; i < 3; i++) {
      expect(await limiter.blockedFor('198.51.100.1')).toBe(0);
      await limiter.failed('198.51.100.1');
    }
    const wait = await limiter.blockedFor('198.51.100.1');
    expect(wait).toBeGreaterThan(55);
    expect(wait).toBeLessThanOrEqual(60);
    expect(await limiter.blockedFor('198.51.100.2')).toBe(0);
  });

  it('counts the IPv4-mapped form as the IPv4 address, and IPv6 per /64', async () => {
    const limiter = new TriggerFailureLimiter(2, 60);
    await limiter.failed('::ffff:198.51.100.1');
    await limiter.failed('198.51.100.1');
    expect(await limiter.blockedFor('198.51.100.1')).toBeGreaterThan(0);
    await limiter.failed('2001:db8:0:1::1');
    await limiter.failed('2001:db8:0:1:ffff::2');
    expect(await limiter.blockedFor('2001:db8:0:1::99')).toBeGreaterThan(0);
    expect(await limiter.blockedFor('2001:db8:0:2::1')).toBe(0);
  });
});
