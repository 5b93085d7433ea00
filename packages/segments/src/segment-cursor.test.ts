import { describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeMessages, type Message } from '@msg/wire';
import { makeTempDir } from '@msg/test-utils';
import { expectSameBytes, msg, segmentBytes } from '../test/helpers.js';
import { nodeFileSystem, type FileHandle, type FileSystem } from './file-system.js';
import { checksum, FILE_HEADER_SIZE, RECORD_HEADER_SIZE } from './format.js';
import { READ_SIZE, SegmentCursor, type CursorRead } from './segment-cursor.js';

async function file(bytes: Uint8Array): Promise<string> {
  const path = join(await makeTempDir('cursor-'), '1');
  await writeFile(path, bytes);
  return path;
}

async function drain(cursor: SegmentCursor, limit: number, from: bigint): Promise<{ frames: Uint8Array; reads: CursorRead[] }> {
  const reads: CursorRead[] = [];
  for (let i = 0; i < 10_000; i++) {
    const read = await cursor.read(limit, from);
    reads.push(read);
    if (read.status !== 'data') break;
  }
  return { frames: new Uint8Array(Buffer.concat(reads.map((r) => r.frames))), reads };
}

const groups: Message[][] = [[msg(1), msg(2), msg(3)], [msg(5, 0)], [msg(8, 300), msg(9, 7)]];
const all = groups.flat();

describe('SegmentCursor over our format', () => {
  it('hands out the frames from an index, contiguous, skipping earlier records', async () => {
    const bytes = segmentBytes(groups);
    const path = await file(bytes);
    for (const from of [0n, 1n, 2n, 4n, 5n, 6n, 9n, 10n]) {
      const cursor = await SegmentCursor.open(path, 'v1', FILE_HEADER_SIZE, 1000);
      const { frames, reads } = await drain(cursor, bytes.byteLength, from);
      expect(frames).toEqual(encodeMessages(all.filter((m) => m.index >= from)));
      expect(reads.at(-1)!.status).toBe('end');
      expect(cursor.position).toBe(bytes.byteLength);
      expect(cursor.lastIndex).toBe(9n);
      await cursor.close();
    }
  });

  it('stops at the limit and reports an incomplete record at the end', async () => {
    const bytes = segmentBytes(groups);
    const path = await file(bytes);
    const secondRecord = FILE_HEADER_SIZE + RECORD_HEADER_SIZE + encodeMessages(groups[0]!).byteLength;
    const cursor = await SegmentCursor.open(path, 'v1', FILE_HEADER_SIZE, 1000);
    const first = await cursor.read(secondRecord + 5, 0n);
    expect(first).toMatchObject({ status: 'data', lastIndex: 3n });
    expect(await cursor.read(secondRecord + 5, 0n)).toMatchObject({ status: 'incomplete' });
    expect(cursor.position).toBe(secondRecord);
    const rest = await drain(cursor, bytes.byteLength, 0n);
    expect(rest.frames).toEqual(encodeMessages(all.slice(3)));
    await cursor.close();
  });

  it('reads a record larger than one read', async () => {
    const big = msg(4, READ_SIZE + 100);
    const bytes = segmentBytes([[msg(1)], [big], [msg(6)]]);
    const path = await file(bytes);
    const cursor = await SegmentCursor.open(path, 'v1', FILE_HEADER_SIZE, 2 * READ_SIZE);
    const { frames } = await drain(cursor, bytes.byteLength, 2n);
    expectSameBytes(frames, encodeMessages([big, msg(6)]));
    await cursor.close();
  });

  it('hands out the records before a corrupt one, then names its offset', async () => {
    const bytes = segmentBytes(groups);
    const bad = FILE_HEADER_SIZE + RECORD_HEADER_SIZE + encodeMessages(groups[0]!).byteLength;
    bytes[bad + RECORD_HEADER_SIZE + 3]! ^= 0x10;
    const path = await file(bytes);
    const cursor = await SegmentCursor.open(path, 'v1', FILE_HEADER_SIZE, 1000);
    const first = await cursor.read(bytes.byteLength, 0n);
    expect(first.frames).toEqual(encodeMessages(groups[0]!));
    await expect(cursor.read(bytes.byteLength, 0n)).rejects.toMatchObject({ code: 'CORRUPT_SEGMENT', segment: path, offset: bad });
    await cursor.close();
  });

  it('treats a zero-filled tail as incomplete and other garbage as corruption', async () => {
    const bytes = segmentBytes(groups);
    const zeros = await file(new Uint8Array(Buffer.concat([bytes, new Uint8Array(100)])));
    let cursor = await SegmentCursor.open(zeros, 'v1', FILE_HEADER_SIZE, 1000);
    const result = await drain(cursor, bytes.byteLength + 100, 0n);
    expect(result.frames).toEqual(encodeMessages(all));
    expect(result.reads.at(-1)!.status).toBe('incomplete');
    expect(cursor.position).toBe(bytes.byteLength);
    await cursor.close();

    const tail = new Uint8Array(100);
    tail[70] = 1;
    const junk = await file(new Uint8Array(Buffer.concat([bytes, tail])));
    cursor = await SegmentCursor.open(junk, 'v1', FILE_HEADER_SIZE, 1000);
    await cursor.read(bytes.byteLength + 100, 0n);
    await expect(cursor.read(bytes.byteLength + 100, 0n)).rejects.toMatchObject({ code: 'CORRUPT_SEGMENT', offset: bytes.byteLength });
    await cursor.close();
  });

  it('refuses a record whose frames do not match its header', async () => {
    const bytes = segmentBytes([[msg(1), msg(2)]]);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(FILE_HEADER_SIZE + 12, 3n); // claims to end at index 3
    view.setUint32(FILE_HEADER_SIZE + 24, checksum(bytes.subarray(FILE_HEADER_SIZE, FILE_HEADER_SIZE + 24)));
    const path = await file(bytes);
    const cursor = await SegmentCursor.open(path, 'v1', FILE_HEADER_SIZE, 1000);
    await expect(cursor.read(bytes.byteLength, 2n)).rejects.toMatchObject({ code: 'CORRUPT_SEGMENT', offset: FILE_HEADER_SIZE });
    await cursor.close();
  });

  it('refuses indexes that go backwards and records above the size cap', async () => {
    // Two records whose indexes go backwards.
    const backwards = new Uint8Array(Buffer.concat([segmentBytes([[msg(5)]]), segmentBytes([[msg(4)]]).subarray(FILE_HEADER_SIZE)]));
    const path = await file(backwards);
    const cursor = await SegmentCursor.open(path, 'v1', FILE_HEADER_SIZE, 1000);
    await cursor.read(backwards.byteLength, 0n);
    await expect(cursor.read(backwards.byteLength, 0n)).rejects.toMatchObject({ code: 'CORRUPT_SEGMENT', offset: backwards.byteLength - RECORD_HEADER_SIZE - 32 });
    await cursor.close();
    // A record larger than the frame cap allows.
    const large = segmentBytes([[msg(1, 70_000)]]);
    const largePath = await file(large);
    const capped = await SegmentCursor.open(largePath, 'v1', FILE_HEADER_SIZE, 100);
    await expect(capped.read(large.byteLength, 0n)).rejects.toMatchObject({ code: 'CORRUPT_SEGMENT', offset: FILE_HEADER_SIZE });
    await capped.close();
  });
});

