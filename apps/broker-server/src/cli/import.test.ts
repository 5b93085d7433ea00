import { describe, expect, it } from '@jest/globals';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openImportSource } from './import.js';

const ORIGINAL = join(import.meta.dirname, '..', '..', '..', '..', 'fixtures', 'original');

async function scratchDirs(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((name) => name.startsWith('msg-import-'));
}

describe('openImportSource', () => {
  for (const [what, path] of [
    ['data dir', join(ORIGINAL, 'broker-dir')],
    ['snapshot file', join(ORIGINAL, 'snapshot.bin')],
  ] as const) {
    it(`reads the original's ${what}: every message, in its global index order`, async () => {
      const before = await scratchDirs();
      {
        await using source = await openImportSource(path);
        expect(source.topics.map((t) => [t.id, t.messages, t.firstIndex, t.lastIndex])).toEqual([
          [20n, 10, 2n, 29n],
          [21n, 10, 3n, 30n],
          [22n, 10, 4n, 31n],
        ]);
        const indexes: bigint[] = [];
        const topics = new Set<bigint>();
        for await (const m of source.messages()) {
          indexes.push(m.index);
          topics.add(m.topicID);
        }
        expect(indexes).toHaveLength(30);
        expect([...indexes].sort((a, b) => (a < b ? -1 : 1))).toEqual(indexes);
        expect(topics).toEqual(new Set([20n, 21n, 22n]));
      }
      // The scratch broker is gone once the source is disposed.
      expect(await scratchDirs()).toEqual(before);
    });
  }

  it('fails NO_INPUT (66) for a missing path and CORRUPT_INPUT (74) for a file of another format', async () => {
    await expect(openImportSource(join(ORIGINAL, 'no-such'))).rejects.toMatchObject({ code: 'NO_INPUT', exitCode: 66 });
    await expect(openImportSource(join(ORIGINAL, 'messages.json'))).rejects.toMatchObject({ code: 'CORRUPT_INPUT', exitCode: 74 });
  });
});
