// Real broker processes, elections and crashes: two minutes per test (after
// the workspace's 30 s default, which this overrides).
import { jest } from '@jest/globals';

jest.setTimeout(120_000);
