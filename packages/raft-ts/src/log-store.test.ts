import { describe, expect, it } from '@jest/globals';
import { makeTempDir } from '@msg/test-utils';
import { SimDisk } from '../test/sim/sim-disk.js';
import { checksum } from './bytes.js';
import { isRaftError } from './errors.js';
import { NodeFileSystem, type FileHandle, type FileSystem } from './file-system.js';
import type { Logger } from './clock.js';
import { LogStore, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES } from './log-store.js';
import { EntryType, type LogEntry } from './types.js';

const fs = new NodeFileSystem();
const opts = { sync: true, segmentBytes: 1024 };
/** Opening with nothing known durable (every crash-shaped tail may be recovered). */
const fresh = { emptyFirst: 1, durableIndex: 0 };

/** Byte offset of the `n`-th record (0-based) of a segment of entries with `size` bytes of data each. */
function recordAt(n: number, size: number): number {
  return SEGMENT_HEADER_BYTES + n * (RECORD_HEADER_BYTES + size);
}

/** A logger keeping the warnings. */
function warnings(): Logger & { warned: { message: string; fields: Record<string, unknown> | undefined }[] } {
  const warned: { message: string; fields: Record<string, unknown> | undefined }[] = [];
  return { warned, debug: () => undefined, info: () => undefined, error: () => undefined, warn: (message, fields) => warned.push({ message, fields }) };
}

async function rewrite(path: string, bytes: Uint8Array): Promise<void> {
  await fs.remove(path);
  const fh = await fs.open(path);
  await fh.append(bytes);
  await fh.close();
}

async function openError(dir: string, durableIndex: number): Promise<unknown> {
  return LogStore.open(fs, dir, opts, { emptyFirst: 1, durableIndex }).then(
    async (log) => {
      await log.close();
      return undefined;
    },
    (e: unknown) => e,
  );
}

function entries(from: number, count: number, term = 1, size = 10): LogEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    index: from + i,
    term,
    type: EntryType.Command,
    data: new Uint8Array(size).fill((from + i) % 251),
  }));
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The real file system, with some methods of every file handle it opens replaced by `override(handle)`'s. */
function withHandles(override: (handle: FileHandle) => Partial<FileHandle>): FileSystem {
  return {
    mkdir: (d) => fs.mkdir(d),
    list: (d) => fs.list(d),
    readFile: (path) => fs.readFile(path),
    rename: (from, to) => fs.rename(from, to),
    remove: (path) => fs.remove(path),
    syncDir: (d) => fs.syncDir(d),
    open: async (path) => {
      const handle = await fs.open(path);
      return {
        size: () => handle.size(),
        read: (position, length) => handle.read(position, length),
        append: (data) => handle.append(data),
        truncate: (length) => handle.truncate(length),
        sync: () => handle.sync(),
        close: () => handle.close(),
        ...override(handle),
      };
    },
  };
}

