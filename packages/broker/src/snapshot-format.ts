import { isU64 } from '@msg/wire';
import { BrokerStateError } from './errors.js';
import type { ProducersJson } from './producers.js';

/**
 * The snapshot stream, a superset of the original broker's format:
 *
 * ```text
 * u32 (big-endian) header length N
 * N bytes of JSON header:
 *   {"topics":[{"id","segments":[{"index","size"}]}],"index", ...ours}
 * then the bytes of every listed segment, in header order, each exactly `size` bytes
 * ```
 *
 * The original writes `id` and `index` as JSON numbers; we write them as
 * decimal strings (u64 values above 2^53 stay exact) and add `format`,
 * `readers` (per topic, per reader id, the reported index), `producers` (the
 * producer table of exactly-once publish), a topic's
 * `firstIndex` (first retained index) and a segment `name` (its file name).
 * Readers accept both spellings.
 */
export interface SnapshotHeader {
  /** Raft index the snapshot covers (the original: its highest index). */
  index: number;
  topics: SnapshotTopic[];
  /** Per topic, per reader id, the highest index the reader reported (empty for the original's). */
  readers: Map<bigint, Map<string, bigint>>;
  /** The producer table (`ProducerTable.toJSON()`); absent in the original's and in ours before it existed. */
  producers?: ProducersJson;
}

/** A topic in a {@link SnapshotHeader}. */
export interface SnapshotTopic {
  id: bigint;
  /** First index still retained (reads below it are `SEGMENT_RECLAIMED`); absent in the original's. */
  firstIndex?: bigint;
  segments: SnapshotSegment[];
}

/** A segment in a {@link SnapshotHeader}. */
export interface SnapshotSegment {
  /** Index of its first message. */
  index: bigint;
  /** Its bytes in the stream. */
  size: number;
  /** File name to restore it as (the original: the decimal `index`). */
  name: string;
}

/** Our `format` tag. */
export const SNAPSHOT_FORMAT = 'msg-broker/1';

/** Longest header accepted, in bytes (64 MiB). */
export const MAX_SNAPSHOT_HEADER = 64 * 1024 * 1024;

/** The u32 length prefix and JSON header of a snapshot. */
export function encodeSnapshotHeader(header: SnapshotHeader): Uint8Array {
  const json = {
    format: SNAPSHOT_FORMAT,
    index: header.index,
    topics: header.topics.map((t) => ({
      id: String(t.id),
      ...(t.firstIndex === undefined ? {} : { firstIndex: String(t.firstIndex) }),
      segments: t.segments.map((s) => ({ index: String(s.index), size: s.size, name: s.name })),
    })),
    readers: Object.fromEntries(
      [...header.readers].map(([topic, byReader]) => [String(topic), Object.fromEntries([...byReader].map(([id, i]) => [id, String(i)]))]),
    ),
    ...(header.producers === undefined ? {} : { producers: header.producers }),
  };
  const body = new TextEncoder().encode(JSON.stringify(json));
  const out = new Uint8Array(4 + body.byteLength);
  new DataView(out.buffer).setUint32(0, body.byteLength);
  out.set(body, 4);
  return out;
}

/** Parses the JSON text of a header (ours or the original's). */
export function parseSnapshotHeader(text: string): SnapshotHeader {
  // Quote bare integers of "id"/"index" so u64 values survive JSON.parse exactly.
  const quoted = text.replace(/("(?:id|index)"\s*:\s*)(\d+)/g, '$1"$2"');
  let json: unknown;
  try {
    json = JSON.parse(quoted);
  } catch (cause) {
    throw corrupt('header is not JSON', cause);
  }
  if (!isRecord(json) || !Array.isArray(json.topics)) throw corrupt('header has no topics list');
  const index = Number(u64(json.index, 'index'));
  if (!Number.isSafeInteger(index)) throw corrupt(`header index ${String(json.index)} is above 2^53`);
  const seen = new Set<bigint>();
  const topics = json.topics.map((t: unknown): SnapshotTopic => {
    if (!isRecord(t) || !Array.isArray(t.segments)) throw corrupt('topic without segments list');
    const id = u64(t.id, 'topic id');
    if (seen.has(id)) throw corrupt(`topic ${id} listed twice`);
    seen.add(id);
    const names = new Set<string>();
    const segments = t.segments.map((s: unknown): SnapshotSegment => {
      if (!isRecord(s)) throw corrupt(`topic ${id}: bad segment`);
      const start = u64(s.index, 'segment index');
      const size = s.size;
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw corrupt(`topic ${id}: bad segment size`);
      const name = s.name === undefined ? String(start) : s.name;
      if (typeof name !== 'string' || !/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$/.test(name)) throw corrupt(`topic ${id}: bad segment name`);
      if (names.has(name)) throw corrupt(`topic ${id}: segment ${name} listed twice`);
      names.add(name);
      return { index: start, size, name };
    });
    return t.firstIndex === undefined ? { id, segments } : { id, firstIndex: u64(t.firstIndex, 'first index'), segments };
  });
  const readers = new Map<bigint, Map<string, bigint>>();
  if (json.readers !== undefined) {
    if (!isRecord(json.readers)) throw corrupt('bad readers');
    for (const [topic, byReader] of Object.entries(json.readers)) {
      if (!isRecord(byReader)) throw corrupt('bad readers');
      readers.set(u64(topic, 'reader topic'), new Map(Object.entries(byReader).map(([id, i]) => [id, u64(i, 'reader index')])));
    }
  }
  if (json.producers !== undefined && !Array.isArray(json.producers)) throw corrupt('bad producers');
  return json.producers === undefined ? { index, topics, readers } : { index, topics, readers, producers: json.producers as ProducersJson };
}

