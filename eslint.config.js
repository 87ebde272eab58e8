// Lint (`npm run lint`, part of `npm test`). Formatting is not linted: there is no formatter here.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Node globals for the plain .mjs scripts (the `globals` package is not a dependency).
const nodeGlobals = Object.fromEntries(
  [
    'AbortController', 'AbortSignal', 'Buffer', 'URL', 'URLSearchParams', 'TextDecoder', 'TextEncoder',
    'clearImmediate', 'clearInterval', 'clearTimeout', 'console', 'fetch', 'globalThis', 'performance',
    'process', 'queueMicrotask', 'setImmediate', 'setInterval', 'setTimeout', 'structuredClone',
    'Response', 'Request', 'Headers', 'WebSocket', 'crypto',
  ].map((name) => [name, 'readonly']),
);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', 'test-artifacts/**'] },
  {
    files: ['**/*.ts', '**/*.tsx'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        // The dashboard has its own compiler options (browser: DOM, JSX; its Vite config: Node); the rest is in the spec config.
        project: ['./tsconfig.spec.json', './apps/dashboard/tsconfig.json', './apps/dashboard/tsconfig.node.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // Lost promises are the bugs this lint is here for.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // Style rules left out: an `async` method without `await` (Nest handlers, interface methods) and a
      // redundant assertion are harmless, and fixing them would churn files that are edited in parallel.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // The DTOs reject control characters with a regex on purpose.
      'no-control-regex': 'off',
    },
  },
  {
    // Tests read HTTP bodies and socket payloads as `any` on purpose and check them with expect().
    files: ['test/**/*.ts', '**/*.spec.ts', 'apps/agent/src/testing/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // Plain Node scripts (build, start, bench, soak, jest setup): not part of any tsconfig, so not type-aware.
    files: ['**/*.mjs', '*.js'],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: 'module', globals: nodeGlobals },
  },
);
