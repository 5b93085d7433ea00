// Shared jest settings: native ESM, TypeScript through SWC (no type-checking:
// that is tsc's job), and workspace packages imported from source through the
// "@msg/source" export condition, so tests never wait for a build.
import { fileURLToPath } from 'node:url';

/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
        module: { type: 'es6' },
        sourceMaps: 'inline',
      },
    ],
  },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testEnvironmentOptions: { customExportConditions: ['@msg/source', 'node', 'node-addons'] },
  testMatch: ['<rootDir>/src/**/*.test.ts', '<rootDir>/test/**/*.test.ts'],
  // 30 s per test (jest.setup.js); `testTimeout` here would be ignored in the whole suite.
  setupFilesAfterEnv: [fileURLToPath(new URL('./jest.setup.js', import.meta.url))],
};
