import { describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { ConfigError, loadConfig, type ServerConfig } from './config.js';

async function run(argv: string[], env: NodeJS.ProcessEnv = {}, cwd = '/srv'): Promise<ServerConfig> {
  const result = await loadConfig(argv, env, cwd);
  if (result.kind !== 'run') throw new Error('expected a config');
  return result.config;
}

async function failure(argv: string[], env: NodeJS.ProcessEnv = {}, cwd = '/srv'): Promise<ConfigError> {
  try {
    await loadConfig(argv, env, cwd);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('defaults to a single node on 127.0.0.1:8086 with data in ./data', async () => {
    const config = await run([]);
    expect(config).toMatchObject({
      dataDir: '/srv/data',
      listen: { host: '127.0.0.1', port: 8086 },
      advertiseURL: 'http://127.0.0.1:8086',
      join: [],
      sync: 'always',
      segmentBytes: 10 * 1024 * 1024,
    });
  });

  it('takes flags over environment over the config file', async () => {
    const dir = await makeTempDir();
    const file = join(dir, 'broker.json');
    await writeFile(file, JSON.stringify({ listen: '127.0.0.1:7000', sync: 'never', retentionBytes: 5 }));
    const config = await run(['--config', file, '--listen', '127.0.0.2:9000', '--join', 'http://127.0.0.1:1/', '--join', 'http://127.0.0.1:2'], {
      MSG_LISTEN: '127.0.0.1:8000',
      MSG_RETENTION_BYTES: '77',
    });
    expect(config.listen).toEqual({ host: '127.0.0.2', port: 9000 });
    expect(config.sync).toBe('never');
    expect(config.retentionBytes).toBe(77);
    expect(config.join).toEqual(['http://127.0.0.1:1', 'http://127.0.0.1:2']);
  });

  it('reads comma-separated joins and the config path from the environment', async () => {
    const dir = await makeTempDir();
    await writeFile(join(dir, 'c.json'), JSON.stringify({ dataDir: 'here' }));
    const config = await run([], { MSG_CONFIG: 'c.json', MSG_JOIN: 'http://127.0.0.1:1, http://127.0.0.1:2' }, dir);
    expect(config.dataDir).toBe(join(dir, 'here'));
    expect(config.join).toHaveLength(2);
  });

  it('leaves the advertised URL to be derived when listening on port 0', async () => {
    expect((await run(['--listen', '127.0.0.1:0'])).advertiseURL).toBeUndefined();
    expect((await run(['--listen', '127.0.0.1:0', '--advertise-url', 'http://127.0.0.1:9/x'])).advertiseURL).toBe('http://127.0.0.1:9');
  });

  it('accepts bracketed IPv6 listen addresses', async () => {
    const config = await run(['--listen', '[::1]:8090']);
    expect(config.listen).toEqual({ host: '::1', port: 8090 });
    expect(config.advertiseURL).toBe('http://[::1]:8090');
  });

  it.each([
    [['--listen', 'localhost'], '--listen'],
    [['--listen', '127.0.0.1:70000'], '--listen'],
    [['--join', 'ftp://x'], '--join'],
    [['--sync', 'sometimes'], '--sync'],
    [['--segment-bytes', '12abc'], '--segment-bytes'],
    [['--retention-ms=-1'], '--retention-ms'],
    [['--listen', '0.0.0.0:8086'], '--listen'],
    [['--bogus'], 'arguments'],
    [['positional'], 'arguments'],
  ])('names the bad setting for %j', async (argv, setting) => {
    const error = await failure(argv);
    expect(error.setting).toBe(setting);
    expect(error.code).toBe('INVALID_CONFIG');
    expect(error.message.startsWith(`${setting}: `)).toBe(true);
  });

  it('names bad environment variables and config-file keys', async () => {
    expect((await failure([], { MSG_LOG_LEVEL: 'loud' })).setting).toBe('MSG_LOG_LEVEL');
    const dir = await makeTempDir();
    await writeFile(join(dir, 'bad.json'), JSON.stringify({ heartbeatIntervalMs: 'fast' }));
    expect((await failure(['--config', 'bad.json'], {}, dir)).setting).toBe(`${join(dir, 'bad.json')}: heartbeatIntervalMs`);
    await writeFile(join(dir, 'unknown.json'), JSON.stringify({ colour: 'blue' }));
    expect((await failure(['--config', 'unknown.json'], {}, dir)).setting).toBe(`${join(dir, 'unknown.json')}: colour`);
    await writeFile(join(dir, 'broken.json'), '{"listen":');
    expect((await failure(['--config', 'broken.json'], {}, dir)).message).toMatch(/not valid JSON/);
    expect((await failure(['--config', 'missing.json'], {}, dir)).setting).toBe('--config');
  });

  it('answers --help with the usage text', async () => {
    const result = await loadConfig(['--help']);
    expect(result.kind).toBe('help');
    if (result.kind === 'help') expect(result.text).toContain('--data-dir');
  });
});
