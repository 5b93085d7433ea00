import { describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { ConfigError, loadConfig, type ServerConfig } from './config.js';
import { newJoinToken } from './join-token.js';

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<ServerConfig> {
  const result = await loadConfig(argv, env, '/srv');
  if (result.kind !== 'run') throw new Error('expected a config');
  return result.config;
}

async function failure(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<ConfigError> {
  const error = await loadConfig(argv, env, '/srv').catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe('loadConfig: peers', () => {
  const token = newJoinToken('0123456789abcdef0123456789abcdef');

  it('takes the join token from --join-token, MSG_JOIN_TOKEN or the config key joinToken', async () => {
    expect((await run(['--join-token', token.text])).joinToken).toEqual(token);
    expect((await run([], { MSG_JOIN_TOKEN: ` ${token.text}\n` })).joinToken).toEqual(token);
    const file = join(await makeTempDir(), 'broker.json');
    await writeFile(file, JSON.stringify({ joinToken: token.text }));
    expect((await run(['--config', file])).joinToken).toEqual(token);
    expect((await run([])).joinToken).toBeUndefined();
  });

  it('refuses a token that is not one, naming the setting and never echoing the value', async () => {
    const typo = `${token.text.slice(0, -1)}${token.text.endsWith('0') ? '1' : '0'}`;
    for (const [argv, env, setting] of [
      [['--join-token', 'hello'], {}, '--join-token'],
      [['--join-token', typo], {}, '--join-token'],
      [[], { MSG_JOIN_TOKEN: 'msgjt1.x.y.z' }, 'MSG_JOIN_TOKEN'],
    ] as const) {
      const error = await failure([...argv], env);
      expect(error.setting).toBe(setting);
      expect(error.message).toMatch(/not a join token/);
      expect(error.message).not.toContain(typo);
    }
  });

  it('takes --peer-listen and derives the peer URL from it, and refuses a wildcard without --peer-advertise-url', async () => {
    expect(await run(['--peer-listen', '127.0.0.1:9086'])).toMatchObject({
      peerListen: { host: '127.0.0.1', port: 9086 },
      peerAdvertiseURL: 'http://127.0.0.1:9086',
    });
    expect((await run(['--peer-listen', '127.0.0.1:0'])).peerAdvertiseURL).toBeUndefined();
    expect(await run(['--peer-listen', '0.0.0.0:9086', '--peer-advertise-url', 'http://10.0.0.1:9086/', '--insecure'])).toMatchObject({
      peerAdvertiseURL: 'http://10.0.0.1:9086',
    });
    expect((await failure(['--peer-listen', '0.0.0.0:9086'])).setting).toBe('--peer-listen');
    expect((await failure(['--peer-listen', 'nope'])).setting).toBe('--peer-listen');
    expect((await failure(['--peer-advertise-url', 'http://10.0.0.1:9086'])).setting).toBe('--peer-advertise-url');
    expect((await run([])).peerListen).toBeUndefined();
  });

  it('asks to print the join token of the data dir with --print-join-token', async () => {
    expect(await loadConfig(['--print-join-token', '--data-dir', 'n1'], {}, '/srv')).toEqual({ kind: 'print-join-token', dataDir: '/srv/n1' });
  });
});
