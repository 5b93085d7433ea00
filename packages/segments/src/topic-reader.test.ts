import { describe, expect, it } from '@jest/globals';
import { open } from 'node:fs/promises';
import { encodeMessages, type Message } from '@msg/wire';
import { sleep, waitFor } from '@msg/test-utils';
import { collect, collectFrames, msg, openTestTopic, plain } from '../test/helpers.js';
import { nodeFileSystem, type FileHandle, type FileSystem } from './file-system.js';
import { READ_SIZE } from './segment-cursor.js';
import type { TopicReader } from './topic-reader.js';

/** Starts draining a reader in the background; `seen` fills as messages arrive. */
function drain(reader: TopicReader): { seen: Message[]; done: Promise<void> } {
  const seen: Message[] = [];
  const done = (async () => {
    for await (const message of reader) seen.push(message);
  })();
  return { seen, done };
}

describe('TopicReader', () => {
  it('reads from any index, as messages and as frames of the original encoding', async () => {
    const { topic } = await openTestTopic({ maxSegmentSize: 256 });
    const messages = Array.from({ length: 30 }, (_, i) => msg(i * 3 + 2, i * 7));
    for (const m of messages) await topic.append(m);
    expect(topic.segments().length).toBeGreaterThan(3);
    for (const from of [0n, 2n, 3n, 5n, 44n, 89n, 90n, 1000n]) {
      const rest = messages.filter((m) => m.index >= from);
      expect(plain(await collect(topic.reader(from)))).toEqual(plain(rest));
      expect(await collectFrames(topic.reader(from))).toEqual(new Uint8Array(encodeMessages(rest)));
    }
    await topic.close();
  });

  it('serves overlapping next() calls in order, and closes the reader when the iteration is left early', async () => {
    const { topic } = await openTestTopic({ maxSegmentSize: 300 });
    const messages = Array.from({ length: 40 }, (_, i) => msg(i + 1, 30));
    await topic.appendBatch(messages.slice(0, 20));
    for (const m of messages.slice(20)) await topic.append(m);
    const reader = topic.reader(0n);
    const iterator = reader[Symbol.asyncIterator]();
    const steps = await Promise.all(Array.from({ length: 45 }, () => iterator.next()));
    expect(steps.slice(40).every((step) => step.done === true)).toBe(true);
    expect(plain(steps.slice(0, 40).map((step) => step.value as Message))).toEqual(plain(messages));

    const early = topic.reader(0n);
    for await (const m of early) if (m.index === 3n) break;
    expect(early.closed).toBe(true);
    await topic.close();
  });

  it('ends a non-streaming read at the end as of its first read', async () => {
    const { topic } = await openTestTopic();
    await topic.append(msg(1));
    const reader = topic.reader(0n);
    const iterator = reader[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toMatchObject({ index: 1n });
    await topic.append(msg(2));
    expect((await iterator.next()).done).toBe(true);
    expect(reader.closed).toBe(true);
    await topic.close();
  });

  it('wakes a waiting streaming reader on an append at once, without polling, and follows segment rolls', async () => {
    const { topic } = await openTestTopic({ maxSegmentSize: 200, pollIntervalMs: 60_000 });
    const reader = topic.reader(1n, { streaming: true });
    const { seen, done } = drain(reader);
    for (let i = 1; i <= 20; i++) {
      await sleep(1);
      await topic.append(msg(i, 60));
      // A poll every 60 s cannot explain a wake-up within 5 s.
      await waitFor(() => seen.length === i, { message: `message ${i} delivered` });
    }
    expect(topic.segments().length).toBeGreaterThan(5);
    expect(plain(seen)).toEqual(plain(Array.from({ length: 20 }, (_, i) => msg(i + 1, 60))));
    await reader.close();
    await done;
    await topic.close();
  });

  it('waits in a streaming reader on an empty topic for its first segment', async () => {
    const { topic } = await openTestTopic();
    const { seen, done } = drain(topic.reader(0n, { streaming: true }));
    await sleep(20);
    expect(seen).toEqual([]);
    await topic.append(msg(3));
    await waitFor(() => seen.length === 1);
    await topic.close();
    await done;
    expect(seen[0]!.index).toBe(3n);
  });

  it('shows a streaming reader a message no earlier than its append resolves', async () => {
    const { topic } = await openTestTopic({ sync: 'always' });
    const acknowledged = new Set<bigint>();
    const early: bigint[] = [];
    const reader = topic.reader(0n, { streaming: true });
    const done = (async () => {
      for await (const message of reader) if (!acknowledged.has(message.index)) early.push(message.index);
    })();
    await Promise.all(Array.from({ length: 50 }, (_, i) => topic.append(msg(i + 1)).then(() => acknowledged.add(BigInt(i + 1)))));
    await waitFor(() => reader.nextIndex === 51n);
    await reader.close();
    await done;
    expect(early).toEqual([]);
    await topic.close();
  });

  it('ends a waiting read at once on close(), and a second close does nothing', async () => {
    const { topic } = await openTestTopic();
    await topic.append(msg(1));
    const reader = topic.reader(0n, { streaming: true });
    const { seen, done } = drain(reader);
    await waitFor(() => seen.length === 1);
    const started = Date.now();
    await reader.close();
    await done;
    expect(Date.now() - started).toBeLessThan(1000);
    await reader.close();
    expect(reader.closed).toBe(true);
    await topic.close();
  });

  it('refuses a second iteration with READER_IN_USE and an iteration after close with READER_CLOSED', async () => {
    const { topic } = await openTestTopic();
    await topic.append(msg(1));
    const reader = topic.reader(0n);
    const iterator = reader[Symbol.asyncIterator]();
    expect(() => reader.frames()).toThrow(expect.objectContaining({ code: 'READER_IN_USE' }));
    expect((await iterator.next()).value).toMatchObject({ index: 1n });
    expect((await iterator.next()).done).toBe(true);
    // A drained reader is closed.
    expect(() => reader[Symbol.asyncIterator]()).toThrow(expect.objectContaining({ code: 'READER_CLOSED' }));
    const closed = topic.reader(0n);
    await closed.close();
    expect(() => closed[Symbol.asyncIterator]()).toThrow(expect.objectContaining({ name: 'BrokerError', code: 'READER_CLOSED' }));
    await topic.close();
  });

  it('fails a lagging reader whose next message was reclaimed with SEGMENT_RECLAIMED', async () => {
    const { topic } = await openTestTopic({ maxSegmentSize: 150 });
    for (let i = 1; i <= 6; i++) await topic.append(msg(i, 100));
    const reader = topic.reader(0n);
    const iterator = reader[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toMatchObject({ index: 1n });
    await topic.reclaimBefore(4n);
    await expect(iterator.next()).rejects.toMatchObject({ code: 'SEGMENT_RECLAIMED', firstIndex: 4n });
    await topic.close();
  });

  it('keeps a reader ahead of a reclamation reading without a gap', async () => {
    const { topic } = await openTestTopic({ maxSegmentSize: 150 });
    for (let i = 1; i <= 6; i++) await topic.append(msg(i, 100));
    const reader = topic.reader(5n, { streaming: true });
    const { seen, done } = drain(reader);
    await waitFor(() => seen.length === 2);
    await topic.reclaimBefore(5n);
    await topic.append(msg(7, 100));
    await waitFor(() => seen.length === 3);
    await topic.close();
    await done;
    expect(seen.map((m) => m.index)).toEqual([5n, 6n, 7n]);
  });
});

/** The real file system, its handles also able to read into a buffer the caller gives (`readInto`). */
function readIntoFileSystem(): FileSystem {
  const wrapped = Object.create(nodeFileSystem) as FileSystem;
  wrapped.open = async (path, options) => {
    const handle = await nodeFileSystem.open(path, options);
    const readInto = async (target: Uint8Array, position: number): Promise<number> => {
      const bytes = await handle.read(position, target.byteLength);
      target.set(bytes);
      return bytes.byteLength;
    };
    const plain: FileHandle = {
      size: () => handle.size(),
      read: (position, length) => handle.read(position, length),
      append: (data) => handle.append(data),
      truncate: (length) => handle.truncate(length),
      sync: () => handle.sync(),
      close: () => handle.close(),
    };
    return Object.assign(plain, { readInto });
  };
  return wrapped;
}

/** `count` messages of 1000 bytes from index 1 (about 1 MB per 1000). */
const thousandBytes = (count: number): Message[] => Array.from({ length: count }, (_, i) => msg(i + 1, 1000));

describe('TopicReader handing chunks back', () => {
  it('reads later chunks into the memory of chunks handed back with release(), each chunk exact', async () => {
    const { topic } = await openTestTopic({ fs: readIntoFileSystem(), maxSegmentSize: 1536 * 1024 });
    const messages = thousandBytes(4000);
    for (let i = 0; i < messages.length; i += 500) await topic.appendBatch(messages.slice(i, i + 500));
    expect(topic.segments().length).toBeGreaterThan(1);
    const reader = topic.reader(0n);
    const copies: Buffer[] = [];
    const memory = new Set<ArrayBufferLike>();
    for await (const chunk of reader.frames()) {
      copies.push(Buffer.from(chunk));
      memory.add(chunk.buffer);
      reader.release(chunk);
    }
    expect(Buffer.concat(copies).equals(Buffer.from(encodeMessages(messages)))).toBe(true);
    expect(copies.length).toBeGreaterThan(3);
    expect(memory.size).toBeLessThanOrEqual(2);
    await topic.close();
  });

  it('never reuses a chunk that was not handed back: chunks kept stay intact', async () => {
    const { topic } = await openTestTopic({ fs: readIntoFileSystem() });
    const messages = thousandBytes(3000);
    await topic.appendBatch(messages);
    const reader = topic.reader(0n);
    const kept: Uint8Array[] = [];
    let released: Uint8Array | undefined;
    for await (const chunk of reader.frames()) {
      // Hands back every other chunk: the ones kept must not be overwritten.
      if (released === undefined) {
        released = chunk;
        reader.release(chunk);
      } else {
        kept.push(chunk);
      }
    }
    const expected = Buffer.from(encodeMessages(messages));
    const firstLength = released!.byteLength;
    expect(Buffer.concat(kept).equals(expected.subarray(firstLength))).toBe(true);
    expect(new Set(kept.map((chunk) => chunk.buffer)).size).toBe(kept.length);
    await topic.close();
  });

  it('lends a chunk handed back twice out once, and ignores memory it did not lend', async () => {
    const { topic } = await openTestTopic({ fs: readIntoFileSystem() });
    await topic.appendBatch(thousandBytes(5000));
    const reader = topic.reader(0n);
    const iterator = reader.frames()[Symbol.asyncIterator]();
    const first = (await iterator.next()).value as Uint8Array;
    reader.release(first);
    reader.release(first);
    const foreign = Buffer.alloc(READ_SIZE);
    reader.release(foreign);
    reader.release(new Uint8Array(READ_SIZE));
    const second = (await iterator.next()).value as Uint8Array;
    const third = (await iterator.next()).value as Uint8Array;
    expect(second.buffer).not.toBe(third.buffer);
    expect([second.buffer, third.buffer]).not.toContain(foreign.buffer);
    await reader.close();
    await topic.close();
  });

  it('holds no memory for reuse while it waits for appends', async () => {
    const { topic } = await openTestTopic({ fs: readIntoFileSystem() });
    await topic.appendBatch(thousandBytes(2500));
    const reader = topic.reader(0n, { streaming: true });
    const iterator = reader.frames()[Symbol.asyncIterator]();
    const lent: Uint8Array[] = [];
    while (reader.nextIndex <= 2500n) lent.push((await iterator.next()).value as Uint8Array);
    const pending = iterator.next();
    await sleep(20); // the reader now waits for appends
    for (const chunk of lent) reader.release(chunk);
    await topic.append(msg(2501, 10));
    const next = (await pending).value as Uint8Array;
    expect(next).toEqual(encodeMessages([msg(2501, 10)]));
    expect(lent.map((chunk) => chunk.buffer)).not.toContain(next.buffer);
    await reader.close();
    await topic.close();
  });

  it('checks every record read into reused memory: a corrupt one fails the read, and nothing of it is handed out', async () => {
    const { topic } = await openTestTopic({ fs: readIntoFileSystem() });
    const messages = thousandBytes(3000);
    await topic.appendBatch(messages);
    const [segment] = topic.segments();
    const file = await open(segment!.path, 'r+');
    const at = 2 * READ_SIZE + 5000;
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, at);
    byte[0]! ^= 0x40;
    await file.write(byte, 0, 1, at);
    await file.close();
    const reader = topic.reader(0n);
    const copies: Buffer[] = [];
    const read = (async () => {
      for await (const chunk of reader.frames()) {
        copies.push(Buffer.from(chunk));
        reader.release(chunk);
      }
    })();
    await expect(read).rejects.toMatchObject({ code: 'CORRUPT_SEGMENT', segment: segment!.path });
    const got = Buffer.concat(copies);
    const expected = Buffer.from(encodeMessages(messages));
    expect(got.byteLength).toBeGreaterThan(READ_SIZE);
    expect(got.byteLength).toBeLessThan(at);
    expect(got.equals(expected.subarray(0, got.byteLength))).toBe(true);
    await topic.close();
  });
});
