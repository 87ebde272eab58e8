import { describe, expect, it } from '@jest/globals';
import { deliveryIdOf, readToken, tokenOf, waitPreference } from './webhook-trigger.service.js';

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

describe('tokenOf (where the token may be)', () => {
  const raw = (s: string) => Buffer.from(s);
  it('path, X-Webhook-Token and Bearer win over the body, which is then never parsed', () => {
    expect(tokenOf({ pathToken: 'p', rawBody: raw('not json'), headers: { 'content-type': 'application/json' } })).toBe('p');
    expect(tokenOf({ rawBody: undefined, headers: { 'x-webhook-token': 'h' } })).toBe('h');
    expect(tokenOf({ rawBody: raw('{"token":"b"}'), headers: { authorization: 'Bearer a', 'content-type': 'application/json' } })).toBe('a');
    expect(tokenOf({ pathToken: 'a', rawBody: undefined, headers: { authorization: 'Bearer a' } })).toBe('a');
  });
  it('two different tokens, malformed JSON and a non-JSON body without a token are refused', () => {
    expect(typeof tokenOf({ pathToken: 'a', rawBody: undefined, headers: { 'x-webhook-token': 'b' } })).toBe('object');
    expect(tokenOf({ rawBody: raw('{"token": '), headers: { 'content-type': 'application/json' } })).toMatchObject({ message: 'Malformed JSON body' });
    expect(typeof tokenOf({ rawBody: raw('token=a'), headers: { 'content-type': 'application/x-www-form-urlencoded' } })).toBe('object');
    expect(tokenOf({ rawBody: raw('{"token":"b"}'), headers: { 'content-type': 'application/json; charset=utf-8' } })).toBe('b');
    expect(typeof tokenOf({ rawBody: undefined, headers: { authorization: 'Basic abc' } })).toBe('object');
  });
});

describe('deliveryIdOf', () => {
  it("the scheme's own id, else Idempotency-Key", () => {
    expect(deliveryIdOf('github', { 'x-github-delivery': 'g', 'idempotency-key': 'i' })).toBe('g');
    expect(deliveryIdOf('github', { 'idempotency-key': 'i' })).toBe('i');
    expect(deliveryIdOf('devpilot', { 'x-github-delivery': 'g' })).toBeNull();
    expect(deliveryIdOf('standard-webhooks', { 'webhook-id': 'w' })).toBe('w');
    expect(deliveryIdOf('gitlab', { 'x-gitlab-event-uuid': 'u' })).toBe('u');
    expect(deliveryIdOf('slack', { 'x-slack-request-timestamp': '1', 'x-slack-signature': 'v0=ab' })).toBe('1:v0=ab');
  });
});

describe('waitPreference', () => {
  it('reads wait=N from Prefer (among other preferences) or ?wait=N; cuts at 60; ignores the rest', () => {
    expect(waitPreference('wait=10', undefined)).toBe(10);
    expect(waitPreference('respond-async, wait=5', undefined)).toBe(5);
    expect(waitPreference(['handling=lenient', 'wait="7"'], undefined)).toBe(7);
    expect(waitPreference(undefined, '3')).toBe(3);
    expect(waitPreference('wait=600', undefined)).toBe(60);
    expect(waitPreference('wait=0', undefined)).toBeNull();
    expect(waitPreference('waiting=5', undefined)).toBeNull();
    expect(waitPreference(undefined, ['1', '2'])).toBeNull();
    expect(waitPreference(undefined, 'soon')).toBeNull();
    expect(waitPreference(undefined, undefined)).toBeNull();
  });
});
