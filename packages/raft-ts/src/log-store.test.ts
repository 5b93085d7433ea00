import { describe, expect, it } from '@jest/globals';
import { makeTempDir } from '@msg/test-utils';
import { SimDisk } from '../test/sim/sim-disk.js';
import { isRaftError } from './errors.js';
import { NodeFileSystem, type FileSystem } from './file-system.js';
import { LogStore } from './log-store.js';
import { EntryType, type LogEntry } from './types.js';

const fs = new NodeFileSystem();
const opts = { sync: true, segmentBytes: 1024 };

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

describe('LogStore', () => {
  it('writes the appends queued behind a write as one (one write for many callers, not one each)', async () => {
    const dir = await makeTempDir();
    let appends = 0;
    const counting: FileSystem = {
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
          append: (data) => {
            appends++;
            return handle.append(data);
          },
          truncate: (length) => handle.truncate(length),
          sync: () => handle.sync(),
          close: () => handle.close(),
        };
      },
    };
    const log = await LogStore.open(counting, dir, { sync: true, segmentBytes: 1 << 20 }, 1);
    // 100 appends of one entry each, from separate callers: the first starts a write, the other 99 queue behind it.
    for (let i = 1; i <= 100; i++) log.append(entries(i, 1));
    await log.sync();
    expect(log.durableIndex).toBe(100);
    expect(appends).toBeLessThanOrEqual(2);
    await log.close();
    const again = await LogStore.open(fs, dir, opts, 1);
    expect(again.slice(1, 100, 1000).map((e) => e.index)).toEqual(entries(1, 100).map((e) => e.index));
    await again.close();
  });

  it('keeps appended entries across a reopen, in several segments', async () => {
    const dir = await makeTempDir();
    const log = await LogStore.open(fs, dir, opts, 1);
    log.append(entries(1, 100));
    await log.sync();
    expect(log.durableIndex).toBe(100);
    await log.close();
    const names = (await fs.list(dir)).filter((n) => n.startsWith('log-'));
    expect(names.length).toBeGreaterThan(2);
    const again = await LogStore.open(fs, dir, opts, 1);
    expect([again.firstIndex, again.lastIndex, again.lastTerm]).toEqual([1, 100, 1]);
    expect(again.entry(57)!.data[0]).toBe(57);
    await again.close();
  });

  it('truncates a conflicting suffix, also across segments, and appends after it', async () => {
    const dir = await makeTempDir();
    const log = await LogStore.open(fs, dir, opts, 1);
    log.append(entries(1, 100));
    log.truncateFrom(30);
    log.append(entries(30, 5, 2));
    await log.sync();
    await log.close();
    const again = await LogStore.open(fs, dir, opts, 1);
    expect(again.lastIndex).toBe(34);
    expect(again.term(29)).toBe(1);
    expect(again.term(30)).toBe(2);
    await again.close();
  });

  it('deletes whole segments behind a compaction point and starts fresh after a reset', async () => {
    const dir = await makeTempDir();
    const log = await LogStore.open(fs, dir, opts, 1);
    log.append(entries(1, 100));
    log.compactBefore(60);
    expect(log.firstIndex).toBe(60);
    await log.sync();
    await log.close();
    const again = await LogStore.open(fs, dir, opts, 1);
    expect(again.firstIndex).toBeLessThanOrEqual(60);
    expect(again.firstIndex).toBeGreaterThan(1);
    expect(again.lastIndex).toBe(100);
    again.reset(500);
    again.append(entries(500, 2));
    await again.sync();
    await again.close();
    const third = await LogStore.open(fs, dir, opts, 1);
    expect([third.firstIndex, third.lastIndex]).toEqual([500, 501]);
    await third.close();
  });

  it('truncates a torn tail on open and keeps everything before it', async () => {
    const dir = await makeTempDir();
    const log = await LogStore.open(fs, dir, { sync: true, segmentBytes: 1 << 20 }, 1);
    log.append(entries(1, 10));
    await log.sync();
    await log.close();
    const path = `${dir}/log-00000000000000000001.seg`;
    const fh = await fs.open(path);
    const size = await fh.size();
    await fh.truncate(size - 5);
    await fh.close();
    const again = await LogStore.open(fs, dir, opts, 1);
    expect(again.lastIndex).toBe(9);
    again.append(entries(10, 1, 3));
    await again.sync();
    await again.close();
    const third = await LogStore.open(fs, dir, opts, 1);
    expect(third.term(10)).toBe(3);
    await third.close();
  });

  it('reports a damaged record before the tail as CORRUPT with file and offset', async () => {
    const dir = await makeTempDir();
    const log = await LogStore.open(fs, dir, { sync: true, segmentBytes: 1 << 20 }, 1);
    log.append(entries(1, 10));
    await log.sync();
    await log.close();
    const path = `${dir}/log-00000000000000000001.seg`;
    const bytes = (await fs.readFile(path))!;
    bytes[40] = bytes[40]! ^ 0xff; // inside the second record (records are 35 bytes)
    await fs.remove(path);
    const fh = await fs.open(path);
    await fh.append(bytes);
    await fh.close();
    const err = await LogStore.open(fs, dir, opts, 1).catch((e: unknown) => e);
    expect(isRaftError(err, 'CORRUPT')).toBe(true);
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toContain('offset 35');
  });

  it('never loses a synced entry when the simulated disk crashes at any moment', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const random = seeded(seed);
      const disk = new SimDisk(random);
      const sfs = disk.mount();
      await sfs.mkdir('/n');
      const log = await LogStore.open(sfs, '/n', { sync: true, segmentBytes: 300 }, 1);
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
      const expected = Array.from({ length: acked }, (_, i) => log.entry(i + 1)!);
      disk.crash();
      const again = await LogStore.open(disk.mount(), '/n', opts, 1);
      expect(again.lastIndex).toBeGreaterThanOrEqual(acked);
      for (const e of expected) expect(again.entry(e.index)).toEqual(e);
    }
  });
});