/** Called for each segment of a snapshot with exactly its bytes; must consume `data` to the end. */
export type SegmentSink = (topicID: bigint, segment: SnapshotSegment, data: AsyncIterable<Uint8Array>) => Promise<void>;

/**
 * Reads a snapshot stream (ours or the original's): parses the header, hands
 * every segment's bytes to `sink` in order, and returns the header. A stream
 * that ends early or has bytes after the last segment is `CORRUPT_SNAPSHOT`.
 */
export async function readSnapshot(source: AsyncIterable<Uint8Array>, sink: SegmentSink): Promise<SnapshotHeader> {
  const input = new ByteInput(source);
  const length = new DataView((await input.exact(4, 'header length')).slice().buffer).getUint32(0);
  if (length > MAX_SNAPSHOT_HEADER) throw corrupt(`header length ${length} exceeds ${MAX_SNAPSHOT_HEADER} bytes`);
  const header = parseSnapshotHeader(new TextDecoder().decode(await input.exact(length, 'header')));
  for (const topic of header.topics) {
    for (const segment of topic.segments) {
      await sink(topic.id, segment, input.take(segment.size, `topic ${topic.id} segment ${segment.name}`));
      await input.drainTaken();
    }
  }
  if (await input.hasMore()) throw corrupt('bytes after the last segment');
  return header;
}

/** Pulls exact byte counts out of an async iterable of chunks. */
class ByteInput {
  readonly #iterator: AsyncIterator<Uint8Array>;
  #pending: Uint8Array = new Uint8Array(0);
  #left = 0;
  #what = '';

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#iterator = source[Symbol.asyncIterator]();
  }

  async #fill(what: string): Promise<void> {
    for (;;) {
      const next = await this.#iterator.next();
      if (next.done) throw corrupt(`stream ended early in ${what}`);
      if (next.value.byteLength > 0) {
        this.#pending = next.value;
        return;
      }
    }
  }

  async exact(n: number, what: string): Promise<Uint8Array> {
    if (this.#pending.byteLength >= n) {
      const out = this.#pending.subarray(0, n);
      this.#pending = this.#pending.subarray(n);
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      if (this.#pending.byteLength === 0) await this.#fill(what);
      const part = this.#pending.subarray(0, n - filled);
      out.set(part, filled);
      filled += part.byteLength;
      this.#pending = this.#pending.subarray(part.byteLength);
    }
    return out;
  }

  take(n: number, what: string): AsyncIterable<Uint8Array> {
    this.#left = n;
    this.#what = what;
    const generator = async function* (self: ByteInput): AsyncGenerator<Uint8Array> {
      while (self.#left > 0) yield await self.#next();
    };
    return generator(this);
  }

  async #next(): Promise<Uint8Array> {
    if (this.#pending.byteLength === 0) await this.#fill(this.#what);
    const part = this.#pending.subarray(0, this.#left);
    this.#pending = this.#pending.subarray(part.byteLength);
    this.#left -= part.byteLength;
    return part;
  }

  /** Skips whatever the sink left unread of the last `take()`. */
  async drainTaken(): Promise<void> {
    while (this.#left > 0) await this.#next();
  }

  async hasMore(): Promise<boolean> {
    if (this.#pending.byteLength > 0) return true;
    for (;;) {
      const next = await this.#iterator.next();
      if (next.done) return false;
      if (next.value.byteLength > 0) return true;
    }
  }
}

function corrupt(why: string, cause?: unknown): BrokerStateError {
  return new BrokerStateError('CORRUPT_SNAPSHOT', `corrupt snapshot: ${why}`, { cause });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function u64(value: unknown, what: string): bigint {
  if (typeof value !== 'string' || !/^[0-9]{1,20}$/.test(value)) throw corrupt(`bad ${what} ${JSON.stringify(value)}`);
  const n = BigInt(value);
  if (!isU64(n)) throw corrupt(`bad ${what} ${value}`);
  return n;
}
