import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from './config.js';

describe('loadConfig: --hash-token', () => {
  it('asks to print the hash of the token, whatever else is configured', async () => {
    expect(await loadConfig(['--hash-token', 's3cret-token'])).toEqual({ kind: 'hash-token', token: 's3cret-token' });
    // Settings that would not start a node do not matter (nothing is started).
    expect(await loadConfig(['--hash-token', 's3cret-token', '--listen', '0.0.0.0:8086'])).toEqual({ kind: 'hash-token', token: 's3cret-token' });
  });

  it('refuses an empty token as a usage error naming the flag, without echoing anything of it', async () => {
    const error = (await loadConfig(['--hash-token', '  ']).catch((e: unknown) => e)) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain('--hash-token');
  });
});
