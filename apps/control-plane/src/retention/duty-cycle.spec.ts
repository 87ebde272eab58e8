import { describe, expect, it } from '@jest/globals';
import { type Clock, DutyCycle } from './duty-cycle.js';

/** A clock that only moves when a statement "takes" time or the cycle sleeps. */
function fakeClock() {
  const clock = { t: 0, pauses: [] as number[] };
  const c: Clock = {
    now: () => clock.t,
    sleep: (ms) => {
      clock.pauses.push(ms);
      clock.t += ms;
      return Promise.resolve();
    },
  };
  return { clock, c };
}

describe('DutyCycle', () => {
  it('waits after each statement in proportion to what it took, so statements get `duty` of the time', async () => {
    const { clock, c } = fakeClock();
    const cycle = new DutyCycle(0.25, 5, new AbortController().signal, c);
    let busy = 0;
    for (const took of [40, 4, 200]) {
      const r = await cycle.run(() => {
        clock.t += took;
        busy += took;
        return Promise.resolve(took);
      });
      expect(r).toBe(took);
    }
    // Three times each statement's time at a quarter; the floor only raises the shortest.
    expect(clock.pauses).toEqual([120, 12, 600]);
    expect(busy / clock.t).toBeCloseTo(0.25);
    expect(new DutyCycle(0.25, 5, new AbortController().signal, c).pauseAfter(1)).toBe(5);
  });

  it('does not wait once stopped', async () => {
    const { clock, c } = fakeClock();
    const stop = new AbortController();
    const cycle = new DutyCycle(0.25, 5, stop.signal, c);
    stop.abort();
    await cycle.run(() => {
      clock.t += 50;
      return Promise.resolve();
    });
    expect(clock.pauses).toEqual([]);
  });
});
