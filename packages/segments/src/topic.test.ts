import { describe, expect, it, jest } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeFrame, encodeMessage, encodeMessages, MAX_U64, type Message } from '@msg/wire';
import { FakeClock, makeTempDir } from '@msg/test-utils';
import { collect, collectFrames, msg, openTestTopic, plain, reopen } from '../test/helpers.js';
import { FILE_HEADER_SIZE, RECORD_HEADER_SIZE } from './format.js';
import { Topic } from './topic.js';

const frameSize = (m: Message): number => 22 + m.data.byteLength;

describe('Topic lifecycle', () => {
  it('does no I/O in the constructor and creates its folder on open', async () => {
    const dir = join(await makeTempDir('topic-'), 'a', 'b');
    const topic = new Topic(dir);
    expect(existsSync(dir)).toBe(false);
    await topic.open();
    expect(existsSync(dir)).toBe(true);
    expect(topic).toMatchObject({ lastIndex: 0n, firstIndex: 0n, size: 0, readOnly: false });
    expect(topic.segments()).toEqual([]);
    await topic.close();
  });

  it('refuses bad options with INVALID_ARGUMENT', () => {
    for (const options of [
      { maxSegmentSize: 0 },
      { maxSegmentSize: 1.5 },
      { sync: 'sometimes' as 'always' },
      { syncIntervalMs: -1 },
      { pollIntervalMs: 0 },
      { maxDataLength: -1 },
      { maxDataLength: 2 ** 32 },
    ]) {
      expect(() => new Topic('/tmp/x', options)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
    expect(() => new Topic('')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('answers a second open with ALREADY_OPEN, a second close with TOPIC_CLOSED, a close before open with NOT_OPEN', async () => {
    const { topic } = await openTestTopic();
    await expect(topic.open()).rejects.toMatchObject({ code: 'ALREADY_OPEN' });
    await topic.close();
    await expect(topic.close()).rejects.toMatchObject({ code: 'TOPIC_CLOSED' });
    await expect(new Topic(topic.dir).close()).rejects.toMatchObject({ code: 'NOT_OPEN' });
    await expect(topic[Symbol.asyncDispose]()).resolves.toBeUndefined();
  });

  it('refuses use before open and after close', async () => {
    const fresh = new Topic(join(await makeTempDir('topic-'), 't'));
    await expect(fresh.append(msg(1))).rejects.toMatchObject({ code: 'NOT_OPEN' });
    expect(() => fresh.reader(0n)).toThrow(expect.objectContaining({ code: 'NOT_OPEN' }));
    const { topic } = await openTestTopic();
    await topic.close();
    await expect(topic.append(msg(1))).rejects.toMatchObject({ code: 'TOPIC_CLOSED' });
    await expect(topic.appendBatch([msg(1)])).rejects.toMatchObject({ code: 'TOPIC_CLOSED' });
    await expect(topic.reclaimBefore(1n)).rejects.toMatchObject({ code: 'TOPIC_CLOSED' });
    await expect(topic.sync()).rejects.toMatchObject({ code: 'TOPIC_CLOSED' });
    expect(() => topic.reader(0n)).toThrow(expect.objectContaining({ code: 'TOPIC_CLOSED' }));
  });

  it('lets one Topic write a folder at a time (TOPIC_ALREADY_OPEN), and the next once it closes', async () => {
    const { topic, dir } = await openTestTopic();
    const second = new Topic(dir);
    await expect(second.open()).rejects.toMatchObject({ name: 'BrokerError', code: 'TOPIC_ALREADY_OPEN', message: 'topic already open' });
    await expect(second.close()).rejects.toMatchObject({ code: 'TOPIC_CLOSED' });
    await topic.close();
    const third = await openTestTopic({}, dir);
    await third.topic.close();
  });

  it('writes everything queued before close and ends its readers', async () => {
    const { topic } = await openTestTopic({ sync: 'interval' });
    const appends = [topic.append(msg(1)), topic.append(msg(2))];
    const waiting = collect(topic.reader(0n, { streaming: true }));
    await topic.close();
    await Promise.all(appends);
    // The reader ends; it may be ended before it read what the close wrote (a prefix, then).
    expect([[], [1n], [1n, 2n]]).toContainEqual((await waiting).map((m) => m.index));
    const { topic: again } = await openTestTopic({}, topic.dir);
    expect(again.lastIndex).toBe(2n);
    await again.close();
  });
});

describe('Topic.append', () => {
  it('appends, names the first segment by its first index, and reads back', async () => {
    const { topic, dir } = await openTestTopic();
    const messages = [msg(5), msg(6, 0), msg(9, 300)];
    for (const m of messages) await topic.append(m);
    expect(topic.lastIndex).toBe(9n);
    expect(topic.firstIndex).toBe(5n);
    const size = FILE_HEADER_SIZE + messages.reduce((n, m) => n + RECORD_HEADER_SIZE + frameSize(m), 0);
    expect(topic.size).toBe(size);
    expect(topic.segments()).toEqual([{ startIndex: 5n, path: join(dir, '5'), size, lastIndex: 9n }]);
    expect((await stat(join(dir, '5'))).size).toBe(size);
    expect(plain(await collect(topic.reader(0n)))).toEqual(plain(messages));
    await topic.close();
  });

  it('refuses an index not above every index appended before with STALE_WRITE', async () => {
    const { topic } = await openTestTopic();
    await topic.append(msg(5));
    await expect(topic.append(msg(5))).rejects.toMatchObject({ name: 'BrokerError', code: 'STALE_WRITE', message: 'stale write' });
    await expect(topic.append(msg(4))).rejects.toMatchObject({ code: 'STALE_WRITE' });
    // Against appends still in flight too.
    const pending = topic.append(msg(10));
    await expect(topic.append(msg(8))).rejects.toMatchObject({ code: 'STALE_WRITE' });
    await pending;
    expect(topic.lastIndex).toBe(10n);
    await expect(new Topic(topic.dir).open()).rejects.toMatchObject({ code: 'TOPIC_ALREADY_OPEN' });
    await topic.close();
  });

  it('refuses messages that do not fit the wire format or the data cap', async () => {
    const { topic } = await openTestTopic({ maxDataLength: 100 });
    await expect(topic.append({ ...msg(1), type: 70000 })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    await expect(topic.append({ ...msg(1), index: -1n })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    await expect(topic.append(msg(1, 101))).rejects.toMatchObject({ code: 'FRAME_TOO_LARGE' });
    await topic.append(msg(1, 100));
    await topic.close();
  });

  it('shares one write and one fsync among concurrent appenders (group commit)', async () => {
    const { topic, dir } = await openTestTopic();
    const messages = Array.from({ length: 64 }, (_, i) => msg(i + 1, 100));
    await Promise.all(messages.map((m) => topic.append(m)));
    // One record holds all 64 frames: they went out in one write.
    const bytes = await readFile(join(dir, '1'));
    expect(bytes.byteLength).toBe(FILE_HEADER_SIZE + RECORD_HEADER_SIZE + 64 * frameSize(messages[0]!));
    expect(bytes.subarray(FILE_HEADER_SIZE + RECORD_HEADER_SIZE)).toEqual(Buffer.from(encodeMessages(messages)));
    await topic.close();
  });

  it('rolls to a new segment, named by its first index, once the active one reaches maxSegmentSize', async () => {
    const { topic, dir } = await openTestTopic({ maxSegmentSize: 300 });
    const messages = Array.from({ length: 12 }, (_, i) => msg(i * 2 + 1, 50));
    for (const m of messages) await topic.append(m);
    const segments = topic.segments();
    expect(segments.length).toBeGreaterThan(2);
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i]!;
      expect(segment.path).toBe(join(dir, String(segment.startIndex)));
      expect(segment.size).toBe((await stat(segment.path)).size);
      if (i < segments.length - 1) expect(segment.size).toBeGreaterThanOrEqual(300);
      const next = segments[i + 1];
      expect(segment.lastIndex).toBe(next ? next.startIndex - 2n : 23n);
    }
    const { topic: again } = await reopen(topic);
    expect(again.segments()).toEqual(segments);
    expect(plain(await collect(again.reader(0n)))).toEqual(plain(messages));
    await again.close();
  });

  it('keeps acknowledged appends under every sync policy across a reopen', async () => {
    for (const sync of ['always', 'interval', 'never'] as const) {
      const { topic } = await openTestTopic({ sync, syncIntervalMs: 5, maxSegmentSize: 200 });
      const messages = Array.from({ length: 20 }, (_, i) => msg(i + 1, 30));
      await Promise.all(messages.map((m) => topic.append(m)));
      await topic.sync();
      const { topic: again } = await reopen(topic);
      expect(plain(await collect(again.reader(0n)))).toEqual(plain(messages));
      await again.close();
    }
  });

  it('syncs, under sync \'never\', the segments sealed since the last sync() too, skipping reclaimed ones', async () => {
    const { topic, dir } = await openTestTopic({ sync: 'never', maxSegmentSize: 100 });
    for (let i = 1; i <= 6; i++) await topic.append(msg(i, 100));
    expect(await topic.reclaimBefore(3n)).toBe(2);
    await topic.sync();
    await topic.append(msg(7, 100));
    await topic.sync();
    await topic.close();
    const { topic: again } = await openTestTopic({}, dir);
    expect((await collect(again.reader(3n))).map((m) => m.index)).toEqual([3n, 4n, 5n, 6n, 7n]);
    await again.close();
  });

  it('rejects appends with WRITE_FAILED once the disk fails, and reopens cleanly', async () => {
    const { topic, dir } = await openTestTopic({ maxSegmentSize: 100 });
    await topic.append(msg(1, 100));
    await mkdir(join(dir, '2')); // the next segment cannot be created
    await expect(topic.append(msg(2))).rejects.toMatchObject({ code: 'WRITE_FAILED' });
    await expect(topic.append(msg(3))).rejects.toMatchObject({ code: 'WRITE_FAILED' });
    await expect(topic.sync()).rejects.toMatchObject({ code: 'WRITE_FAILED' });
    expect(topic.lastIndex).toBe(1n);
    await topic.close();
    const { topic: again } = await openTestTopic({}, dir);
    expect(again.lastIndex).toBe(1n);
    await again.append(msg(3));
    expect(plain(await collect(again.reader(0n)))).toEqual(plain([msg(1, 100), msg(3)]));
    await again.close();
  });
});

describe('Topic.appendBatch', () => {
  it('writes a batch at once and reads it back in order', async () => {
    const { topic } = await openTestTopic({ maxSegmentSize: 1000 });
    const first = Array.from({ length: 50 }, (_, i) => msg(i + 1, 40));
    const second = Array.from({ length: 50 }, (_, i) => msg(i + 100, 40));
    await Promise.all([topic.appendBatch(first), topic.appendBatch(second), topic.appendBatch([])]);
    expect(topic.lastIndex).toBe(149n);
    expect(plain(await collect(topic.reader(0n)))).toEqual(plain([...first, ...second]));
    await topic.close();
  });

  it('appends all of a batch or, on a bad message, none', async () => {
    const { topic } = await openTestTopic();
    await topic.append(msg(10));
    await expect(topic.appendBatch([msg(11), msg(13), msg(12)])).rejects.toMatchObject({ code: 'STALE_WRITE' });
    await expect(topic.appendBatch([msg(10), msg(11)])).rejects.toMatchObject({ code: 'STALE_WRITE' });
    await expect(topic.appendBatch([msg(11), { ...msg(12), type: -1 }])).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    await topic.appendBatch([msg(11), msg(12)]);
    expect((await collect(topic.reader(0n))).map((m) => m.index)).toEqual([10n, 11n, 12n]);
    await topic.close();
  });
});

describe('Topic.appendFrames', () => {
  it('stores each frame byte for byte with its index field set, in the same segment bytes appendBatch writes', async () => {
    const messages = Array.from({ length: 300 }, (_, i) => msg(i * 2 + 5, (i * 37) % 700, i % 3));
    const byFrames = await openTestTopic({ maxSegmentSize: 20_000 });
    const byMessages = await openTestTopic({ maxSegmentSize: 20_000 });
    // Frames as posted: index field 0 (or anything: it is replaced).
    const frames = messages.map((m) => ({ index: m.index, frame: encodeFrame(m, 77n) }));
    await byFrames.topic.appendFrames(frames.slice(0, 100));
    await byFrames.topic.appendFrames(frames.slice(100));
    await byMessages.topic.appendBatch(messages.slice(0, 100));
    await byMessages.topic.appendBatch(messages.slice(100));
    const stored = await collectFrames(byFrames.topic.reader(0n));
    expect(Buffer.from(stored).equals(Buffer.from(encodeMessages(messages)))).toBe(true);
    const files = byFrames.topic.segments();
    expect(files.length).toBeGreaterThan(1);
    expect(byMessages.topic.segments().map((s) => [s.startIndex, s.size])).toEqual(files.map((s) => [s.startIndex, s.size]));
    for (const [i, file] of files.entries()) {
      // Past the file header (whose creation time differs): the records.
      const [a, b] = [await readFile(file.path), await readFile(byMessages.topic.segments()[i]!.path)];
      expect(a.subarray(FILE_HEADER_SIZE).equals(b.subarray(FILE_HEADER_SIZE))).toBe(true);
    }
    // The frames handed in are not modified.
    expect(frames.every(({ frame }, i) => Buffer.from(frame).equals(Buffer.from(encodeMessage({ ...messages[i]!, index: 77n }))))).toBe(true);
    await byFrames.topic.close();
    await byMessages.topic.close();
  });

  it('appends all of the frames or, on a stale index, an index beyond u64 or data over the cap, none', async () => {
    const { topic } = await openTestTopic({ maxDataLength: 10 });
    const frame = (index: bigint, size = 1) => ({ index, frame: encodeFrame({ type: 1, topicID: 1n, data: new Uint8Array(size) }) });
    await topic.appendFrames([frame(10n)]);
    await expect(topic.appendFrames([frame(11n), frame(13n), frame(12n)])).rejects.toMatchObject({ code: 'STALE_WRITE' });
    await expect(topic.appendFrames([frame(10n)])).rejects.toMatchObject({ code: 'STALE_WRITE' });
    await expect(topic.appendFrames([frame(11n), frame(12n, 11)])).rejects.toMatchObject({ code: 'FRAME_TOO_LARGE' });
    await expect(topic.appendFrames([frame(11n), frame(MAX_U64 + 1n)])).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    await topic.appendFrames([]);
    await topic.appendFrames([frame(11n), frame(12n, 10)]);
    expect((await collect(topic.reader(0n))).map((m) => m.index)).toEqual([10n, 11n, 12n]);
    await topic.close();
  });
});

describe('Topic.reclaimBefore', () => {
  async function rolled(): Promise<Awaited<ReturnType<typeof openTestTopic>>> {
    const opened = await openTestTopic({ maxSegmentSize: 150 });
    for (let i = 1; i <= 10; i++) await opened.topic.append(msg(i, 100));
    return opened;
  }

  it('deletes whole segments below an index, oldest first, never the active one', async () => {
    const { topic } = await rolled();
    const before = topic.segments();
    expect(before.map((s) => s.startIndex)).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n]);
    expect(await topic.reclaimBefore(1n)).toBe(0);
    expect(await topic.reclaimBefore(4n)).toBe(3);
    expect(topic.firstIndex).toBe(4n);
    for (const gone of before.slice(0, 3)) expect(existsSync(gone.path)).toBe(false);
    expect(await topic.reclaimBefore(1000n)).toBe(6);
    expect(topic.segments().map((s) => s.startIndex)).toEqual([10n]);
    expect(topic.size).toBe(before.at(-1)!.size);
    await topic.close();
  });

  it('answers reads below the first retained index with SEGMENT_RECLAIMED and its index, also after a reopen', async () => {
    const { topic } = await rolled();
    await expect(collect(topic.reader(0n))).resolves.toHaveLength(10);
    await topic.reclaimBefore(6n);
    await expect(collect(topic.reader(5n))).rejects.toMatchObject({ name: 'BrokerError', code: 'SEGMENT_RECLAIMED', firstIndex: 6n, message: 'segment reclaimed' });
    expect((await collect(topic.reader(6n))).map((m) => m.index)).toEqual([6n, 7n, 8n, 9n, 10n]);
    const { topic: again } = await reopen(topic);
    await expect(collect(again.reader(0n))).rejects.toMatchObject({ code: 'SEGMENT_RECLAIMED', firstIndex: 6n });
    expect(again.firstIndex).toBe(6n);
    await again.close();
  });

  it('treats indexes below the reclaim mark as stale even when no segment is left', async () => {
    const { topic, dir } = await rolled();
    await topic.reclaimBefore(100n);
    await topic.close();
    // Only the active segment 10 is left; remove it by hand as a torn creation would.
    await truncate(join(dir, '10'), FILE_HEADER_SIZE);
    const { topic: again, events } = await openTestTopic({}, dir);
    expect(events.map((e) => e.kind)).toEqual(['empty-segment']);
    expect(again.lastIndex).toBe(0n);
    await expect(again.append(msg(9))).rejects.toMatchObject({ code: 'STALE_WRITE' });
    await again.append(msg(10));
    expect((await collect(again.reader(10n))).map((m) => m.index)).toEqual([10n]);
    await again.close();
  });
});

describe('Topic.enforceRetention', () => {
  it('deletes the oldest segments while the topic is larger than maxBytes', async () => {
    const { topic } = await openTestTopic({ maxSegmentSize: 150 });
    for (let i = 1; i <= 10; i++) await topic.append(msg(i, 100));
    const each = topic.segments()[0]!.size;
    expect(await topic.enforceRetention({ maxBytes: each * 4 })).toBe(6);
    expect(topic.firstIndex).toBe(7n);
    expect(topic.size).toBeLessThanOrEqual(each * 4);
    expect(await topic.enforceRetention({ maxBytes: 0 })).toBe(3);
    expect(topic.segments()).toHaveLength(1);
    expect(await topic.enforceRetention({})).toBe(0);
    await expect(topic.enforceRetention({ maxBytes: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(topic.enforceRetention({ maxAgeMs: Number.NaN })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await topic.close();
  });

  it('deletes segments sealed longer ago than maxAgeMs by the topic\'s clock', async () => {
    const clock = new FakeClock(1_000_000);
    const { topic, dir } = await openTestTopic({ maxSegmentSize: 150, clock });
    for (let i = 1; i <= 6; i++) {
      await topic.append(msg(i, 100));
      clock.advance(1000); // segment i is sealed at 1_000_000 + 1000 * i
    }
    expect(await topic.enforceRetention({ maxAgeMs: 10_000 })).toBe(0);
    clock.advance(2500); // now = 1_008_500: segments sealed at 1_001_000..1_003_000 are > 4500 ms old
    expect(await topic.enforceRetention({ maxAgeMs: 4500 })).toBe(3);
    expect(topic.firstIndex).toBe(4n);
    // The creation times are in the files: a reopened topic ages them the same way.
    const { topic: again } = await reopen(topic, { clock });
    clock.advance(1000);
    expect(await again.enforceRetention({ maxAgeMs: 4500 })).toBe(1);
    expect(await again.enforceRetention({ maxAgeMs: 0 })).toBe(1);
    expect(again.segments().map((s) => s.startIndex)).toEqual([6n]);
    await again.close();
    expect(existsSync(join(dir, '5'))).toBe(false);
  });

  it('ages the original\'s segments by their modification time', async () => {
    const dir = join(await makeTempDir('topic-'), 't');
    await mkdir(dir);
    await writeFile(join(dir, '1'), encodeMessages([msg(1), msg(2)]));
    await writeFile(join(dir, '3'), encodeMessages([msg(3)]));
    await writeFile(join(dir, '4'), encodeMessages([msg(4)]));
    await utimes(join(dir, '1'), 1000, 1000); // seconds
    await utimes(join(dir, '3'), 3000, 3000);
    const clock = new FakeClock(2_500_000);
    const { topic } = await openTestTopic({ clock }, dir);
    expect(await topic.enforceRetention({ maxAgeMs: 1_000_000 })).toBe(1);
    expect(topic.firstIndex).toBe(3n);
    expect(await topic.reclaimBefore(4n)).toBe(1);
    expect(topic.segments().map((s) => s.lastIndex)).toEqual([4n]);
    await topic.close();
  });
});

describe('Topic read-only', () => {
  it('refuses writes with READ_ONLY and reads a missing folder as empty', async () => {
    const dir = join(await makeTempDir('topic-'), 'none');
    const topic = new Topic(dir, { readOnly: true });
    await topic.open();
    expect(topic.readOnly).toBe(true);
    await expect(topic.append(msg(1))).rejects.toMatchObject({ code: 'READ_ONLY' });
    await expect(topic.appendBatch([msg(1)])).rejects.toMatchObject({ code: 'READ_ONLY' });
    await expect(topic.reclaimBefore(5n)).rejects.toMatchObject({ code: 'READ_ONLY' });
    await expect(topic.enforceRetention({ maxBytes: 0 })).rejects.toMatchObject({ code: 'READ_ONLY' });
    expect(await collect(topic.reader(0n))).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    await topic.close();
  });

  it('opens beside the writer without taking its lock and sees what it has written', async () => {
    const { topic, dir } = await openTestTopic({ maxSegmentSize: 200 });
    for (let i = 1; i <= 5; i++) await topic.append(msg(i, 80));
    const view = new Topic(dir, { readOnly: true });
    await view.open();
    expect(view.lastIndex).toBe(5n);
    expect(view.segments()).toEqual(topic.segments());
    await topic.append(msg(6, 80));
    expect((await collect(view.reader(4n))).map((m) => m.index)).toEqual([4n, 5n, 6n]);
    expect(view.lastIndex).toBe(6n);
    await view.close();
    await topic.close();
  });
});

describe('Topic recovery reports', () => {
  it('emits a process warning when no onRecovery is given', async () => {
    const { topic, dir } = await openTestTopic();
    await topic.append(msg(1));
    await topic.append(msg(2));
    await topic.close();
    await truncate(join(dir, '1'), (await stat(join(dir, '1'))).size - 1);
    // Jest gives each test file its own `process` object, so the warning is
    // observed by spying on the emitWarning the module calls.
    const emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const plainTopic = new Topic(dir);
      await plainTopic.open();
      expect(plainTopic.lastIndex).toBe(1n);
      await plainTopic.close();
      expect(emitWarning).toHaveBeenCalledTimes(1);
      expect(emitWarning.mock.calls[0]![1]).toEqual({ code: 'MSG_SEGMENTS_RECOVERY' });
      expect(String(emitWarning.mock.calls[0]![0])).toContain('torn-tail');
    } finally {
      emitWarning.mockRestore();
    }
  });
});
