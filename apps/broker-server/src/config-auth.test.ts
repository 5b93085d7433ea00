import { describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { loadConfig, type ServerConfig } from './config.js';

async function run(argv: string[], env: NodeJS.ProcessEnv = {}, cwd = '/srv'): Promise<ServerConfig> {
  const result = await loadConfig(argv, env, cwd);
  if (result.kind !== 'run') throw new Error('expected a config');
  return result.config;
}

describe('loadConfig: --auth-file', () => {
  it('takes the auth file from --auth-file, MSG_AUTH_FILE or the config key authFile, resolved against the working directory', async () => {
    expect((await run(['--auth-file', 'auth.json'])).authFile).toBe('/srv/auth.json');
    expect((await run([], { MSG_AUTH_FILE: '/etc/msg/auth.json' })).authFile).toBe('/etc/msg/auth.json');
    const dir = await makeTempDir();
    const file = join(dir, 'broker.json');
    await writeFile(file, JSON.stringify({ authFile: '/etc/msg/other.json' }));
    expect((await run(['--config', file])).authFile).toBe('/etc/msg/other.json');
    expect((await run([])).authFile).toBeUndefined();
  });

  it('lets a non-loopback listener start with an auth file (client authentication), as the safe defaults ask', async () => {
    const config = await run(['--listen', '10.1.2.3:8086', '--auth-file', '/etc/msg/auth.json']);
    expect(config.listen.host).toBe('10.1.2.3');
    await expect(run(['--listen', '10.1.2.3:8086'])).rejects.toThrow(/--insecure/);
  });
});
