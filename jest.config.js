// Jest runs in ESM mode (NestJS 12 is ESM-only): `node --experimental-vm-modules node_modules/jest/bin/jest.js`.
const transform = {
  '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: '<rootDir>/tsconfig.spec.json' }],
};
const moduleNameMapper = {
  '^@app/protocol$': '<rootDir>/libs/protocol/src/index.ts',
  '^@app/protocol/(.*)$': '<rootDir>/libs/protocol/src/$1',
  '^@app/common$': '<rootDir>/libs/common/src/index.ts',
  '^(\\.{1,2}/.*)\\.js$': '$1',
};
const common = { extensionsToTreatAsEsm: ['.ts'], transform, moduleNameMapper, testEnvironment: 'node' };

export default {
  // A project-level testTimeout is ignored by jest 30; e2e tests start real processes.
  testTimeout: 120_000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/apps/**/src/**/*.spec.ts', '<rootDir>/libs/**/src/**/*.spec.ts'] },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.mjs',
      globalTeardown: '<rootDir>/test/support/global-teardown.mjs',
    },
  ],
};
