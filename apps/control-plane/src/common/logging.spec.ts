import { describe, expect, it } from '@jest/globals';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { loggableUrl, requestLogLevel } from './logging.js';

const TOKEN = 'ab'.repeat(32);

describe('loggableUrl', () => {
  it.each([
    [`/api/v1/webhooks/script_execute/${TOKEN}`, '/api/v1/webhooks/script_execute/[redacted]'],
    [`/API/V1/Webhooks/Script_Execute/${TOKEN}`, '/API/V1/Webhooks/Script_Execute/[redacted]'],
    [`/api/v1/webhooks/script_execute/${TOKEN}/extra?x=1`, '/api/v1/webhooks/script_execute/[redacted]?[redacted]'],
    [`/api/v1/webhooks/script_execute/not-hex-${TOKEN.slice(0, 10)}`, '/api/v1/webhooks/script_execute/[redacted]'],
    [`/api/v1/webhooks/script_execute?token=${TOKEN}`, '/api/v1/webhooks/script_execute?[redacted]'],
    ['/api/v1/webhooks/script_execute', '/api/v1/webhooks/script_execute'],
    ['/api/v1/webhooks/script_execute/', '/api/v1/webhooks/script_execute/'],
    [`//api/v1/webhooks/script_execute/${TOKEN}`, '//api/v1/webhooks/script_execute/[redacted]'],
    [`/api/v1/webhooks/${TOKEN.toUpperCase()}/deliveries`, '/api/v1/webhooks/[redacted]/deliveries'],
  ])('%s is logged as %s', (url, logged) => {
    expect(loggableUrl(url)).toBe(logged);
  });

  it('leaves other URLs as they are', () => {
    const url = '/api/v1/executions/3f2b8c1e-1111-4222-8333-444455556666/events?limit=20';
    expect(loggableUrl(url)).toBe(url);
  });
});

describe('requestLogLevel', () => {
  const req = (url: string, originalUrl?: string) => ({ url, originalUrl }) as unknown as IncomingMessage;
  const res = (statusCode: number) => ({ statusCode }) as ServerResponse;

  it('puts the trigger\'s calls at debug, whatever their answer below 500', () => {
    for (const status of [202, 400, 401, 403, 404, 429]) {
      expect(requestLogLevel(req('/api/v1/webhooks/script_execute'), res(status))).toBe('debug');
      expect(requestLogLevel(req(`/api/v1/webhooks/script_execute/${TOKEN}`), res(status))).toBe('debug');
    }
  });

  it('goes by the URL as received when a router rewrote req.url', () => {
    expect(requestLogLevel(req('/script_execute', '/api/v1/webhooks/script_execute'), res(202))).toBe('debug');
    expect(requestLogLevel(req('/script_execute', '/api/v1/webhooks/script_executed'), res(404))).toBe('info');
  });

  it('puts every other route at info', () => {
    expect(requestLogLevel(req('/api/v1/webhooks/3f2b8c1e-1111-4222-8333-444455556666/deliveries'), res(200))).toBe('info');
    expect(requestLogLevel(req('/api/v1/me'), res(401))).toBe('info');
  });

  it('logs errors and 5xx at error on every route, the trigger included', () => {
    expect(requestLogLevel(req('/api/v1/webhooks/script_execute'), res(500))).toBe('error');
    expect(requestLogLevel(req('/api/v1/webhooks/script_execute'), res(503))).toBe('error');
    expect(requestLogLevel(req('/api/v1/webhooks/script_execute'), res(202), new Error('aborted'))).toBe('error');
    expect(requestLogLevel(req('/api/v1/servers'), res(500))).toBe('error');
  });
});
