import { describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hashToken } from '@msg/http';
import { makeTempDir } from '@msg/test-utils';
import { AuthFileError, loadAuthFile, parseAuthFile } from './auth-file.js';

const HASH = hashToken('secret-token');

describe('parseAuthFile', () => {
  it('reads identities with topic lists, ranges and *', () => {
    const [a, b] = parseAuthFile(
      {
        identities: [
          { name: 'svc-a', tokenSha256: HASH.toUpperCase(), permissions: { publish: [1, '10-20', '18446744073709551615'], subscribe: ['*'] } },
          { name: 'svc-b', certSubject: 'CN=svc-b', permissions: { admin: true } },
        ],
      },
      'auth.json',
    );
    expect(a!.name).toBe('svc-a');
    expect(a!.tokenSha256).toBe(HASH);
    expect([0n, 1n, 2n, 10n, 20n, 21n, 18446744073709551615n].map((id) => a!.permissions.publish.has(id))).toEqual([false, true, false, true, true, false, true]);
    expect(a!.permissions.subscribe.has(123456789n)).toBe(true);
    expect(a!.permissions.admin).toBe(false);
    expect(b!.permissions.publish.has(1n)).toBe(false);
    expect(b!.permissions.admin).toBe(true);
  });

  it.each([
    [{}, 'identities'],
    [{ identities: [{ name: 'a', permissions: {} }] }, 'identities[0]'],
    [{ identities: [{ name: 'a', tokenSha256: 'abc', permissions: {} }] }, 'identities[0].tokenSha256'],
    [{ identities: [{ name: 'a', token: 'plain', tokenSha256: HASH, permissions: {} }] }, 'identities[0]'],
    [{ identities: [{ name: 'a', tokenSha256: HASH, permissions: { publish: ['20-10'] } }] }, 'identities[0].permissions.publish[0]'],
    [{ identities: [{ name: 'a', tokenSha256: HASH, permissions: { subscribe: [1.5] } }] }, 'identities[0].permissions.subscribe[0]'],
    [{ identities: [{ name: 'a', tokenSha256: HASH, permissions: { publish: ['18446744073709551616'] } }] }, 'identities[0].permissions.publish[0]'],
    [{ identities: [{ name: 'a', tokenSha256: HASH, permissions: {} }, { name: 'a', tokenSha256: hashToken('x'), permissions: {} }] }, 'identities[1].name'],
    [{ identities: [{ name: 'a', tokenSha256: HASH, permissions: {} }, { name: 'b', tokenSha256: HASH, permissions: {} }] }, 'identities[1].tokenSha256'],
  ])('refuses %j naming the field %s', (json, field) => {
    let error: unknown;
    try {
      parseAuthFile(json, '/etc/msg/auth.json');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AuthFileError);
    expect((error as AuthFileError).code).toBe('INVALID_CONFIG');
    expect((error as AuthFileError).message).toMatch(new RegExp(`^/etc/msg/auth\\.json: ${field.replace(/[[\].]/g, '\\$&')}: `));
  });
});

describe('loadAuthFile', () => {
  it('names the file when it is missing or not JSON', async () => {
    const dir = await makeTempDir();
    const missing = join(dir, 'none.json');
    await expect(loadAuthFile(missing)).rejects.toThrow(`${missing}: cannot read: ENOENT`);
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{ nope');
    await expect(loadAuthFile(bad)).rejects.toThrow(new RegExp(`^${bad}: not valid JSON`));
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify({ identities: [] }));
    expect(await loadAuthFile(good)).toEqual([]);
  });
});
