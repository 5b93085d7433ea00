import { describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { ConfigError, loadConfig, usage, type ServerConfig } from './config.js';

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<ServerConfig> {
  const result = await loadConfig(argv, env, '/srv');
  if (result.kind !== 'run') throw new Error('expected a config');
  return result.config;
}

async function failure(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<ConfigError> {
  const error = await loadConfig(argv, env, '/srv').then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe('loadConfig: limits', () => {
  it('defaults the timeouts and per-client limits, and leaves the total connection and stream limits to be fitted to the fd limit', async () => {
    const config = await run([]);
    expect(config).toMatchObject({
      maxConnectionsPerClient: 0,
      maxStreamsPerClient: 1000,
      streamStallMs: 60_000,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 60_000,
    });
    expect(config.maxConnections).toBeUndefined();
    expect(config.maxStreams).toBeUndefined();
  });

  it('takes every limit from flags, environment variables and config-file keys', async () => {
    expect(
      await run([
        '--max-connections', '100',
        '--max-connections-per-client', '10',
        '--max-streams', '50',
        '--max-streams-per-client', '5',
        '--stream-stall-ms', '1000',
        '--headers-timeout-ms', '2000',
        '--request-timeout-ms', '3000',
      ]),
    ).toMatchObject({ maxConnections: 100, maxConnectionsPerClient: 10, maxStreams: 50, maxStreamsPerClient: 5, streamStallMs: 1000, headersTimeoutMs: 2000, requestTimeoutMs: 3000 });

    expect(
      await run([], {
        MSG_MAX_CONNECTIONS: '101',
        MSG_MAX_CONNECTIONS_PER_CLIENT: '11',
        MSG_MAX_STREAMS: '51',
        MSG_MAX_STREAMS_PER_CLIENT: '6',
        MSG_STREAM_STALL_MS: '1001',
        MSG_HEADERS_TIMEOUT_MS: '2001',
        MSG_REQUEST_TIMEOUT_MS: '3001',
      }),
    ).toMatchObject({ maxConnections: 101, maxConnectionsPerClient: 11, maxStreams: 51, maxStreamsPerClient: 6, streamStallMs: 1001, headersTimeoutMs: 2001, requestTimeoutMs: 3001 });

    const dir = await makeTempDir();
    const file = join(dir, 'broker.json');
    const keys = { maxConnections: 102, maxConnectionsPerClient: 12, maxStreams: 52, maxStreamsPerClient: 7, streamStallMs: 0, headersTimeoutMs: 0, requestTimeoutMs: 0 };
    await writeFile(file, JSON.stringify(keys));
    expect(await run(['--config', file])).toMatchObject(keys);
  });

  it('refuses a negative limit, naming the flag', async () => {
    expect((await failure(['--max-streams=-1'])).setting).toBe('--max-streams');
    expect((await failure([], { MSG_STREAM_STALL_MS: 'soon' })).setting).toBe('MSG_STREAM_STALL_MS');
  });

  it('refuses a headers timeout longer than the request timeout', async () => {
    const error = await failure(['--headers-timeout-ms', '5000', '--request-timeout-ms', '1000']);
    expect(error.setting).toBe('--headers-timeout-ms');
    expect(error.message).toMatch(/request timeout/);
    // With the request timeout off, any headers timeout goes.
    expect(await run(['--headers-timeout-ms', '5000', '--request-timeout-ms', '0'])).toMatchObject({ headersTimeoutMs: 5000, requestTimeoutMs: 0 });
  });

  it('lists every limit in --help', () => {
    const text = usage();
    for (const flag of ['--max-connections', '--max-connections-per-client', '--max-streams', '--max-streams-per-client', '--stream-stall-ms', '--headers-timeout-ms', '--request-timeout-ms']) {
      expect(text).toContain(`${flag} <value>`);
    }
  });
});
