import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { fsyncDir, writeFileDurable } from './durable.js';

describe('durable file helpers', () => {
  it('replaces a file whole and leaves no temporary file behind', async () => {
    const dir = await makeTempDir('durable-');
    const path = join(dir, 'f');
    await writeFileDurable(dir, path, 'one');
    await writeFileDurable(dir, path, Uint8Array.of(0x74, 0x77, 0x6f));
    expect(await readFile(path, 'utf8')).toBe('two');
    expect(existsSync(`${path}.tmp`)).toBe(false);
    await fsyncDir(dir);
  });

  it('fails when the target cannot be replaced and removes its temporary file', async () => {
    const dir = await makeTempDir('durable-');
    const path = join(dir, 'taken');
    await mkdir(join(path, 'child'), { recursive: true }); // a non-empty folder cannot be renamed over
    await expect(writeFileDurable(dir, path, 'x')).rejects.toMatchObject({ code: expect.stringMatching(/EISDIR|ENOTEMPTY|EEXIST/) });
    expect(existsSync(`${path}.tmp`)).toBe(false);
    await expect(fsyncDir(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
