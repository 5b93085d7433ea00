import { afterEach, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { encodeMessages, isBrokerError } from '@msg/wire';
import { nodeFileSystem, Topic, type FileHandle, type FileSystem } from '@msg/segments';
import { makeTempDir } from '@msg/test-utils';
import { BrokerTopicReader, type ReaderSource } from './broker-topic-reader.js';

const opened: Topic[] = [];

afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((t) => t.close()));
});

async function openTopic(options: { maxSegmentSize?: number; fs?: FileSystem } = {}): Promise<Topic> {
  const topic = new Topic(join(await makeTempDir('msg-broker-reader-'), '7'), { sync: 'never', ...options });
  await topic.open();
  opened.push(topic);
  return topic;
}

function message(index: bigint, text: string): { type: number; topicID: bigint; index: bigint; data: Uint8Array } {
  return { type: 1, topicID: 7n, index, data: new TextEncoder().encode(text) };
}

/** A source whose topic appears when `create()` is called; counts waits and cancellations. */
function lateSource(fromIndex: bigint, streaming: boolean): ReaderSource & { topic?: Topic; create(topic: Topic): void; waits: number; cancels: number } {
  let wake: (() => void) | undefined;
  const source = {
    topic: undefined as Topic | undefined,
    waits: 0,
    cancels: 0,
    open: () => source.topic?.reader(fromIndex, { streaming }),
    created: () => {
      source.waits++;
      const promise = new Promise<void>((resolve) => {
        wake = resolve;
      });
      return {
        promise,
        cancel: () => {
          source.cancels++;
          wake?.();
        },
      };
    },
    create: (topic: Topic) => {
      source.topic = topic;
      wake?.();
    },
  };
  return source;
}

async function texts(reader: BrokerTopicReader, count = Number.POSITIVE_INFINITY): Promise<[bigint, string][]> {
  const out: [bigint, string][] = [];
  for await (const m of reader.messages()) {
    out.push([m.index, Buffer.from(m.data).toString()]);
    if (out.length >= count) break;
  }
  return out;
}

describe('BrokerTopicReader', () => {
  it('is empty, without waiting, when the topic does not exist and it is not streaming', async () => {
    const source = lateSource(0n, false);
    const reader = new BrokerTopicReader(source, false);
    expect(await texts(reader)).toEqual([]);
    expect(source.waits).toBe(0);
    expect(reader.attached).toBe(false);
  });

  it('decodes every frame of chunks holding many, from the first index at or above the start', async () => {
    const topic = await openTopic();
    await topic.appendBatch([message(3n, 'a'), message(5n, 'bb'), message(9n, 'ccc')]);
    const reader = new BrokerTopicReader({ open: () => topic.reader(4n), created: () => ({ promise: Promise.resolve(), cancel: () => undefined }) }, false);
    expect(await texts(reader)).toEqual([
      [5n, 'bb'],
      [9n, 'ccc'],
    ]);
    expect(reader.attached).toBe(true);
  });

  it('waits, when streaming, for the topic to be created and then reads it', async () => {
    const source = lateSource(0n, true);
    const reader = new BrokerTopicReader(source, true);
    const read = texts(reader, 2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(source.waits).toBe(1);
    const topic = await openTopic();
    source.create(topic);
    await topic.append(message(1n, 'first'));
    await topic.append(message(2n, 'second'));
    expect(await read).toEqual([
      [1n, 'first'],
      [2n, 'second'],
    ]);
    await reader.close();
  });

  it('ends at once when closed while waiting for the topic, cancelling the wait', async () => {
    const source = lateSource(0n, true);
    const reader = new BrokerTopicReader(source, true);
    const read = texts(reader);
    await new Promise((resolve) => setImmediate(resolve));
    await reader.close();
    expect(await read).toEqual([]);
    expect(source.cancels).toBe(1);
    await reader.close(); // a second close does nothing
    expect(source.cancels).toBe(1);
  });

  it('ends a streaming read of an existing topic when closed', async () => {
    const topic = await openTopic();
    await topic.append(message(1n, 'only'));
    const reader = new BrokerTopicReader({ open: () => topic.reader(0n, { streaming: true }), created: () => ({ promise: Promise.resolve(), cancel: () => undefined }) }, true);
    const seen: bigint[] = [];
    const read = (async () => {
      for await (const m of reader.messages()) {
        seen.push(m.index);
        if (seen.length === 1) setImmediate(() => void reader.close());
      }
    })();
    await read;
    expect(seen).toEqual([1n]);
  });

  it('fails prime() with SEGMENT_RECLAIMED below the first retained index, and keeps the primed chunk otherwise', async () => {
    const topic = await openTopic({ maxSegmentSize: 64 });
    for (let i = 1n; i <= 6n; i++) await topic.append(message(i, `message-${i}`));
    expect(topic.segments().length).toBeGreaterThan(2);
    await topic.reclaimBefore(4n);
    const first = topic.firstIndex;
    expect(first).toBeGreaterThan(1n);
    const source = (from: bigint): ReaderSource => ({ open: () => topic.reader(from), created: () => ({ promise: Promise.resolve(), cancel: () => undefined }) });

    const below = new BrokerTopicReader(source(1n), false);
    let error: unknown;
    try {
      await below.prime();
    } catch (caught) {
      error = caught;
    }
    expect(isBrokerError(error, 'SEGMENT_RECLAIMED')).toBe(true);
    expect((error as { firstIndex?: bigint }).firstIndex).toBe(first);
    await below.close();

    const at = new BrokerTopicReader(source(first), false);
    await at.prime();
    expect((await texts(at)).map(([i]) => i)).toEqual(Array.from({ length: Number(7n - first) }, (_, k) => first + BigInt(k)));
  });

  it('decodes u64 topic ids and indexes above 2^53 and every data length', async () => {
    const topicID = 0xfedc_ba98_7654_3210n;
    const topic = await openTopic();
    const big = 2n ** 60n + 5n;
    const messages = [
      { type: 0xffff, topicID, index: big, data: new Uint8Array(0) },
      { type: 2, topicID, index: big + 1n, data: new Uint8Array(70_000).fill(9) },
    ];
    await topic.appendBatch(messages);
    const reader = new BrokerTopicReader({ open: () => topic.reader(0n), created: () => ({ promise: Promise.resolve(), cancel: () => undefined }) }, false);
    const seen = [];
    for await (const m of reader.messages()) seen.push({ ...m, data: Buffer.from(m.data) });
    expect(seen).toEqual(messages.map((m) => ({ ...m, data: Buffer.from(m.data) })));
  });

  it('hands a chunk back to its topic reader, whose later chunks are then read into that memory', async () => {
    const topic = await openTopic({ fs: readIntoFileSystem() });
    const messages = Array.from({ length: 3000 }, (_, i) => message(BigInt(i + 1), 'x'.repeat(1000)));
    await topic.appendBatch(messages);
    const reader = new BrokerTopicReader({ open: () => topic.reader(0n), created: () => ({ promise: Promise.resolve(), cancel: () => undefined }) }, false);
    reader.release(new Uint8Array(8)); // before it is attached: nothing to hand back to
    const memory = new Set<ArrayBufferLike>();
    const copies: Buffer[] = [];
    for await (const chunk of reader) {
      copies.push(Buffer.from(chunk));
      memory.add(chunk.buffer);
      reader.release(chunk);
    }
    expect(copies.length).toBeGreaterThan(2);
    expect(memory.size).toBeLessThan(copies.length);
    expect(Buffer.concat(copies).equals(Buffer.from(encodeMessages(messages)))).toBe(true);
    reader.release(new Uint8Array(8)); // after close: ignored
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