describe('SegmentCursor over the original\'s raw frames', () => {
  const frames = encodeMessages(all);

  it('hands out frames from an index as one view', async () => {
    const path = await file(frames);
    for (const from of [0n, 3n, 4n, 9n, 10n]) {
      const cursor = await SegmentCursor.open(path, 'legacy', 0, 1000);
      const { frames: got, reads } = await drain(cursor, frames.byteLength, from);
      expect(got).toEqual(encodeMessages(all.filter((m) => m.index >= from)));
      expect(reads.at(-1)!.status).toBe('end');
      await cursor.close();
    }
  });

  it('reports a cut frame as incomplete and a huge length or a backwards index as corruption', async () => {
    const cut = await file(frames.subarray(0, frames.byteLength - 3));
    let cursor = await SegmentCursor.open(cut, 'legacy', 0, 1000);
    const { reads } = await drain(cursor, frames.byteLength - 3, 0n);
    expect(reads.at(-1)!.status).toBe('incomplete');
    await cursor.close();

    const huge = frames.slice();
    new DataView(huge.buffer).setUint32(18, 5000);
    cursor = await SegmentCursor.open(await file(huge), 'legacy', 0, 1000);
    await expect(cursor.read(huge.byteLength, 0n)).rejects.toMatchObject({ code: 'CORRUPT_SEGMENT', offset: 0 });
    await cursor.close();

    const backwards = encodeMessages([msg(5), msg(4)]);
    cursor = await SegmentCursor.open(await file(backwards), 'legacy', 0, 1000);
    expect((await cursor.read(backwards.byteLength, 0n)).lastIndex).toBe(5n);
    await expect(cursor.read(backwards.byteLength, 0n)).rejects.toMatchObject({ code: 'CORRUPT_SEGMENT', offset: 32 });
    await cursor.close();
  });
});

