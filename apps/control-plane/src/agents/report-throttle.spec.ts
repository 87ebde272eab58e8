import { describe, expect, it } from '@jest/globals';
import { type CutOff, ReportThrottle } from './report-throttle.js';

const tick = () => new Promise((r) => setImmediate(r));

function setup(opts = { concurrency: 2, maxQueued: 3, refusalBurst: 3, refusalsPerSecond: 1 }) {
  const cuts: [string, CutOff][] = [];
  let now = 0;
  const throttle = new ReportThrottle((id, why) => cuts.push([id, why]), opts, () => now);
  return { throttle, cuts, advance: (ms: number) => (now += ms) };
}

/** A report whose handling the test finishes by hand. */
function pending<T>(value: T) {
  let finish!: () => void;
  let started = false;
  const done = new Promise<void>((r) => (finish = r));
  return {
    handle: async () => {
      started = true;
      await done;
      return value;
    },
    finish: () => finish(),
    get started() {
      return started;
    },
  };
}

describe('ReportThrottle', () => {
  it('handles at most `concurrency` reports of a server at once, the rest in arrival order', async () => {
    const { throttle } = setup();
    const reports = [1, 2, 3, 4].map((n) => pending(n));
    const results = reports.map((r) => throttle.run('a', r.handle, () => false));
    const other = pending(9);
    const otherResult = throttle.run('b', other.handle, () => false);
    await tick();
    expect(reports.map((r) => r.started)).toEqual([true, true, false, false]);
    expect(other.started).toBe(true); // another server has its own lane
    reports[1]!.finish();
    await tick();
    expect(reports.map((r) => r.started)).toEqual([true, true, true, false]);
    for (const r of reports) r.finish();
    other.finish();
    expect(await Promise.all(results)).toEqual([1, 2, 3, 4]);
    expect(await otherResult).toBe(9);
    expect(throttle.size).toBe(0);
  });

  it('cuts a server off when more than `maxQueued` wait, and drops what waited', async () => {
    const { throttle, cuts } = setup();
    const reports = Array.from({ length: 6 }, (_, n) => pending(n));
    const results = reports.map((r) => throttle.run('a', r.handle, () => false));
    await tick();
    expect(cuts).toEqual([['a', 'too many reports waiting']]);
    for (const r of reports) r.finish();
    // The two running finish; the three that waited and the one past the limit are dropped.
    expect(await Promise.all(results)).toEqual([0, 1, undefined, undefined, undefined, undefined]);
    expect(reports.map((r) => r.started)).toEqual([true, true, false, false, false, false]);
  });

  it('cuts a server off when its refusals exceed the budget; the budget refills with time', async () => {
    const { throttle, cuts, advance } = setup();
    const refused = () => throttle.run('a', async () => 'refused', () => true);
    for (let i = 0; i < 3; i++) expect(await refused()).toBe('refused');
    expect(cuts).toEqual([]);
    advance(1000); // one more token
    await refused();
    expect(cuts).toEqual([]);
    await refused();
    expect(cuts).toEqual([['a', 'too many refused reports']]);
    // Accepted reports never spend the budget.
    for (let i = 0; i < 100; i++) await throttle.run('b', async () => 'ok', () => false);
    expect(cuts).toHaveLength(1);
  });

  it('releases its slot when a report throws', async () => {
    const { throttle } = setup({ concurrency: 1, maxQueued: 10, refusalBurst: 1, refusalsPerSecond: 1 });
    await expect(throttle.run('a', async () => Promise.reject(new Error('database away')), () => false)).rejects.toThrow('database away');
    expect(await throttle.run('a', async () => 'next', () => false)).toBe('next');
  });
});
