import { jsonTooDeep } from './json-depth.js';

describe('jsonTooDeep', () => {
  it('counts arrays and objects, not brackets inside strings', () => {
    expect(jsonTooDeep('[[[1]]]', 3)).toBe(false);
    expect(jsonTooDeep('[[[[1]]]]', 3)).toBe(true);
    expect(jsonTooDeep('{"a":{"b":[1]}}', 3)).toBe(false);
    expect(jsonTooDeep('{"a":{"b":[{}]}}', 3)).toBe(true);
    expect(jsonTooDeep('["[[[[[[", "\\"[[[[[["]', 2)).toBe(false);
    expect(jsonTooDeep(Buffer.from('[' .repeat(100)), 32)).toBe(true);
  });

  it('a flat document of any size passes', () => {
    expect(jsonTooDeep(JSON.stringify(Array.from({ length: 10_000 }, (_, i) => ({ i, s: '[{' }))), 2)).toBe(false);
  });
});
