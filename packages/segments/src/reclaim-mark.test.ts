import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { RECLAIM_MARK_FILE, readReclaimMark, removeStaleMarkTemp, writeReclaimMark } from './reclaim-mark.js';

describe('reclaim mark', () => {
  it('reads 0n when there is none and the last index written otherwise', async () => {
    const dir = await makeTempDir('mark-');
    expect(await readReclaimMark(dir)).toBe(0n);
    await writeReclaimMark(dir, 42n);
    await writeReclaimMark(dir, 18446744073709551615n);
    expect(await readReclaimMark(dir)).toBe(18446744073709551615n);
    expect(existsSync(join(dir, `${RECLAIM_MARK_FILE}.tmp`))).toBe(false);
  });

  it('reports a mark that is not a decimal u64 as CORRUPT_SEGMENT naming the file', async () => {
    const dir = await makeTempDir('mark-');
    await writeFile(join(dir, RECLAIM_MARK_FILE), 'twelve');
    await expect(readReclaimMark(dir)).rejects.toMatchObject({ code: 'CORRUPT_SEGMENT', segment: join(dir, RECLAIM_MARK_FILE), offset: 0 });
  });

  it('removes a temporary file left by a crash while writing the mark, and ignores its absence', async () => {
    const dir = await makeTempDir('mark-');
    await writeFile(join(dir, `${RECLAIM_MARK_FILE}.tmp`), '9');
    await removeStaleMarkTemp(dir);
    expect(existsSync(join(dir, `${RECLAIM_MARK_FILE}.tmp`))).toBe(false);
    await removeStaleMarkTemp(dir);
    expect(await readReclaimMark(dir)).toBe(0n);
  });
});
