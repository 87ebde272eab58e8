// Bundles the agent into one file that runs with a bare `node` (no node_modules): `npm run build:agent`.
import { build } from 'esbuild';
import { chmod, copyFile, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
const outDir = join(root, 'dist/agent');
const outfile = join(outDir, 'devpilot-agent.cjs');
const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));

await build({
  entryPoints: [join(here, 'src/main.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  // Resolves the @app/protocol path alias.
  tsconfig: join(root, 'tsconfig.json'),
  banner: { js: '#!/usr/bin/env node' },
  define: { __DEVPILOT_AGENT_VERSION__: JSON.stringify(version) },
  // Optional native speed-ups of `ws`, loaded inside try/catch: absent is fine.
  external: ['bufferutil', 'utf-8-validate'],
  logLevel: 'warning',
});
await chmod(outfile, 0o755);
// What the control plane serves under /agent/, side by side.
await copyFile(join(here, 'systemd/devpilot-agent.service'), join(outDir, 'devpilot-agent.service'));
await copyFile(join(here, 'install.sh'), join(outDir, 'install.sh'));
console.log(`built ${outfile} (version ${version})`);
