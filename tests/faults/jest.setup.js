// Real broker processes in network namespaces, partitions and crashes: a
// seeded schedule takes up to a few minutes (after the workspace's 30 s
// default, which this overrides). Every wait inside is bounded too.
import { jest } from '@jest/globals';

jest.setTimeout(240_000);
