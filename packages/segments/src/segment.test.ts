import { describe, expect, it } from '@jest/globals';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeMessages } from '@msg/wire';
import { makeTempDir } from '@msg/test-utils';
import { msg, segmentBytes } from '../test/helpers.js';
import { FILE_HEADER_SIZE } from './format.js';
import { findSegment, listSegmentFiles, listSegments, listTopicIDs, readSegmentMaxIndex, scanSegment } from './segment.js';

describe('listSegmentFiles', () => {
  it('lists files named by a decimal u64 in numeric order and ignores everything else', async () => {
    const dir = await makeTempDir('list-');
    for (const name of ['100', '2', '10', '007', 'x', '.lock', '.first-index', '18446744073709551616', '5.tmp']) await writeFile(join(dir, name), '');
    await mkdir(join(dir, '50'));
    expect((await listSegmentFiles(dir)).map((f) => f.startIndex)).toEqual([2n, 10n, 100n]);
    expect(await listSegmentFiles(join(dir, 'missing'))).toEqual([]);
  });
});

describe('findSegment', () => {
  const segments = [{ startIndex: 2n }, { startIndex: 10n }, { startIndex: 30n }];

  it('finds the last segment starting at or before the index', () => {
    expect(findSegment(segments, 2n)).toBe(segments[0]);
    expect(findSegment(segments, 9n)).toBe(segments[0]);
    expect(findSegment(segments, 10n)).toBe(segments[1]);
    expect(findSegment(segments, 29n)).toBe(segments[1]);
    expect(findSegment(segments, 30n)).toBe(segments[2]);
    expect(findSegment(segments, 1n << 63n)).toBe(segments[2]);
  });

  it('starts an index before every segment at the first one, and finds nothing in no segments', () => {
    expect(findSegment(segments, 0n)).toBe(segments[0]);
    expect(findSegment([], 5n)).toBeUndefined();
  });
});

describe('listTopicIDs', () => {
  it('lists subfolders named by a decimal u64, sorted', async () => {
    const dir = await makeTempDir('topics-');
    for (const name of ['20', '3', 'raft', '0021']) await mkdir(join(dir, name));
    await writeFile(join(dir, '4'), '');
    expect(await listTopicIDs(dir)).toEqual([3n, 20n]);
    expect(await listTopicIDs(join(dir, 'missing'))).toEqual([]);
  });
});

describe('readSegmentMaxIndex', () => {
  it('reads the last index of our segments and of raw frames, ignoring a torn tail', async () => {
    const dir = await makeTempDir('max-');
    const ours = segmentBytes([[msg(3), msg(4)], [msg(9)]]);
    await writeFile(join(dir, '3'), ours);
    await writeFile(join(dir, '10'), ours.subarray(0, ours.byteLength - 2));
    await writeFile(join(dir, '20'), encodeMessages([msg(20), msg(25)]));
    await writeFile(join(dir, '30'), '');
    await writeFile(join(dir, '40'), ours.subarray(0, FILE_HEADER_SIZE));
    expect(await readSegmentMaxIndex(join(dir, '3'))).toBe(9n);
    expect(await readSegmentMaxIndex(join(dir, '10'))).toBe(4n);
    expect(await readSegmentMaxIndex(join(dir, '20'))).toBe(25n);
    expect(await readSegmentMaxIndex(join(dir, '30'))).toBe(0n);
    expect(await readSegmentMaxIndex(join(dir, '40'))).toBe(0n);
  });

  it('reports a damaged file header as corruption', async () => {
    const dir = await makeTempDir('max-');
    const bytes = segmentBytes([[msg(3)]]);
    bytes[13]! ^= 1;
    await writeFile(join(dir, '3'), bytes);
    await expect(readSegmentMaxIndex(join(dir, '3'))).rejects.toMatchObject({ code: 'CORRUPT_SEGMENT', offset: 0 });
  });
});

describe('scanSegment', () => {
  it('finds the end of the last whole record and whether a torn one follows', async () => {
    const dir = await makeTempDir('scan-');
    const bytes = segmentBytes([[msg(3)], [msg(4)]]);
    await writeFile(join(dir, '3'), bytes.subarray(0, bytes.byteLength - 1));
    const scan = await scanSegment(join(dir, '3'), 'v1', bytes.byteLength - 1);
    expect(scan).toEqual({ end: segmentBytes([[msg(3)]]).byteLength, lastIndex: 3n, torn: true });
  });
});

describe('listSegments', () => {
  it('describes each segment with its size and last index', async () => {
    const dir = await makeTempDir('segments-');
    const first = segmentBytes([[msg(1), msg(2)]]);
    const second = segmentBytes([[msg(5)], [msg(6)]], { prevLastIndex: 2n });
    await writeFile(join(dir, '1'), first);
    await writeFile(join(dir, '5'), second);
    expect(await listSegments(dir)).toEqual([
      { startIndex: 1n, path: join(dir, '1'), size: first.byteLength, lastIndex: 2n },
      { startIndex: 5n, path: join(dir, '5'), size: second.byteLength, lastIndex: 6n },
    ]);
    expect(await listSegments(join(dir, 'none'))).toEqual([]);
  });
});
