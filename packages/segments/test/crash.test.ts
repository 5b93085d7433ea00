import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { readFile, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeMessages, type Message } from '@msg/wire';
import { FILE_HEADER_SIZE, RECORD_HEADER_SIZE } from '../src/format.js';
import { RECLAIM_MARK_FILE } from '../src/reclaim-mark.js';
import { isSegmentError, Topic } from '../src/index.js';
import { collect, collectFrames, msg, openTestTopic, plain } from './helpers.js';

const recordSize = (m: Message): number => RECORD_HEADER_SIZE + 22 + m.data.byteLength;

/** A closed topic of two segments: 1 (messages 1..3, one record each, sealed) and 4 (messages 4..5). */
async function twoSegments(): Promise<{ dir: string; messages: Message[] }> {
  const messages = [1, 2, 3, 4, 5].map((i) => msg(i, 12));
  const { topic, dir } = await openTestTopic({ maxSegmentSize: FILE_HEADER_SIZE + 3 * recordSize(messages[0]!) });
  for (const m of messages) await topic.append(m);
  expect(topic.segments().map((s) => s.startIndex)).toEqual([1n, 4n]);
  await topic.close();
  return { dir, messages };
}

describe('crash: a torn last record', () => {
  it('is truncated and reported at every byte offset where the write could have stopped', async () => {
    const { dir, messages } = await twoSegments();
    const path = join(dir, '4');
    const original = await readFile(path);
    const lastStart = original.byteLength - recordSize(messages[4]!);
    for (let cut = lastStart; cut < original.byteLength; cut++) {
      await writeFile(path, original.subarray(0, cut));
      const { topic, events } = await openTestTopic({}, dir);
      // At the record boundary nothing is torn; inside the record the tail is dropped and reported.
      expect(events).toEqual(cut === lastStart ? [] : [{ kind: 'torn-tail', segment: path, offset: lastStart, bytesDropped: cut - lastStart }]);
      expect((await stat(path)).size).toBe(lastStart);
      expect(topic.lastIndex).toBe(4n);
      expect(plain(await collect(topic.reader(0n)))).toEqual(plain(messages.slice(0, 4)));
      // The dropped index can be written again.
      await topic.append(messages[4]!);
      await topic.close();
    }
    expect(await readFile(path)).toEqual(original.subarray(0, original.byteLength));
  }, 60_000);

  it('deletes a last segment left with no whole record, and reports it', async () => {
    const { dir, messages } = await twoSegments();
    const path = join(dir, '4');
    const original = await readFile(path);
    const firstEnd = FILE_HEADER_SIZE + recordSize(messages[3]!);
    for (let cut = 0; cut < firstEnd; cut++) {
      await writeFile(path, original.subarray(0, cut));
      const { topic, events } = await openTestTopic({}, dir);
      expect(events).toEqual([{ kind: 'empty-segment', segment: path, offset: 0, bytesDropped: cut }]);
      expect(existsSync(path)).toBe(false);
      expect(topic.lastIndex).toBe(3n);
      expect(topic.segments().map((s) => s.startIndex)).toEqual([1n]);
      expect(plain(await collect(topic.reader(0n)))).toEqual(plain(messages.slice(0, 3)));
      await topic.close();
    }
  }, 60_000);

  it('treats a zero-filled tail (blocks allocated, data never written) as torn', async () => {
    const { dir, messages } = await twoSegments();
    const path = join(dir, '4');
    const size = (await stat(path)).size;
    await truncate(path, size + 4096);
    const { topic, events } = await openTestTopic({}, dir);
    expect(events).toEqual([{ kind: 'torn-tail', segment: path, offset: size, bytesDropped: 4096 }]);
    expect(plain(await collect(topic.reader(0n)))).toEqual(plain(messages));
    await topic.close();
  }, 60_000);
});

