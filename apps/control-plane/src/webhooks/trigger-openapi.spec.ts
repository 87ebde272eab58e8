import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The committed OpenAPI document (kept current by openapi.spec.ts) describes every answer of the
 * trigger in both forms, each refusal with the error schema, and a token example of the real shape.
 */
const doc = JSON.parse(readFileSync(path.join(import.meta.dirname, '../../../../docs/openapi.json'), 'utf8')) as {
  paths: Record<string, { post?: { responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>; parameters?: { name: string; example?: string; schema?: { example?: string } }[]; requestBody?: { content: Record<string, { schema?: { properties?: { token?: { example?: string } } } }> } } }>;
};

describe('the trigger in the OpenAPI document', () => {
  for (const route of ['/api/v1/webhooks/script_execute', '/api/v1/webhooks/script_execute/{token}']) {
    it(`${route}: 200, 202 and every refusal with the error schema`, () => {
      const post = doc.paths[route]?.post;
      expect(post).toBeDefined();
      expect(Object.keys(post!.responses).sort()).toEqual(['200', '202', '400', '401', '403', '404', '405', '413', '429', '503']);
      for (const code of ['400', '401', '403', '404', '405', '413', '429', '503']) {
        expect(post!.responses[code]!.content?.['application/json']?.schema?.$ref).toBe('#/components/schemas/ErrorBodyDto');
      }
    });
  }

  it('the token examples are 64 hex characters', () => {
    const param = doc.paths['/api/v1/webhooks/script_execute/{token}']!.post!.parameters!.find((p) => p.name === 'token')!;
    const pathToken = param.example ?? param.schema?.example;
    const bodyToken = doc.paths['/api/v1/webhooks/script_execute']!.post!.requestBody!.content['application/json']!.schema!.properties!.token!.example;
    expect(pathToken).toMatch(/^[0-9a-f]{64}$/);
    expect(bodyToken).toMatch(/^[0-9a-f]{64}$/);
  });
});
