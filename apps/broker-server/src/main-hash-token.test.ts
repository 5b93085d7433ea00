import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { runMain } from '../test/server-process.js';

describe('main.ts --hash-token', () => {
  it('prints the SHA-256 hex of the token for the auth file and exits 0, writing the token nowhere', async () => {
    const token = 'tok-Zq8yH1vN3b5mR7tP0sW2xK4cL6dF9gJ';
    const proc = runMain(['--hash-token', token]);
    expect(await proc.exited).toBe(0);
    expect(proc.output.stdout).toBe(`${createHash('sha256').update(token).digest('hex')}\n`);
    expect(proc.output.stderr).toBe('');
  });

  it('exits 64 for an empty token', async () => {
    const proc = runMain(['--hash-token', '']);
    expect(await proc.exited).toBe(64);
    expect(proc.output.stderr).toContain('--hash-token');
    expect(proc.output.stdout).toBe('');
  });
});
