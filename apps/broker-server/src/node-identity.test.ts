import { describe, expect, it } from '@jest/globals';
import { makeTempDir } from '@msg/test-utils';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkNodeIdentity, keepNodeIdentity, nodeIdentityPath, readNodeIdentity } from './node-identity.js';

const ME = { url: 'http://127.0.0.1:8086', clusterId: 'c-1' };

describe('node identity', () => {
  it('is recorded once, durably, and read back; a data dir without one adopts the current identity', async () => {
    const dir = await makeTempDir('msg-id-');
    expect(await checkNodeIdentity(dir, ME.url)).toBeUndefined();
    await keepNodeIdentity(dir, undefined, ME);
    expect(JSON.parse(await readFile(nodeIdentityPath(dir), 'utf8'))).toEqual({ version: 1, ...ME });
    expect(await readNodeIdentity(dir)).toEqual(ME);
    expect(await checkNodeIdentity(dir, ME.url)).toEqual(ME);
    expect(await readdir(dir)).toEqual(['node.json']);
  });

  it('refuses another URL with NODE_IDENTITY_CHANGED explaining the ways out, and changes nothing', async () => {
    const dir = await makeTempDir('msg-id-');
    await keepNodeIdentity(dir, undefined, ME);
    const error = await checkNodeIdentity(dir, 'http://127.0.0.1:8090').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'NODE_IDENTITY_CHANGED', dataDir: dir });
    const message = (error as Error).message;
    for (const part of [ME.url, 'http://127.0.0.1:8090', 'new, empty data dir', 'leave --member http://127.0.0.1:8086']) expect(message).toContain(part);
    expect(await readNodeIdentity(dir)).toEqual(ME);
  });

  it('reports a damaged file as NODE_IDENTITY_CORRUPT naming the file (and the field)', async () => {
    const dir = await makeTempDir('msg-id-');
    await writeFile(nodeIdentityPath(dir), '{"version":1,"url":');
    await expect(readNodeIdentity(dir)).rejects.toMatchObject({ code: 'NODE_IDENTITY_CORRUPT', message: expect.stringContaining(nodeIdentityPath(dir)) });
    await writeFile(nodeIdentityPath(dir), '{"version":1,"url":7,"clusterId":"c"}');
    await expect(readNodeIdentity(dir)).rejects.toMatchObject({ code: 'NODE_IDENTITY_CORRUPT', message: expect.stringContaining('at url') });
  });

  it('refuses a recorded identity of another cluster than the raft log', async () => {
    const dir = await makeTempDir('msg-id-');
    await expect(keepNodeIdentity(dir, ME, { url: ME.url, clusterId: 'c-2' })).rejects.toMatchObject({ code: 'NODE_IDENTITY_CORRUPT' });
  });

  it('fails with NODE_IDENTITY_WRITE_FAILED when the file cannot be written', async () => {
    const dir = join(await makeTempDir('msg-id-'), 'missing');
    await expect(keepNodeIdentity(dir, undefined, ME)).rejects.toMatchObject({ code: 'NODE_IDENTITY_WRITE_FAILED', cause: expect.objectContaining({ code: 'ENOENT' }) });
  });
});
