import { resolve } from 'node:path';
import { defineConfig } from 'vite';

const root = import.meta.dirname;
const repo = resolve(root, '../..');

// Preact through Vite's own Oxc JSX transform: no framework plugin (and no Babel) needed for a build.
export default defineConfig({
  root,
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  resolve: {
    // Only the protocol's dependency-free modules (constants, event names) and its types are used here;
    // importing them by file keeps the runtime schemas (and zod) out of the browser bundle.
    alias: [{ find: /^@app\/protocol\/(.*)$/, replacement: `${resolve(repo, 'libs/protocol/src')}/$1` }],
  },
  build: {
    outDir: resolve(repo, 'dist/dashboard'),
    emptyOutDir: true,
    sourcemap: true,
  },
  server: {
    proxy: {
      '/api': 'http://localhost:3000',
      '/socket.io': { target: 'ws://localhost:3000', ws: true },
      '/dashboard-io': { target: 'ws://localhost:3000', ws: true },
    },
  },
});