describe('crash: a flipped bit', () => {
  it('anywhere in a record of a sealed segment is CORRUPT_SEGMENT at that record, after the records before it and with no byte of it', async () => {
    const { dir, messages } = await twoSegments();
    const path = join(dir, '1');
    const original = await readFile(path);
    const at = FILE_HEADER_SIZE + recordSize(messages[0]!); // record of message 2
    const before = new Uint8Array(encodeMessages(messages.slice(0, 1)));
    for (let bit = 0; bit < recordSize(messages[1]!) * 8; bit++) {
      const damaged = Buffer.from(original);
      damaged[at + (bit >> 3)]! ^= 1 << (bit & 7);
      await writeFile(path, damaged);
      const { topic } = await openTestTopic({}, dir);
      const seen: Message[] = [];
      const error = await (async () => {
        for await (const m of topic.reader(0n)) seen.push(m);
      })().catch((e: unknown) => e);
      expect(isSegmentError(error, 'CORRUPT_SEGMENT')).toBe(true);
      expect(error).toMatchObject({ segment: path, offset: at });
      expect(plain(seen)).toEqual(plain(messages.slice(0, 1)));
      // The raw frames stop at the same place.
      const chunks: Uint8Array[] = [];
      await expect((async () => {
        for await (const chunk of topic.reader(0n).frames()) chunks.push(chunk);
      })()).rejects.toMatchObject({ code: 'CORRUPT_SEGMENT', offset: at });
      expect(new Uint8Array(Buffer.concat(chunks))).toEqual(before);
      // Reading from beyond the record skips it unread; a read from inside it fails.
      expect(plain(await collect(topic.reader(4n)))).toEqual(plain(messages.slice(3)));
      await expect(collect(topic.reader(2n))).rejects.toMatchObject({ code: 'CORRUPT_SEGMENT', offset: at });
      await topic.close();
    }
  }, 60_000);

  it('anywhere in the last record of the active segment makes open() fail with CORRUPT_SEGMENT and repairs nothing', async () => {
    const { dir, messages } = await twoSegments();
    const path = join(dir, '4');
    const original = await readFile(path);
    const at = original.byteLength - recordSize(messages[4]!);
    for (let bit = 0; bit < recordSize(messages[4]!) * 8; bit++) {
      const damaged = Buffer.from(original);
      damaged[at + (bit >> 3)]! ^= 1 << (bit & 7);
      await writeFile(path, damaged);
      const topic = new Topic(dir, { onRecovery: () => undefined });
      await expect(topic.open()).rejects.toMatchObject({ name: 'SegmentError', code: 'CORRUPT_SEGMENT', segment: path, offset: at });
      expect(await readFile(path)).toEqual(damaged);
    }
    await writeFile(path, original);
    const { topic } = await openTestTopic({}, dir);
    expect(plain(await collect(topic.reader(0n)))).toEqual(plain(messages));
    await topic.close();
  }, 60_000);
});

describe('crash: reclamation cut short', () => {
  it('is finished by open() when the mark was written and some or none of the old segments deleted', async () => {
    for (const deletedBeforeCrash of [0, 1, 2]) {
      const { topic, dir } = await openTestTopic({ maxSegmentSize: 150 });
      for (let i = 1; i <= 6; i++) await topic.append(msg(i, 100));
      await topic.close();
      await writeFile(join(dir, RECLAIM_MARK_FILE), '4\n');
      for (let i = 1; i <= deletedBeforeCrash; i++) await unlink(join(dir, String(i))); // oldest first
      const { topic: again, events } = await openTestTopic({}, dir);
      expect(events.map((e) => [e.kind, e.segment])).toEqual(
        [1, 2, 3].slice(deletedBeforeCrash).map((i) => ['reclaim-finished', join(dir, String(i))]),
      );
      expect(again.firstIndex).toBe(4n);
      await expect(collect(again.reader(1n))).rejects.toMatchObject({ code: 'SEGMENT_RECLAIMED', firstIndex: 4n });
      expect((await collect(again.reader(4n))).map((m) => m.index)).toEqual([4n, 5n, 6n]);
      await again.close();
    }
  }, 60_000);

  it('leaves the topic as it was when the crash came while the mark was being written', async () => {
    const { topic, dir } = await openTestTopic({ maxSegmentSize: 150 });
    for (let i = 1; i <= 4; i++) await topic.append(msg(i, 100));
    await topic.close();
    await writeFile(join(dir, `${RECLAIM_MARK_FILE}.tmp`), '3'); // cut short before its rename
    const { topic: again, events } = await openTestTopic({}, dir);
    expect(events).toEqual([]);
    expect(existsSync(join(dir, `${RECLAIM_MARK_FILE}.tmp`))).toBe(false);
    expect((await collect(again.reader(0n))).map((m) => m.index)).toEqual([1n, 2n, 3n, 4n]);
    await again.close();
  }, 60_000);

  it('never shows a reader in another process a hole: each read is whole from its start or SEGMENT_RECLAIMED', async () => {
    const { topic, dir } = await openTestTopic({ maxSegmentSize: 150 });
    for (let i = 1; i <= 30; i++) await topic.append(msg(i, 100));
    const view = new Topic(dir, { readOnly: true });
    await view.open();
    let reclaimedReads = 0;
    let wholeReads = 0;
    const reading = (async () => {
      for (let round = 0; round < 200 && topic.firstIndex < 30n; round++) {
        try {
          const got = (await collect(view.reader(0n))).map((m) => m.index);
          // Contiguous from wherever it started to the end.
          expect(got.length).toBeGreaterThan(0);
          expect(got).toEqual(got.map((_, k) => got[0]! + BigInt(k)));
          expect(got.at(-1)).toBe(30n);
          wholeReads++;
        } catch (error) {
          expect(error).toMatchObject({ code: 'SEGMENT_RECLAIMED' });
          reclaimedReads++;
        }
      }
    })();
    for (let i = 2n; i <= 30n; i++) {
      await topic.reclaimBefore(i);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await reading;
    expect(wholeReads + reclaimedReads).toBeGreaterThan(0);
    await view.close();
    await topic.close();
    const after = new Topic(dir, { readOnly: true });
    await after.open();
    await expect(collectFrames(after.reader(0n))).rejects.toMatchObject({ code: 'SEGMENT_RECLAIMED', firstIndex: 30n });
    await after.close();
  }, 60_000);
});
