import { describe, expect, it } from '@jest/globals';
import { readToken } from './webhook-trigger.service.js';

describe('readToken (step 1 of the trigger)', () => {
  it('returns a non-empty string token, ignoring other fields', () => {
    expect(readToken({ token: 'abc', ref: 'main' }, 'application/json')).toBe('abc');
  });

  it.each([
    [undefined, 'text/plain', /Content-Type: application\/json/],
    [undefined, undefined, /^token is required$/],
    [[{ token: 'a' }], 'application/json', /^token is required$/],
    [{}, 'application/json', /^token is required$/],
    [{ token: 1 }, 'application/json', /^token is required$/],
    [{ token: null }, 'application/json', /^token is required$/],
    [{ token: '' }, 'application/json', /^token is required$/],
    [{ token: ['a'] }, 'application/json', /^token is required$/],
  ])('refuses %j (%s)', (body, type, message) => {
    const r = readToken(body, type);
    expect(typeof r).toBe('object');
    expect((r as { message: string }).message).toMatch(message);
    expect((r as { reason: string }).reason).toEqual(expect.any(String));
  });
});
