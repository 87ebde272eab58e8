import { describe, expect, it } from '@jest/globals';
import { SerialCoalescer } from './serial-coalescer.js';

const tick = () => new Promise((r) => setImmediate(r));

/** A coalescer whose groups the test finishes by hand; items join while the group holds < 3. */
function setup(fail: (items: number[]) => boolean = () => false) {
  const groups: { key: string; items: number[]; finish: () => void }[] = [];
  const coalescer = new SerialCoalescer<number, string>(
    (key, items) =>
      new Promise((resolve, reject) => {
        groups.push({ key, items, finish: () => (fail(items) ? reject(new Error(`failed ${items.join(',')}`)) : resolve(items.map((i) => `${key}:${i}`))) });
      }),
    (group) => group.length < 3,
  );
  return { coalescer, groups };
}

describe('SerialCoalescer', () => {
  it('starts a lone item at once and forgets the key when idle', async () => {
    const { coalescer, groups } = setup();
    const result = coalescer.run('a', 1);
    expect(groups.map((g) => g.items)).toEqual([[1]]);
    groups[0]!.finish();
    expect(await result).toBe('a:1');
    await tick();
    expect(coalescer.size).toBe(0);
  });

  it('runs one group per key at a time; what waited goes together, in arrival order, as far as canJoin allows', async () => {
    const { coalescer, groups } = setup();
    const results = [1, 2, 3, 4, 5].map((n) => coalescer.run('a', n));
    const other = coalescer.run('b', 9);
    expect(groups.map((g) => [g.key, g.items])).toEqual([
      ['a', [1]],
      ['b', [9]],
    ]);
    groups[0]!.finish();
    await tick();
    expect(groups.map((g) => g.items)).toEqual([[1], [9], [2, 3, 4]]);
    groups[2]!.finish();
    await tick();
    expect(groups.map((g) => g.items)).toEqual([[1], [9], [2, 3, 4], [5]]);
    groups[3]!.finish();
    groups[1]!.finish();
    expect(await Promise.all(results)).toEqual(['a:1', 'a:2', 'a:3', 'a:4', 'a:5']);
    expect(await other).toBe('b:9');
  });

  it('rejects every item of a failed group and goes on with the next', async () => {
    const { coalescer, groups } = setup((items) => items.includes(2));
    const results = [1, 2, 3, 4].map((n) => coalescer.run('a', n).catch((e: Error) => e.message));
    await tick();
    groups[0]!.finish();
    await tick();
    groups[1]!.finish();
    await tick();
    expect(groups.map((g) => g.items)).toEqual([[1], [2, 3, 4]]);
    expect(await Promise.all(results)).toEqual(['a:1', 'failed 2,3,4', 'failed 2,3,4', 'failed 2,3,4']);
    expect(coalescer.size).toBe(0);
  });
});
