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

describe('loadConfig: readiness bounds', () => {
  it('defaults to 1000 entries, 5 seconds and 3 election timeouts', async () => {
    expect(await run([])).toMatchObject({ readyMaxLagEntries: 1000, readyMaxLagSeconds: 5, readyMaxLeaderSilence: 3 });
  });

  it('takes them from flags, environment variables and config-file keys', async () => {
    expect(await run(['--ready-max-lag-entries', '50', '--ready-max-lag-seconds', '0.5', '--ready-max-leader-silence', '5'])).toMatchObject({
      readyMaxLagEntries: 50,
      readyMaxLagSeconds: 0.5,
      readyMaxLeaderSilence: 5,
    });
    expect(await run([], { MSG_READY_MAX_LAG_ENTRIES: '7', MSG_READY_MAX_LAG_SECONDS: '2', MSG_READY_MAX_LEADER_SILENCE: '4' })).toMatchObject({
      readyMaxLagEntries: 7,
      readyMaxLagSeconds: 2,
      readyMaxLeaderSilence: 4,
    });
    const dir = await makeTempDir();
    const file = join(dir, 'config.json');
    await writeFile(file, JSON.stringify({ readyMaxLagEntries: 9, readyMaxLagSeconds: 1, readyMaxLeaderSilence: 2 }));
    expect(await run(['--config', file])).toMatchObject({ readyMaxLagEntries: 9, readyMaxLagSeconds: 1, readyMaxLeaderSilence: 2 });
  });

  it('refuses bounds that are not numbers or out of range, naming the setting as given', async () => {
    expect((await failure(['--ready-max-lag-entries=-1'])).setting).toBe('--ready-max-lag-entries');
    expect((await failure(['--ready-max-lag-entries', '1.5'])).setting).toBe('--ready-max-lag-entries');
    expect((await failure([], { MSG_READY_MAX_LAG_SECONDS: 'soon' })).setting).toBe('MSG_READY_MAX_LAG_SECONDS');
    expect((await failure(['--ready-max-leader-silence', '0'])).setting).toBe('--ready-max-leader-silence');
  });

  it('lists them in the usage text', () => {
    for (const flag of ['--ready-max-lag-entries', '--ready-max-lag-seconds', '--ready-max-leader-silence']) expect(usage()).toContain(flag);
  });
});
