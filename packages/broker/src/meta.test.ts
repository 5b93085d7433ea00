import { describe, expect, it } from '@jest/globals';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { isBrokerStateError } from './errors.js';
import { readMeta, writeMeta, type BrokerMeta } from './meta.js';

describe('meta', () => {
  it('reads back what was written, u64 values exact', async () => {
    const dir = await makeTempDir();
    const meta: BrokerMeta = {
      state: 'state-3',
      appliedIndex: 12345,
      readers: new Map([[2n ** 64n - 1n, new Map([['', 5n], ['b', 2n ** 60n]])]]),
      topics: new Map([
        [20n, { lastIndex: 31n, segment: '23', size: 171 }],
        [21n, { lastIndex: 0n, size: 0 }],
      ]),
    };
    await writeMeta(dir, meta);
    expect(await readMeta(dir)).toEqual(meta);
    expect(await readdir(dir)).toEqual(['meta']);
  });

  it('returns undefined when there is no meta file', async () => {
    expect(await readMeta(await makeTempDir())).toBeUndefined();
  });

  it('replaces the previous content as a whole', async () => {
    const dir = await makeTempDir();
    await writeMeta(dir, { state: 'state-1', appliedIndex: 1, readers: new Map(), topics: new Map() });
    await writeMeta(dir, { state: 'state-2', appliedIndex: 2, readers: new Map(), topics: new Map() });
    expect((await readMeta(dir))?.appliedIndex).toBe(2);
  });

  it('detects every flipped byte: CORRUPT_META, never a silently different state', async () => {
    const dir = await makeTempDir();
    const meta: BrokerMeta = {
      state: 'state-3',
      appliedIndex: 12345,
      readers: new Map([[7n, new Map([['a', 5n]])]]),
      topics: new Map([[20n, { lastIndex: 31n, segment: '23', size: 171 }]]),
    };
    await writeMeta(dir, meta);
    const path = join(dir, 'meta');
    const good = await readFile(path);
    const accepted: string[] = [];
    for (let at = 0; at < good.length; at++) {
      for (const mask of [0x01, 0x02, 0x10, 0x80]) {
        const bad = Buffer.from(good);
        bad[at] = bad[at]! ^ mask;
        await writeFile(path, bad);
        try {
          await readMeta(dir);
          accepted.push(`byte ${at} ^ ${mask}`);
        } catch (error) {
          expect(isBrokerStateError(error, 'CORRUPT_META')).toBe(true);
        }
      }
    }
    expect(accepted).toEqual([]);
  });

  it('reads a meta file of the previous format (version 1, no checksum)', async () => {
    const dir = await makeTempDir();
    await writeFile(join(dir, 'meta'), '{"version":1,"state":"s","appliedIndex":4,"readers":{},"topics":{"1":{"lastIndex":"3","size":9}}}\n');
    expect(await readMeta(dir)).toEqual({ state: 's', appliedIndex: 4, readers: new Map(), topics: new Map([[1n, { lastIndex: 3n, size: 9 }]]) });
  });

  it('rejects malformed files with CORRUPT_META naming the file', async () => {
    const dir = await makeTempDir();
    const cases = [
      'not json',
      '{"version":2}',
      '{"version":1,"state":"../x","appliedIndex":1,"readers":{},"topics":{}}',
      '{"version":1,"state":"s","appliedIndex":-1,"readers":{},"topics":{}}',
      '{"version":1,"state":"s","appliedIndex":1,"readers":{"x":{}},"topics":{}}',
      '{"version":1,"state":"s","appliedIndex":1,"readers":{},"topics":{"1":{"lastIndex":"99999999999999999999999","size":1}}}',
      '{"version":1,"state":"s","appliedIndex":1,"readers":{},"topics":{"1":{"lastIndex":"1","segment":"../a","size":1}}}',
    ];
    for (const text of cases) {
      await writeFile(join(dir, 'meta'), text);
      let caught: unknown;
      try {
        await readMeta(dir);
      } catch (error) {
        caught = error;
      }
      expect(isBrokerStateError(caught, 'CORRUPT_META')).toBe(true);
      expect((caught as Error).message).toContain(join(dir, 'meta'));
    }
  });
});
