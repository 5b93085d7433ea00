import { describe, expect, it } from '@jest/globals';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { fsyncHistogram, fsyncPath, newFsyncStats, writeFileAtomic } from './durable-file.js';

describe('writeFileAtomic', () => {
  it('replaces the file and leaves no temporary file behind', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'f');
    const stats = newFsyncStats();
    await writeFileAtomic(path, new TextEncoder().encode('one'), stats);
    await writeFileAtomic(path, new TextEncoder().encode('two'), stats);
    expect(await readFile(path, 'utf8')).toBe('two');
    expect(await readdir(dir)).toEqual(['f']);
    expect(stats.count).toBe(4);
    expect(fsyncHistogram(stats).buckets.at(-1)?.count).toBeLessThanOrEqual(4);
    expect(fsyncHistogram(stats).count).toBe(4);
  });

  it('fails without touching the target when the folder is missing', async () => {
    const dir = await makeTempDir();
    await expect(writeFileAtomic(join(dir, 'missing', 'f'), new Uint8Array(1))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('fsyncPath', () => {
  it('ignores a missing path only when told to', async () => {
    const dir = await makeTempDir();
    await expect(fsyncPath(join(dir, 'nope'), undefined, true)).resolves.toBeUndefined();
    await expect(fsyncPath(join(dir, 'nope'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
