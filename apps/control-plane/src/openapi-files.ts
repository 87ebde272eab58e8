import type { OpenAPIObject } from '@nestjs/swagger';
import openapiTS, { astToString, COMMENT_HEADER } from 'openapi-typescript';

/** The committed files generated from the OpenAPI document (`npm run docs:openapi` rewrites them). */
export const OPENAPI_JSON = 'docs/openapi.json';
export const DASHBOARD_SCHEMA = 'apps/dashboard/src/api/schema.d.ts';

/** Their content, by path relative to the repository root. */
export async function renderOpenApiFiles(doc: OpenAPIObject): Promise<Record<string, string>> {
  const json = `${JSON.stringify(doc, null, 2)}\n`;
  // Parsed back from the JSON: the types describe exactly what is committed.
  const ast = await openapiTS(JSON.parse(json) as Parameters<typeof openapiTS>[0], { silent: true });
  const schema = `${COMMENT_HEADER}// From ${OPENAPI_JSON}: regenerate with \`npm run docs:openapi\`.\n\n${astToString(ast)}`;
  return { [OPENAPI_JSON]: json, [DASHBOARD_SCHEMA]: schema };
}
