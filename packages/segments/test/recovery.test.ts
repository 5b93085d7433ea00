import { describe, expect, it } from '@jest/globals';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { isSegmentError, Topic, type RecoveryEvent } from '../src/index.js';
import { collect, msg, openTestTopic } from './helpers.js';

/** The durable point the tests hand to open(): where the topic stood after `through`. */
interface DurablePoint {
  lastIndex: bigint;
  segment?: string;
  size: number;
}

/**
 * A closed one-segment topic: messages 1..5 (the durable part, `durable`
 * says where it ends), then messages 6..12 of 300 bytes each (an unsynced
 * tail of about 2.3 KiB). Data bytes are never zero, so no sector of the file
 * is all zero.
 */
async function topicWithTail(): Promise<{ dir: string; path: string; durable: DurablePoint; size: number }> {
  const { topic, dir } = await openTestTopic();
  const nonZero = (i: number, size: number): ReturnType<typeof msg> => {
    const m = msg(i, size);
    for (let k = 0; k < m.data.byteLength; k++) m.data[k] = (m.data[k]! % 255) + 1;
    return m;
  };
  for (let i = 1; i <= 5; i++) await topic.append(nonZero(i, 300));
  const [segment] = topic.segments();
  const durable: DurablePoint = { lastIndex: 5n, segment: basename(segment!.path), size: segment!.size };
  for (let i = 6; i <= 12; i++) await topic.append(nonZero(i, 300));
  const path = topic.segments()[0]!.path;
  await topic.close();
  return { dir, path, durable, size: (await stat(path)).size };
}

/** Zeroes the 512-byte aligned sector at `sectorOffset` (a hole a crash can leave) and keeps the rest. */
async function punchHole(path: string, sectorOffset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes.fill(0, sectorOffset, sectorOffset + 512);
  await writeFile(path, bytes);
}

async function openError(dir: string, options: { durable?: DurablePoint } = {}): Promise<unknown> {
  const topic = new Topic(dir, { onRecovery: () => undefined });
  try {
    await topic.open(options);
  } catch (error) {
    return error;
  }
  await topic.close();
  return undefined;
}

describe('Topic.open recovery rule', () => {
  it('recovers a 512-byte zero hole followed by valid-looking data beyond the durable point, by truncation, with an event', async () => {
    const { dir, path, durable, size } = await topicWithTail();
    const hole = Math.ceil((durable.size + 600) / 512) * 512; // inside the tail, data after it
    expect(hole + 512).toBeLessThan(size);
    await punchHole(path, hole);

    const events: RecoveryEvent[] = [];
    const topic = new Topic(dir, { onRecovery: (e) => events.push(e) });
    await topic.open({ durable });
    expect(events).toHaveLength(1);
    const [event] = events;
    expect(event).toMatchObject({ kind: 'torn-tail', segment: path });
    expect(event!.offset).toBeGreaterThanOrEqual(durable.size);
    expect(event!.offset).toBeLessThanOrEqual(hole);
    expect(event!.bytesDropped).toBe(size - event!.offset);
    expect((await stat(path)).size).toBe(event!.offset);
    expect(topic.lastIndex).toBeGreaterThanOrEqual(5n);
    expect(topic.lastIndex).toBeLessThan(12n);
    const indexes = (await collect(topic.reader(0n))).map((m) => m.index);
    expect(indexes).toEqual(Array.from({ length: Number(topic.lastIndex) }, (_, k) => BigInt(k + 1)));
    // The dropped indexes can be written again.
    await topic.append(msg(topic.lastIndex + 1n, 10));
    await topic.close();
  });

  it('keeps the same hole CORRUPT_SEGMENT when it lies in the durable region', async () => {
    const { dir, path, durable } = await topicWithTail();
    const hole = 512; // before durable.size (5 records of ~350 bytes)
    expect(hole + 512).toBeLessThanOrEqual(durable.size);
    await punchHole(path, hole);
    const before = await readFile(path);
    const error = await openError(dir, { durable });
    expect(isSegmentError(error, 'CORRUPT_SEGMENT')).toBe(true);
    expect(error).toMatchObject({ segment: path });
    expect((error as { offset: number }).offset).toBeLessThanOrEqual(hole);
    expect(await readFile(path)).toEqual(before); // nothing repaired
  });

  it('keeps a hole followed by data CORRUPT_SEGMENT when the owner gives no durable point', async () => {
    const { dir, path, durable, size } = await topicWithTail();
    const hole = Math.ceil((durable.size + 600) / 512) * 512;
    expect(hole + 512).toBeLessThan(size);
    await punchHole(path, hole);
    expect(isSegmentError(await openError(dir), 'CORRUPT_SEGMENT')).toBe(true);
  });

  it('reports a flipped bit anywhere in the segment as CORRUPT_SEGMENT, with or without a durable point', async () => {
    const { dir, path, durable, size } = await topicWithTail();
    const original = await readFile(path);
    for (let at = 0; at < size; at += 23) {
      const damaged = Buffer.from(original);
      damaged[at]! ^= 1 << (at % 8);
      await writeFile(path, damaged);
      for (const options of [{ durable }, {}]) {
        const error = await openError(dir, options);
        if (!isSegmentError(error, 'CORRUPT_SEGMENT')) throw new Error(`a flipped bit at byte ${at} (${JSON.stringify(Object.keys(options))}) was not CORRUPT_SEGMENT: ${String(error)}`);
      }
    }
    await writeFile(path, original);
    expect(await openError(dir, { durable })).toBeUndefined();
  }, 60_000);
});
