// Writes docs/openapi.json and the dashboard's API types generated from it, from the built control
// plane and without a database: `npm run docs:openapi` (it builds the control plane first).
import 'reflect-metadata';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

const root = join(import.meta.dirname, '..');
const built = join(root, 'dist/apps/control-plane/apps/control-plane/src');
const { standaloneOpenApiDocument } = await import(join(built, 'openapi.js'));
const { renderOpenApiFiles } = await import(join(built, 'openapi-files.js'));

const files = await renderOpenApiFiles(await standaloneOpenApiDocument());
for (const [path, content] of Object.entries(files)) {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), content);
  process.stdout.write(`wrote ${path}\n`);
}
