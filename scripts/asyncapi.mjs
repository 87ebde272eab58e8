// Writes docs/asyncapi.json, the AsyncAPI document of /agent and /dashboard, from the protocol's
// zod schemas (libs/protocol/src/asyncapi.ts): `npm run docs:asyncapi`. `--check` only says
// whether the committed file is current (exit 1 when it is not).
import { build } from 'esbuild';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const target = join(root, 'docs/asyncapi.json');

// The generator is TypeScript: bundled (zod included) into a temporary module and imported.
const dir = await mkdtemp(join(tmpdir(), 'devpilot-asyncapi-'));
let text;
try {
  const out = join(dir, 'asyncapi.mjs');
  await build({ entryPoints: [join(root, 'libs/protocol/src/asyncapi.ts')], outfile: out, bundle: true, format: 'esm', platform: 'node', logLevel: 'warning' });
  const { asyncApiDocument, serialiseAsyncApi } = await import(pathToFileURL(out).href);
  text = serialiseAsyncApi(asyncApiDocument());
} finally {
  await rm(dir, { recursive: true, force: true });
}

if (process.argv.includes('--check')) {
  const current = await readFile(target, 'utf8').catch(() => '');
  if (current !== text) {
    console.error(`${target} is stale: run npm run docs:asyncapi`);
    process.exit(1);
  }
  console.log(`${target} is current`);
} else {
  await writeFile(target, text);
  console.log(`wrote ${target}`);
}