/** Handles of `fs` with read() alone, or also able to read into a buffer the caller gives (`readInto`, counted). */
function handles(fs: FileSystem, withReadInto: boolean): FileSystem & { readsInto: number } {
  const wrapped = Object.create(fs) as FileSystem & { readsInto: number };
  wrapped.readsInto = 0;
  wrapped.open = async (path, options) => {
    const handle = await fs.open(path, options);
    const plain: FileHandle = {
      size: () => handle.size(),
      read: (position, length) => handle.read(position, length),
      append: (data) => handle.append(data),
      truncate: (length) => handle.truncate(length),
      sync: () => handle.sync(),
      close: () => handle.close(),
    };
    if (!withReadInto) return plain;
    const readInto = async (target: Uint8Array, position: number): Promise<number> => {
      wrapped.readsInto++;
      const bytes = await handle.read(position, target.byteLength);
      target.set(bytes);
      return bytes.byteLength;
    };
    return Object.assign(plain, { readInto });
  };
  return wrapped;
}

const readIntoFileSystem = (): FileSystem & { readsInto: number } => handles(nodeFileSystem, true);

describe('SegmentCursor reading into a buffer it is given', () => {
  it('reads into the buffer when the handle can, and hands out the frames as a view of it', async () => {
    const bytes = segmentBytes(groups);
    const path = await file(bytes);
    const fs = readIntoFileSystem();
    const into = Buffer.alloc(READ_SIZE, 0xee);
    const cursor = await SegmentCursor.open(path, 'v1', FILE_HEADER_SIZE, 1000, fs);
    expect(cursor.readsInto).toBe(true);
    const read = await cursor.read(bytes.byteLength, 2n, into);
    expect(read.status).toBe('data');
    expect(read.buffer).toBe(into);
    expect(read.frames.buffer).toBe(into.buffer);
    expect(read.frames).toEqual(encodeMessages(all.filter((m) => m.index >= 2n)));
    expect(fs.readsInto).toBe(1);
    expect(await cursor.read(bytes.byteLength, 2n, into)).toMatchObject({ status: 'end' });
    await cursor.close();
  });

  it('never hands out bytes of the buffer beyond those read, whatever an earlier read left in it', async () => {
    const long = segmentBytes([all]);
    const short = segmentBytes([[msg(1), msg(2)]]);
    const fs = readIntoFileSystem();
    const into = Buffer.allocUnsafe(READ_SIZE);
    let cursor = await SegmentCursor.open(await file(long), 'v1', FILE_HEADER_SIZE, 1000, fs);
    await cursor.read(long.byteLength, 0n, into);
    await cursor.close();
    cursor = await SegmentCursor.open(await file(short), 'v1', FILE_HEADER_SIZE, 1000, fs);
    const { frames } = await cursor.read(short.byteLength, 0n, into);
    expect(frames).toEqual(encodeMessages([msg(1), msg(2)]));
    await cursor.close();
    // Also for the original's raw frames.
    const legacy = encodeMessages([msg(1), msg(2)]);
    cursor = await SegmentCursor.open(await file(legacy), 'legacy', 0, 1000, fs);
    expect((await cursor.read(legacy.byteLength, 0n, into)).frames).toEqual(legacy);
    await cursor.close();
  });

  it('checks every record read into the buffer: a corrupt one is CORRUPT_SEGMENT, none of its bytes handed out', async () => {
    const bytes = segmentBytes(groups);
    const bad = FILE_HEADER_SIZE + RECORD_HEADER_SIZE + encodeMessages(groups[0]!).byteLength;
    bytes[bad + RECORD_HEADER_SIZE + 3]! ^= 0x10;
    const path = await file(bytes);
    const cursor = await SegmentCursor.open(path, 'v1', FILE_HEADER_SIZE, 1000, readIntoFileSystem());
    const into = Buffer.alloc(READ_SIZE);
    const first = await cursor.read(bytes.byteLength, 0n, into);
    expect(first.frames).toEqual(encodeMessages(groups[0]!));
    await expect(cursor.read(bytes.byteLength, 0n, into)).rejects.toMatchObject({ code: 'CORRUPT_SEGMENT', segment: path, offset: bad });
    await cursor.close();
  });

  it('reads a fresh buffer when the handle cannot read into one, or the read does not fit it', async () => {
    const bytes = segmentBytes(groups);
    const path = await file(bytes);
    const into = Buffer.alloc(READ_SIZE);
    let cursor = await SegmentCursor.open(path, 'v1', FILE_HEADER_SIZE, 1000, handles(nodeFileSystem, false));
    expect(cursor.readsInto).toBe(false);
    let read = await cursor.read(bytes.byteLength, 0n, into);
    expect(read.buffer).not.toBe(into);
    expect(read.frames.buffer).not.toBe(into.buffer);
    expect(read.frames).toEqual(encodeMessages(all));
    await cursor.close();

    const big = msg(4, READ_SIZE + 100);
    const large = segmentBytes([[big]]);
    const fs = readIntoFileSystem();
    cursor = await SegmentCursor.open(await file(large), 'v1', FILE_HEADER_SIZE, 2 * READ_SIZE, fs);
    read = await cursor.read(large.byteLength, 0n, into);
    expect(read.buffer).not.toBe(into);
    expectSameBytes(read.frames, encodeMessages([big]));
    await cursor.close();
  });
});
