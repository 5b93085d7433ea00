import { describe, expect, it } from '@jest/globals';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { CLUSTER_SECRET_BYTES, joinTokenOf, newJoinToken, parseJoinToken } from './join-token.js';
import { readJoinTokenFile, writeJoinTokenFile } from './join-token-file.js';
import { ServerError, type ServerErrorCode } from './server-error.js';

function isServerErrorCode(error: unknown, code: ServerErrorCode): boolean {
  return error instanceof ServerError && error.code === code;
}

describe('join tokens', () => {
  it('carry the cluster id and a 32-byte random secret, and read back as written', () => {
    const token = newJoinToken('abc123');
    expect(token.text).toMatch(/^msgjt1\.abc123\.[A-Za-z0-9_-]{43}\.[0-9a-f]{8}$/);
    expect(token.secret.byteLength).toBe(CLUSTER_SECRET_BYTES);
    expect(parseJoinToken(`  ${token.text}\n`)).toEqual(token);
    expect(newJoinToken('abc123').text).not.toBe(token.text);
    const fixed = joinTokenOf('c', Buffer.alloc(32, 0xff));
    expect(fixed.text.split('.')[2]).toBe(Buffer.alloc(32, 0xff).toString('base64url'));
  });

  it('refuse a mistyped or truncated token with a sentence that does not repeat it', () => {
    const token = newJoinToken('abc123').text;
    const flipped = token.slice(0, 20) + (token[20] === 'A' ? 'B' : 'A') + token.slice(21);
    for (const bad of ['', 'msgjt1', token.slice(0, -1), flipped, token.replace('msgjt1', 'msgjt2'), `${token}.x`]) {
      const result = parseJoinToken(bad);
      expect(typeof result).toBe('string');
      expect(result as string).toMatch(/^not a join token/);
      if (bad.length > 10) expect(result as string).not.toContain(bad);
    }
    expect(() => joinTokenOf('c', Buffer.alloc(16))).toThrow(RangeError);
    expect(() => joinTokenOf('a.b', Buffer.alloc(32))).toThrow(RangeError);
  });
});

describe('the join token file', () => {
  it('is written atomically with mode 0600 and read back; absent is undefined', async () => {
    const dir = await makeTempDir();
    expect(await readJoinTokenFile(dir)).toBeUndefined();
    const token = newJoinToken('abc123');
    await writeJoinTokenFile(dir, token);
    expect((await stat(join(dir, 'join-token'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'join-token'), 'utf8')).toBe(`${token.text}\n`);
    expect(await readJoinTokenFile(dir)).toEqual({ token, readableByOthers: false });
    const next = newJoinToken('abc123');
    await writeJoinTokenFile(dir, next);
    expect((await readJoinTokenFile(dir))?.token).toEqual(next);
    await chmod(join(dir, 'join-token'), 0o644);
    expect((await readJoinTokenFile(dir))?.readableByOthers).toBe(true);
  });

  it('is CORRUPT (naming the file) when damaged, and a write that cannot happen throws', async () => {
    const dir = await makeTempDir();
    const token = newJoinToken('abc123');
    await writeFile(join(dir, 'join-token'), token.text.replace(/.$/, (c) => (c === '0' ? '1' : '0')));
    const damaged = await readJoinTokenFile(dir).catch((e: unknown) => e);
    expect(isServerErrorCode(damaged, 'JOIN_TOKEN_CORRUPT')).toBe(true);
    expect((damaged as Error).message).toContain(join(dir, 'join-token'));
    expect((damaged as Error).message).not.toContain(token.text.slice(7, 40));
    const missing = await writeJoinTokenFile(join(dir, 'no', 'such', 'dir'), token).catch((e: unknown) => e);
    expect(isServerErrorCode(missing, 'JOIN_TOKEN_WRITE_FAILED')).toBe(true);
    expect((missing as { cause?: { code?: string } }).cause?.code).toBe('ENOENT');
  });
});
