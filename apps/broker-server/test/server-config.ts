import type { ServerConfig } from '../src/config.js';
import { createLogger, type JsonLogger } from '../src/logger.js';

// What the in-process server tests (src/server*.test.ts) share.

/** A loopback node on port 0 in `dataDir`, with fast raft timings and `overrides`. */
export function configFor(dataDir: string, overrides: Partial<ServerConfig> = {}): ServerConfig {
  return {
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    advertiseURL: undefined,
    join: [],
    sync: 'never',
    maxBodyBytes: 1024 * 1024,
    segmentBytes: 64 * 1024,
    retentionBytes: 0,
    retentionMs: 0,
    electionTimeoutMs: 150,
    heartbeatIntervalMs: 30,
    snapshotThreshold: 1000,
    logLevel: 'debug',
    ...overrides,
  };
}

/** A logger that keeps every line it writes, parsed. */
export function memoryLogger(): { logger: JsonLogger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { logger: createLogger('debug', (line) => lines.push(JSON.parse(line) as Record<string, unknown>)), lines };
}
