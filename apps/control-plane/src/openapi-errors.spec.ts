import { describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';

interface Operation {
  security?: Record<string, string[]>[];
  responses: Record<string, { content?: Record<string, { schema?: { $ref?: string }; example?: { statusCode?: number; code?: string; message?: string } }> }>;
}

/**
 * Reads the committed document (openapi.spec.ts keeps it equal to what the code describes), so this
 * check needs no Nest application.
 */
async function committedDocument(): Promise<{ paths: Record<string, Record<string, Operation>>; components: { securitySchemes: Record<string, Record<string, unknown>>; schemas: Record<string, { properties?: Record<string, unknown>; required?: string[] }> } }> {
  return JSON.parse(await readFile('docs/openapi.json', 'utf8'));
}

/** Writes a viewer key may make too (never a 403 for the role). */
const VIEWER_WRITES = new Set(['/api/v1/feed-tickets']);

describe('the OpenAPI document: error answers and the bearer scheme', () => {
  it('the bearer scheme is an opaque API key, not a JWT', async () => {
    const doc = await committedDocument();
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.components.securitySchemes.bearer).not.toHaveProperty('bearerFormat');
  });

  it('every API-key operation lists its success and its error answers, each with the error schema and an example body', async () => {
    const doc = await committedDocument();
    expect(doc.components.schemas.ErrorDto?.required).toEqual(expect.arrayContaining(['statusCode', 'code', 'message']));
    const problems: string[] = [];
    let checked = 0;
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        if (!op.security?.some((s) => 'bearer' in s)) continue;
        checked++;
        const where = `${method.toUpperCase()} ${path}`;
        const statuses = Object.keys(op.responses);
        // 401 for any key problem; 403 for writes (viewer keys); 400 and 404 for routes with an id.
        const expected = ['401', ...(method === 'get' || VIEWER_WRITES.has(path) ? [] : ['403']), ...(path.includes('{') ? ['400', '404'] : [])];
        for (const status of expected) if (!statuses.includes(status)) problems.push(`${where}: no ${status}`);
        if (!statuses.some((s) => s.startsWith('2'))) problems.push(`${where}: no success answer`);
        for (const status of statuses.filter((s) => /^[45]/.test(s))) {
          const json = op.responses[status]?.content?.['application/json'];
          if (json?.schema?.$ref !== '#/components/schemas/ErrorDto') problems.push(`${where} ${status}: not the error schema`);
          const ex = json?.example;
          if (ex?.statusCode !== Number(status) || !/^[A-Z_]+$/.test(ex.code ?? '') || !ex.message) problems.push(`${where} ${status}: no example error body`);
        }
      }
    }
    expect(checked).toBeGreaterThan(30);
    expect(problems).toEqual([]);
  });
});
