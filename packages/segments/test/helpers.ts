import { join } from 'node:path';
import type { Message } from '@msg/wire';
import { makeTempDir } from '@msg/test-utils';
import { encodeFileHeader, encodeRecords } from '../src/format.js';
import { Topic, type RecoveryEvent, type TopicOptions, type TopicReader } from '../src/index.js';

/** The folder of vectors written by the original broker (fixtures/original at the repository root). */
export const VECTORS_DIR = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'original');

/** A message of topic 7 at `index` whose data is `size` bytes derived from the index. */
export function msg(index: bigint | number, size = 10, type = 1): Message {
  const i = BigInt(index);
  const seed = Number(i % 251n) * 31;
  const data = new Uint8Array(size);
  for (let k = 0; k < size; k++) data[k] = (seed + k) & 0xff;
  return { type, topicID: 7n, index: i, data };
}

/** Plain comparable form of messages. */
export function plain(messages: readonly Message[]): { type: number; topicID: bigint; index: bigint; data: string }[] {
  return messages.map((m) => ({ type: m.type, topicID: m.topicID, index: m.index, data: Buffer.from(m.data).toString('hex') }));
}

/** Drains a non-streaming reader into an array. */
export async function collect(reader: TopicReader): Promise<Message[]> {
  const out: Message[] = [];
  for await (const message of reader) out.push(message);
  return out;
}

/** Drains a reader's frames into one buffer. */
export async function collectFrames(reader: TopicReader): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of reader.frames()) chunks.push(chunk);
  return new Uint8Array(Buffer.concat(chunks));
}

/** A topic opened in a fresh temp dir (removed after the test), with recovery events collected. */
export async function openTestTopic(
  options: TopicOptions = {},
  dir?: string,
): Promise<{ topic: Topic; dir: string; events: RecoveryEvent[] }> {
  const folder = dir ?? join(await makeTempDir('segments-'), 'topic');
  const events: RecoveryEvent[] = [];
  const topic = new Topic(folder, { onRecovery: (e) => events.push(e), ...options });
  await topic.open();
  return { topic, dir: folder, events };
}

/** Closes `topic` and opens a new Topic on the same folder. */
export async function reopen(topic: Topic, options: TopicOptions = {}): Promise<{ topic: Topic; events: RecoveryEvent[] }> {
  await topic.close();
  const { topic: next, events } = await openTestTopic(options, topic.dir);
  return { topic: next, events };
}

/** Bytes of a segment file of ours holding one record per group of messages. */
export function segmentBytes(groups: readonly (readonly Message[])[], header: { createdAt?: number; prevLastIndex?: bigint } = {}): Uint8Array {
  const parts = [encodeFileHeader({ createdAt: header.createdAt ?? 1000, prevLastIndex: header.prevLastIndex ?? 0n }), ...groups.map((g) => encodeRecords(g))];
  return new Uint8Array(Buffer.concat(parts));
}

/** Asserts two byte arrays are equal (fast for large arrays, unlike toEqual). */
export function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  if (actual.byteLength !== expected.byteLength || !Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength))) {
    throw new Error(`bytes differ: got ${actual.byteLength} bytes, expected ${expected.byteLength}`);
  }
}
