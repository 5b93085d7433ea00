import { describe, expect, it } from '@jest/globals';
import { cp, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeMessage, encodeMessages, MESSAGE_HEADER_SIZE, type Message } from '@msg/wire';
import { makeTempDir } from '@msg/test-utils';
import { listSegments, listTopicIDs, NodeFileSystem, readSegmentMaxIndex, Topic, type FileSystem } from '../src/index.js';
import { collect, collectFrames, msg, openTestTopic, plain, VECTORS_DIR } from './helpers.js';

const BROKER_DIR = join(VECTORS_DIR, 'broker-dir');

/** The messages of a topic folder of the original, decoded independently of the package. */
async function originalMessages(topicDir: string): Promise<Message[]> {
  const names = (await readdir(topicDir)).sort((a, b) => Number(a) - Number(b));
  const out: Message[] = [];
  for (const name of names) {
    const bytes = new Uint8Array(await readFile(join(topicDir, name)));
    for (let at = 0; at < bytes.byteLength; ) {
      const end = at + MESSAGE_HEADER_SIZE + new DataView(bytes.buffer, bytes.byteOffset).getUint32(at + 18);
      out.push(decodeMessage(bytes.subarray(at, end)));
      at = end;
    }
  }
  return out;
}

describe('segments of the original broker', () => {
  it('reads them through an injected file system only (sealed segments are scanned through it too)', async () => {
    // Paths under /virtual exist only in this file system: a read that bypasses it fails with ENOENT.
    const real = new NodeFileSystem();
    const map = (path: string): string => path.replace(/^\/virtual/, BROKER_DIR);
    const fs: FileSystem = {
      mkdir: (d) => real.mkdir(map(d)),
      list: (d) => real.list(map(d)),
      readFile: (p) => real.readFile(map(p)),
      open: (p, o) => real.open(map(p), o),
      rename: (a, b) => real.rename(map(a), map(b)),
      remove: (p) => real.remove(map(p)),
      syncDir: (d) => real.syncDir(map(d)),
      stat: (p) => real.stat(map(p)),
      removeTree: (p) => real.removeTree(map(p)),
    };
    const expected = await originalMessages(join(BROKER_DIR, '20'));
    const topic = new Topic('/virtual/20', { readOnly: true, fs });
    await topic.open();
    expect(plain(await collect(topic.reader(0n)))).toEqual(plain(expected));
    await topic.close();
  });

  it('lists its topics and segments and reads their max indexes', async () => {
    expect(await listTopicIDs(BROKER_DIR)).toEqual([20n, 21n, 22n]);
    let highest = 0n;
    for (const id of [20n, 21n, 22n]) {
      const segments = await listSegments(join(BROKER_DIR, String(id)));
      expect(segments).toHaveLength(3);
      const messages = await originalMessages(join(BROKER_DIR, String(id)));
      expect(messages).toHaveLength(10);
      for (const segment of segments) {
        expect(segment.size).toBe((await stat(segment.path)).size);
        expect(await readSegmentMaxIndex(segment.path)).toBe(segment.lastIndex);
        expect(messages.some((m) => m.index === segment.startIndex)).toBe(true);
      }
      expect(segments.at(-1)!.lastIndex).toBe(messages.at(-1)!.index);
      if (segments.at(-1)!.lastIndex > highest) highest = segments.at(-1)!.lastIndex;
    }
    expect(highest).toBe(31n);
  });

  it('opens a topic read-only in place and reads every message from any index, as messages and as frames', async () => {
    for (const id of ['20', '21', '22']) {
      const expected = await originalMessages(join(BROKER_DIR, id));
      const topic = new Topic(join(BROKER_DIR, id), { readOnly: true });
      await topic.open();
      expect(topic.lastIndex).toBe(expected.at(-1)!.index);
      expect(topic.firstIndex).toBe(expected[0]!.index);
      expect(plain(await collect(topic.reader(0n)))).toEqual(plain(expected));
      for (const from of expected.map((m) => m.index + 1n)) {
        const rest = expected.filter((m) => m.index >= from);
        expect(plain(await collect(topic.reader(from)))).toEqual(plain(rest));
        expect(await collectFrames(topic.reader(from))).toEqual(encodeMessages(rest));
      }
      await topic.close();
    }
  });

  it('opens a copy for writing and appends after the original\'s messages in a segment of ours', async () => {
    const dir = join(await makeTempDir('legacy-'), '20');
    await cp(join(BROKER_DIR, '20'), dir, { recursive: true });
    const expected = await originalMessages(dir);
    const { topic, events } = await openTestTopic({}, dir);
    expect(events).toEqual([]);
    expect(topic.lastIndex).toBe(expected.at(-1)!.index);
    await expect(topic.append({ ...msg(expected.at(-1)!.index), topicID: 20n })).rejects.toMatchObject({ code: 'STALE_WRITE' });
    const added = { ...msg(40), topicID: 20n };
    await topic.append(added);
    const segments = topic.segments();
    expect(segments).toHaveLength(4);
    expect(segments.at(-1)!.startIndex).toBe(40n);
    expect(plain(await collect(topic.reader(0n)))).toEqual(plain([...expected, added]));
    await topic.close();
    const again = await openTestTopic({}, dir);
    expect(plain(await collect(again.topic.reader(expected.at(-2)!.index)))).toEqual(plain([...expected.slice(-2), added]));
    await again.topic.close();
  });

  it('truncates a torn last frame of the original, which the original could not open', async () => {
    const dir = join(await makeTempDir('legacy-'), '21');
    await cp(join(BROKER_DIR, '21'), dir, { recursive: true });
    const expected = await originalMessages(dir);
    const last = (await listSegments(dir)).at(-1)!;
    const { truncate } = await import('node:fs/promises');
    await truncate(last.path, last.size - 3);
    const { topic, events } = await openTestTopic({}, dir);
    const lastFrame = MESSAGE_HEADER_SIZE + expected.at(-1)!.data.byteLength;
    expect(events).toEqual([{ kind: 'torn-tail', segment: last.path, offset: last.size - lastFrame, bytesDropped: lastFrame - 3 }]);
    expect(plain(await collect(topic.reader(0n)))).toEqual(plain(expected.slice(0, -1)));
    await topic.close();
  });
});
