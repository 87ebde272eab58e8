// Lint (`npm run lint`, part of `npm test`). Formatting is not linted: there is no formatter here.
import js from '@eslint/js';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

// Every package imported is declared in package.json (one that only arrives with another package
// can disappear with it).
const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
const declared = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.devDependencies ?? {})]);
const packageOf = (spec) => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');
const declaredDependency = {
  meta: { type: 'problem', schema: [], messages: { undeclared: "'{{name}}' is imported but not declared in package.json" } },
  create(context) {
    const check = (source) => {
      const spec = source?.type === 'Literal' && typeof source.value === 'string' ? source.value : null;
      if (!spec || /^(\.|\/|node:|@app\/)/.test(spec) || builtinModules.includes(spec)) return;
      if (!declared.has(packageOf(spec))) context.report({ node: source, messageId: 'undeclared', data: { name: packageOf(spec) } });
    };
    return {
      ImportDeclaration: (n) => check(n.source),
      ExportNamedDeclaration: (n) => check(n.source),
      ExportAllDeclaration: (n) => check(n.source),
      ImportExpression: (n) => check(n.source),
    };
  },
};

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
  { ignores: ['dist/**', 'bench/.dist/**', 'node_modules/**', 'data/**', 'coverage/**', 'test-artifacts/**'] },
  {
    plugins: { devpilot: { rules: { 'declared-dependency': declaredDependency } } },
    rules: { 'devpilot/declared-dependency': 'error' },
  },
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
