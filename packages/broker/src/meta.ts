import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { isU64 } from '@msg/wire';
import { nodeFileSystem, type FileSystem, type TopicCheckpoint } from '@msg/segments';
import { writeFileAtomic, type FsyncStats } from './durable-file.js';
import { BrokerStateError } from './errors.js';
import type { ProducersJson } from './producers.js';

/** Name of the metadata file in a broker's data dir. */
export const META_FILE = 'meta';

/** Where a topic's data ended when its state was last made durable: what `Topic.checkpoint()` returned. */
export type { TopicCheckpoint };

/**
 * The broker's metadata, replaced atomically as a whole: which state folder
 * is live, the applied index it covers, readers' reported indexes, and where
 * each topic's durable data ended.
 */
export interface BrokerMeta {
  /** Folder (inside the data dir) holding the topic folders. */
  state: string;
  /** Highest raft index whose effects are durable in `state`. */
  appliedIndex: number;
  /** Per topic, per reader id, the highest index the reader reported. */
  readers: Map<bigint, Map<string, bigint>>;
  /** Per topic, where its durable data ended. */
  topics: Map<bigint, TopicCheckpoint>;
  /** The producer table as of `appliedIndex` (`ProducerTable.toJSON()`); absent in files written before it existed. */
  producers?: ProducersJson;
}

interface MetaJson {
  /** 2: followed by a checksum line; 1 (read only): the format before it, without one. */
  version: 1 | 2;
  state: string;
  appliedIndex: number;
  readers: Record<string, Record<string, string>>;
  topics: Record<string, { lastIndex: string; segment?: string; size: number }>;
  producers?: ProducersJson;
}

/**
 * Writes `meta` to `<dir>/meta` atomically through `fs` (temp file, fsync,
 * rename, fsync of `dir`): a JSON line, then a `crc32 <hex>` line over it, so
 * a flipped bit is detected rather than read as another applied index.
 */
export async function writeMeta(dir: string, meta: BrokerMeta, stats?: FsyncStats, fs: FileSystem = nodeFileSystem): Promise<void> {
  const json: MetaJson = { version: 2, state: meta.state, appliedIndex: meta.appliedIndex, readers: {}, topics: {}, ...(meta.producers === undefined ? {} : { producers: meta.producers }) };
  for (const [topicID, readers] of meta.readers) {
    json.readers[String(topicID)] = Object.fromEntries([...readers].map(([id, index]) => [id, String(index)]));
  }
  for (const [topicID, cp] of meta.topics) {
    json.topics[String(topicID)] = { lastIndex: String(cp.lastIndex), ...(cp.segment === undefined ? {} : { segment: cp.segment }), size: cp.size };
  }
  const line = `${JSON.stringify(json)}\n`;
  await writeFileAtomic(join(dir, META_FILE), new TextEncoder().encode(`${line}crc32 ${checksumOf(line)}\n`), stats, fs);
}

/**
 * Reads `<dir>/meta`; `undefined` when there is none. Anything malformed, or
 * whose checksum does not match, is `CORRUPT_META` naming the file (a file of
 * version 1, written before the checksum line existed, is read as it is). Read through `fs`.
 */
function checksumOf(text: string): string {
  return crc32(new TextEncoder().encode(text)).toString(16).padStart(8, '0');
}

export async function readMeta(dir: string, fs: FileSystem = nodeFileSystem): Promise<BrokerMeta | undefined> {
  const path = join(dir, META_FILE);
  const bytes = await fs.readFile(path);
  if (bytes === undefined) return undefined;
  const text = new TextDecoder().decode(bytes);
  const bad = (why: string, cause?: unknown): BrokerStateError =>
    new BrokerStateError('CORRUPT_META', `corrupt broker metadata ${path}: ${why}`, { cause });
  // The JSON line, then `crc32 <hex>` of it; a file without the second line is of version 1 (no checksum).
  const cut = text.indexOf('\n');
  const line = cut < 0 ? text : text.slice(0, cut + 1);
  const rest = cut < 0 ? '' : text.slice(cut + 1);
  const sum = /^crc32 ([0-9a-f]{8})\n$/.exec(rest);
  if (rest !== '' && !sum) throw bad('bad checksum line');
  if (sum && sum[1] !== checksumOf(line)) throw bad('checksum mismatch');
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch (cause) {
    throw bad('not JSON', cause);
  }
  if (!isRecord(json) || json.version !== (sum ? 2 : 1)) throw bad('unknown version');
  const { state, appliedIndex, readers, topics, producers } = json;
  if (typeof state !== 'string' || !/^[A-Za-z0-9._-]+$/.test(state) || state === '..') throw bad('bad state folder');
  if (typeof appliedIndex !== 'number' || !Number.isSafeInteger(appliedIndex) || appliedIndex < 0) throw bad('bad appliedIndex');
  if (!isRecord(readers) || !isRecord(topics)) throw bad('bad readers or topics');
  if (producers !== undefined && !Array.isArray(producers)) throw bad('bad producers');
  const meta: BrokerMeta = { state, appliedIndex, readers: new Map(), topics: new Map(), ...(producers === undefined ? {} : { producers: producers as ProducersJson }) };
  for (const [topic, byReader] of Object.entries(readers)) {
    if (!isRecord(byReader)) throw bad(`bad readers of topic ${topic}`);
    const map = new Map<string, bigint>();
    for (const [id, index] of Object.entries(byReader)) map.set(id, u64(index, bad));
    meta.readers.set(u64(topic, bad), map);
  }
  for (const [topic, cp] of Object.entries(topics)) {
    if (!isRecord(cp) || typeof cp.size !== 'number' || !Number.isSafeInteger(cp.size) || cp.size < 0) throw bad(`bad checkpoint of topic ${topic}`);
    if (cp.segment !== undefined && (typeof cp.segment !== 'string' || cp.segment.includes('/') || cp.segment.startsWith('.'))) {
      throw bad(`bad segment of topic ${topic}`);
    }
    meta.topics.set(u64(topic, bad), { lastIndex: u64(cp.lastIndex, bad), ...(cp.segment === undefined ? {} : { segment: cp.segment }), size: cp.size });
  }
  return meta;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function u64(text: unknown, bad: (why: string) => Error): bigint {
  if (typeof text !== 'string' || !/^[0-9]{1,20}$/.test(text)) throw bad(`bad u64 ${JSON.stringify(text)}`);
  const value = BigInt(text);
  if (!isU64(value)) throw bad(`bad u64 ${text}`);
  return value;
}
