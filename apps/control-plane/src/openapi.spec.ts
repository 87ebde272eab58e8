import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { renderOpenApiFiles } from './openapi-files.js';
import { standaloneOpenApiDocument } from './openapi.js';

describe('generated API files', () => {
  it('docs/openapi.json and the dashboard types are what the code describes now (else: npm run docs:openapi)', async () => {
    const files = await renderOpenApiFiles(await standaloneOpenApiDocument());
    expect(Object.keys(files)).toHaveLength(2);
    for (const [path, expected] of Object.entries(files)) {
      const committed = await readFile(path, 'utf8').catch(() => '');
      const lines = committed.split('\n');
      const at = expected.split('\n').findIndex((line, i) => line !== lines[i]);
      expect({ path, firstDifference: at === -1 && lines.length === expected.split('\n').length ? null : { line: at + 1, committed: lines[at], expected: expected.split('\n')[at] } }).toEqual({ path, firstDifference: null });
    }
  });

  it('the document has the response types the dashboard uses', async () => {
    const doc = await standaloneOpenApiDocument();
    const ok = doc.paths['/api/v1/servers']?.get?.responses['200'] as { content?: Record<string, { schema?: unknown }> } | undefined;
    expect(ok?.content?.['application/json']?.schema).toEqual({ $ref: '#/components/schemas/ServerPageDto' });
    expect(Object.keys(doc.components?.schemas ?? {})).toEqual(expect.arrayContaining(['ServerViewDto', 'ScriptViewDto', 'WebhookViewDto', 'DeliveryPageDto', 'ExecutionViewDto', 'AcceptedDto', 'MeDto']));
  });
});