describe('LogStore', () => {
  it('writes the appends queued behind a write as one (one write for many callers, not one each)', async () => {
    const dir = await makeTempDir();
    let appends = 0;
    const counting = withHandles((handle) => ({
      append: (data) => {
        appends++;
        return handle.append(data);
      },
    }));
    const log = await LogStore.open(counting, dir, { sync: true, segmentBytes: 1 << 20 }, fresh);
    // 100 appends of one entry each, from separate callers: the first starts a write, the other 99 queue behind it.
    for (let i = 1; i <= 100; i++) log.append(entries(i, 1));
    await log.sync();
    expect(log.durableIndex).toBe(100);
    expect(appends).toBeLessThanOrEqual(2);
    await log.close();
    const again = await LogStore.open(fs, dir, opts, fresh);
    expect((await again.read(1, 100, 1000)).map((e) => e.index)).toEqual(entries(1, 100).map((e) => e.index));
    await again.close();
  });

  it('warns of a write round whose fsync held commits back for 100 ms or more, at most once a second', async () => {
    const dir = await makeTempDir();
    let slowSyncs = 0;
    const slow = withHandles((handle) => ({
      sync: async () => {
        if (slowSyncs-- > 0) await new Promise((resolve) => setTimeout(resolve, 120));
        return handle.sync();
      },
    }));
    const logger = warnings();
    const log = await LogStore.open(slow, dir, { sync: true, segmentBytes: 1 << 20, logger }, fresh);
    log.append(entries(1, 1));
    await log.sync();
    expect(logger.warned).toEqual([]);
    slowSyncs = 2;
    log.append(entries(2, 1));
    await log.sync();
    log.append(entries(3, 1));
    await log.sync();
    expect(logger.warned).toEqual([{ message: 'raft: slow log write', fields: { writeMs: expect.any(Number), fsyncMs: expect.any(Number) } }]);
    expect(logger.warned[0]!.fields!.fsyncMs).toBeGreaterThanOrEqual(100);
    await log.close();
  });

  it('keeps appended entries across a reopen, in several segments', async () => {
    const dir = await makeTempDir();
    const log = await LogStore.open(fs, dir, opts, fresh);
    log.append(entries(1, 100));
    await log.sync();
    expect(log.durableIndex).toBe(100);
    await log.close();
    const names = (await fs.list(dir)).filter((n) => n.startsWith('log-'));
    expect(names.length).toBeGreaterThan(2);
    const again = await LogStore.open(fs, dir, opts, fresh);
    expect([again.firstIndex, again.lastIndex, again.lastTerm]).toEqual([1, 100, 1]);
    expect((await again.entry(57))!.data[0]).toBe(57);
    await again.close();
  });

  it('truncates a conflicting suffix, also across segments, and appends after it', async () => {
    const dir = await makeTempDir();
    const log = await LogStore.open(fs, dir, opts, fresh);
    log.append(entries(1, 100));
    log.truncateFrom(30);
    log.append(entries(30, 5, 2));
    await log.sync();
    await log.close();
    const again = await LogStore.open(fs, dir, opts, fresh);
    expect(again.lastIndex).toBe(34);
    expect(again.term(29)).toBe(1);
    expect(again.term(30)).toBe(2);
    await again.close();
  });

  it('deletes whole segments behind a compaction point and starts fresh after a reset', async () => {
    const dir = await makeTempDir();
    const log = await LogStore.open(fs, dir, opts, fresh);
    log.append(entries(1, 100));
    log.compactBefore(60);
    expect(log.firstIndex).toBe(60);
    await log.sync();
    await log.close();
    const again = await LogStore.open(fs, dir, opts, fresh);
    expect(again.firstIndex).toBeLessThanOrEqual(60);
    expect(again.firstIndex).toBeGreaterThan(1);
    expect(again.lastIndex).toBe(100);
    again.reset(500);
    again.append(entries(500, 2));
    await again.sync();
    await again.close();
    const third = await LogStore.open(fs, dir, opts, fresh);
    expect([third.firstIndex, third.lastIndex]).toEqual([500, 501]);
    await third.close();
  });

  it('truncates a torn tail on open and keeps everything before it', async () => {
    const dir = await makeTempDir();
    const log = await LogStore.open(fs, dir, { sync: true, segmentBytes: 1 << 20 }, fresh);
    log.append(entries(1, 10));
    await log.sync();
    await log.close();
    const path = `${dir}/log-00000000000000000001.seg`;
    const fh = await fs.open(path);
    const size = await fh.size();
    await fh.truncate(size - 5);
    await fh.close();
    const again = await LogStore.open(fs, dir, opts, fresh);
    expect(again.lastIndex).toBe(9);
    again.append(entries(10, 1, 3));
    await again.sync();
    await again.close();
    const third = await LogStore.open(fs, dir, opts, fresh);
    expect(third.term(10)).toBe(3);
    await third.close();
  });

  it('reports a damaged record before the tail as CORRUPT with file and offset', async () => {
    const dir = await makeTempDir();
    const log = await LogStore.open(fs, dir, { sync: true, segmentBytes: 1 << 20 }, fresh);
    log.append(entries(1, 10));
    await log.sync();
    await log.close();
    const path = `${dir}/log-00000000000000000001.seg`;
    const bytes = (await fs.readFile(path))!;
    const at = recordAt(1, 10) + RECORD_HEADER_BYTES + 5; // inside the data of the second record
    bytes[at] = bytes[at]! ^ 0xff;
    await rewrite(path, bytes);
    const err = await openError(dir, 0);
    expect(isRaftError(err, 'CORRUPT')).toBe(true);
    expect((err as Error).message).toBe(`${path}: bad data checksum at offset ${recordAt(1, 10)}`);
  });

  it('never loses a synced entry when the simulated disk crashes at any moment', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const random = seeded(seed);
      const disk = new SimDisk(random);
      const sfs = disk.mount();
      await sfs.mkdir('/n');
      const log = await LogStore.open(sfs, '/n', { sync: true, segmentBytes: 300 }, fresh);
      let acked = 0;
      let term = 1;
      const steps = 5 + Math.floor(random() * 30);
      for (let i = 0; i < steps; i++) {
        if (random() < 0.15 && log.lastIndex > acked + 1) {
          // only unacknowledged entries may be replaced (as Raft guarantees)
          term++;
          log.truncateFrom(acked + 1 + Math.floor(random() * (log.lastIndex - acked)));
        }
        log.append(entries(log.lastIndex + 1, 1 + Math.floor(random() * 5), term));
        if (random() < 0.5) {
          const upTo = log.lastIndex;
          await log.sync();
          acked = upTo;
        }
      }
      const expected = await log.read(1, acked);
      disk.crash();
      const again = await LogStore.open(disk.mount(), '/n', opts, { emptyFirst: 1, durableIndex: acked });
      expect(again.lastIndex).toBeGreaterThanOrEqual(acked);
      for (const e of expected) expect(await again.entry(e.index)).toEqual(e);
    }
  });

  it('rejects every flipped bit of a record length in the last segment as CORRUPT naming file and offset (never a torn tail)', async () => {
    const dir = await makeTempDir();
    const log = await LogStore.open(fs, dir, { sync: true, segmentBytes: 1 << 20 }, fresh);
    log.append(entries(1, 10));
    await log.sync();
    await log.close();
    const path = `${dir}/log-00000000000000000001.seg`;
    const pristine = new Uint8Array((await fs.readFile(path))!); // a copy: slice() copies it again
    for (const n of [4, 9]) {
      // the length is the record's first field, u32 big-endian
      for (let bit = 0; bit < 32; bit++) {
        const bytes = pristine.slice();
        const at = recordAt(n, 10) + (bit >> 3);
        bytes[at] = bytes[at]! ^ (0x80 >> (bit & 7));
        await rewrite(path, bytes);
        for (const durableIndex of [0, 10]) {
          const err = await openError(dir, durableIndex);
          expect([n, bit, durableIndex, isRaftError(err, 'CORRUPT')]).toEqual([n, bit, durableIndex, true]);
          expect((err as Error).message).toContain(`${path}: `);
          expect((err as Error).message).toContain(`at offset ${recordAt(n, 10)}`);
        }
      }
    }
    await rewrite(path, pristine);
    const again = await LogStore.open(fs, dir, opts, { emptyFirst: 1, durableIndex: 10 });
    expect(again.lastIndex).toBe(10);
    await again.close();
  });

  it('recovers a zero hole followed by data in the tail beyond the durable point, and reports it; at or before that point it is CORRUPT', async () => {
    const dir = await makeTempDir();
    const log = await LogStore.open(fs, dir, { sync: true, segmentBytes: 1 << 20 }, fresh);
    log.append(entries(1, 20, 1, 100));
    await log.sync();
    await log.close();
    const path = `${dir}/log-00000000000000000001.seg`;
    const pristine = new Uint8Array((await fs.readFile(path))!); // a copy: slice() copies it again
    // a 512-byte sector of zeros (never written before the crash) inside record k + 1, records after it intact
    const hole = Math.ceil(recordAt(10, 100) / 512) * 512;
    const k = Math.floor((hole - SEGMENT_HEADER_BYTES) / (RECORD_HEADER_BYTES + 100));
    expect(hole + 512).toBeLessThan(pristine.length - 200);
    const bytes = pristine.slice();
    bytes.fill(0, hole, hole + 512);
    for (const durableIndex of [k + 1, 20]) {
      await rewrite(path, bytes);
      const err = await openError(dir, durableIndex);
      expect(isRaftError(err, 'CORRUPT')).toBe(true);
      expect((err as Error).message).toContain(`${path}: `);
      expect((err as Error).message).toContain(`at offset ${recordAt(k, 100)}`);
    }
    const logger = warnings();
    const again = await LogStore.open(fs, dir, { sync: true, segmentBytes: 1 << 20, logger }, { emptyFirst: 1, durableIndex: k });
    expect(again.lastIndex).toBe(k);
    expect(again.term(k)).toBe(1);
    expect(logger.warned).toHaveLength(1);
    expect(logger.warned[0]!.fields).toMatchObject({ file: path, offset: recordAt(k, 100), firstDropped: k + 1 });
    again.append(entries(k + 1, 1, 2, 100));
    await again.sync();
    await again.close();
    expect((await fs.readFile(path))!.length).toBe(recordAt(k + 1, 100));
    const third = await LogStore.open(fs, dir, opts, { emptyFirst: 1, durableIndex: k + 1 });
    expect([third.lastIndex, third.term(k + 1)]).toEqual([k + 1, 2]);
    await third.close();
  });

  it('rejects a segment without the format header (the format before 1.0) as CORRUPT', async () => {
    const dir = await makeTempDir();
    const path = `${dir}/log-00000000000000000001.seg`;
    // the old record: u32 payload length, u32 crc32(payload), payload (u64 index, u64 term, u8 type, data)
    const payload = new Uint8Array(17 + 3);
    const view = new DataView(payload.buffer);
    view.setUint32(4, 1);
    view.setUint32(12, 1);
    const record = new Uint8Array(8 + payload.length);
    new DataView(record.buffer).setUint32(0, payload.length);
    new DataView(record.buffer).setUint32(4, checksum(payload));
    record.set(payload, 8);
    await rewrite(path, record);
    const err = await openError(dir, 0);
    expect(isRaftError(err, 'CORRUPT')).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`^${path}: .*format.* at offset 0$`));
  });

  it('holds only a bounded cache of entry data, reads the rest from disk, and opens in bounded reads', async () => {
    const dir = await makeTempDir();
    const big = { sync: true, segmentBytes: 1 << 20, cacheBytes: 256 << 10 };
    const log = await LogStore.open(fs, dir, big, fresh);
    log.append(entries(1, 60, 1, 32 << 10));
    log.append([{ index: 61, term: 1, type: EntryType.Config, data: new TextEncoder().encode('{"voters":[],"learners":[]}') }]);
    log.append(entries(62, 39, 1, 32 << 10));
    // not yet written: readable all the same
    expect((await log.entry(100))!.data[0]).toBe(100);
    await log.sync();
    expect(log.cachedBytes).toBeLessThanOrEqual(256 << 10);
    expect(log.retainedBytes).toBe(99 * (32 << 10) + 27);
    expect(log.bytesBetween(2, 3)).toBe(2 * (32 << 10));
    const all = await log.read(1, 100);
    expect(all.map((e) => e.index)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    for (const e of all) if (e.type === EntryType.Command) expect([e.index, e.data.length, e.data[0], e.data[e.data.length - 1]]).toEqual([e.index, 32 << 10, e.index % 251, e.index % 251]);
    expect((await log.read(1, 100, 1000, 100 << 10)).length).toBe(3);
    expect(log.configEntries().map((e) => e.index)).toEqual([61]);
    await log.close();

    let biggestRead = 0;
    const streaming: FileSystem = {
      mkdir: (d) => fs.mkdir(d),
      list: (d) => fs.list(d),
      rename: (from, to) => fs.rename(from, to),
      remove: (path) => fs.remove(path),
      syncDir: (d) => fs.syncDir(d),
      readFile: () => Promise.reject(new Error('readFile of a whole segment')),
      open: async (path) => {
        const handle = await fs.open(path);
        return { size: () => handle.size(), append: (d) => handle.append(d), truncate: (n) => handle.truncate(n), sync: () => handle.sync(), close: () => handle.close(), read: (position, length) => {
          biggestRead = Math.max(biggestRead, length);
          return handle.read(position, length);
        } };
      },
    };
    const again = await LogStore.open(streaming, dir, big, { emptyFirst: 1, durableIndex: 100 });
    expect(biggestRead).toBeLessThanOrEqual(1 << 20);
    expect(again.cachedBytes).toBeLessThanOrEqual(256 << 10);
    expect(again.configEntries().map((e) => new TextDecoder().decode(e.data))).toEqual(['{"voters":[],"learners":[]}']);
    expect((await again.entry(7))!.data[5]).toBe(7);
    expect((await again.read(1, 100)).length).toBe(100);
    await again.close();
  });

  it('reports a record damaged after open as CORRUPT when it is read', async () => {
    const dir = await makeTempDir();
    const log = await LogStore.open(fs, dir, { sync: true, segmentBytes: 1 << 20, cacheBytes: 0 }, fresh);
    log.append(entries(1, 10));
    await log.sync();
    const path = `${dir}/log-00000000000000000001.seg`;
    const bytes = (await fs.readFile(path))!;
    bytes[recordAt(3, 10) + RECORD_HEADER_BYTES + 2]! ^= 1;
    const fh = await fs.open(path);
    await fh.truncate(0);
    await fh.append(bytes);
    await fh.close();
    expect((await log.entry(3))!.index).toBe(3);
    const err = await log.read(1, 10).catch((e: unknown) => e);
    expect(isRaftError(err, 'CORRUPT')).toBe(true);
    expect((err as Error).message).toBe(`${path}: bad data checksum at offset ${recordAt(3, 10)}`);
    await log.close();
  });
});
