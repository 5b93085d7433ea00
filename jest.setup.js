// Runs in every test file (setupFilesAfterEnv of jest.preset.js). The test
// timeout is set here, not with `testTimeout`, because jest reads that option
// only from the top-level config: a project's own value would apply when the
// package is tested alone but not in the whole suite.
import { jest } from '@jest/globals';

jest.setTimeout(30_000);
