import { join } from 'node:path';
import { DEFAULT_MAX_DATA_LENGTH, MAX_U64, parseU64 } from '@msg/wire';
import { corruptSegment, isSegmentError, type SegmentError } from './errors.js';
import { nodeFileSystem, type FileSystem } from './file-system.js';
import { FILE_HEADER_SIZE, probeHeader, type HeaderProbe, type SegmentFormat } from './format.js';
import { SegmentCursor } from './segment-cursor.js';

/** One segment of a topic, as {@link listSegments} and `Topic.segments()` describe it. */
export interface SegmentInfo {
  /** Index of the segment's first message: the decimal name of its file. */
  startIndex: bigint;
  /** Path of the segment file. */
  path: string;
  /** Bytes of the file (for an open topic: bytes readers may see). */
  size: number;
  /** Index of the segment's last message; 0n when it holds none. */
  lastIndex: bigint;
}

/** A file of a topic folder whose name is a decimal u64. */
export interface SegmentFile {
  /** The index in the file's name. */
  startIndex: bigint;
  /** Path of the file. */
  path: string;
}

/**
 * The segment files of a topic folder (files named by a decimal u64; other
 * names are ignored), sorted by start index. A missing folder has none.
 */
export async function listSegmentFiles(topicDir: string, fs: FileSystem = nodeFileSystem): Promise<SegmentFile[]> {
  const files: SegmentFile[] = [];
  for (const name of await listOrEmpty(topicDir, fs)) {
    const startIndex = parseU64(name);
    if (startIndex === undefined || String(startIndex) !== name) continue;
    const path = join(topicDir, name);
    const stats = await fs.stat(path);
    if (stats !== undefined && !stats.isDirectory) files.push({ startIndex, path });
  }
  return files.sort((a, b) => (a.startIndex < b.startIndex ? -1 : a.startIndex > b.startIndex ? 1 : 0));
}

/** What the start of a segment file says, plus its size and modification time. */
export interface SegmentProbe {
  /** File size in bytes. */
  size: number;
  /** Last modification, ms since the epoch (wall clock). */
  mtimeMs: number;
  /** What the file's first bytes say (our header, the original's frames, damage, a torn creation). */
  probe: HeaderProbe;
}

/** Reads the size, mtime and first bytes of a segment file (`ENOENT` when it is missing). */
export async function probeSegment(path: string, fs: FileSystem = nodeFileSystem): Promise<SegmentProbe> {
  const fd = await fs.open(path, { readOnly: true });
  try {
    const stats = await fs.stat(path);
    const fileSize = await fd.size();
    const head = await fd.read(0, FILE_HEADER_SIZE);
    const size = Math.max(fileSize, head.byteLength);
    return { size, mtimeMs: stats?.mtimeMs ?? 0, probe: probeHeader(head, size) };
  } finally {
    await fd.close();
  }
}

/** Byte offset of the first record (or frame) of a segment of `format`. */
export function dataStartOf(format: SegmentFormat): number {
  return format === 'v1' ? FILE_HEADER_SIZE : 0;
}

/** Result of {@link scanSegment}. */
export interface SegmentScan {
  /** Byte offset just past the last whole, valid record. */
  end: number;
  /** Index of the last whole record's last message; 0n if none. */
  lastIndex: bigint;
  /** Whether bytes after `end` (up to the limit) hold an incomplete record or a zero-filled tail. */
  torn: boolean;
  /**
   * With `keepDamage`: the `CORRUPT_SEGMENT` error of the record at `end`
   * that failed its checks (the scan stopped there instead of throwing).
   */
  damage?: SegmentError;
}

/**
 * Reads a segment from its first record up to byte `limit`, checking every
 * record (both checksums for ours; length cap and increasing indexes for the
 * original's frames) unless `headersOnly`, which for our format checks the
 * record headers and skips payloads. Corruption throws `CORRUPT_SEGMENT`; an
 * incomplete last record is reported as `torn`.
 */
export async function scanSegment(
  path: string,
  format: SegmentFormat,
  limit: number,
  options: { maxDataLength?: number; headersOnly?: boolean; keepDamage?: boolean; fs?: FileSystem } = {},
): Promise<SegmentScan> {
  const cursor = await SegmentCursor.open(path, format, dataStartOf(format), options.maxDataLength ?? DEFAULT_MAX_DATA_LENGTH, options.fs);
  const from = options.headersOnly ? MAX_U64 + 1n : 0n;
  try {
    for (;;) {
      let read;
      try {
        read = await cursor.read(limit, from);
      } catch (error) {
        if (options.keepDamage && isSegmentError(error, 'CORRUPT_SEGMENT')) return { end: cursor.position, lastIndex: cursor.lastIndex, torn: false, damage: error };
        throw error;
      }
      if (read.status !== 'data') return { end: cursor.position, lastIndex: cursor.lastIndex, torn: read.status === 'incomplete' };
    }
  } finally {
    await cursor.close();
  }
}

/**
 * The highest message index stored in the segment file at `path`, in either
 * format; 0n for a segment holding no message. An incomplete record at the
 * end (a torn write) is not counted. For our format only record headers are
 * read and checked (payload checksums are checked by readers); a damaged
 * header throws `CORRUPT_SEGMENT`.
 */
export async function readSegmentMaxIndex(path: string, options: { maxDataLength?: number; fs?: FileSystem } = {}): Promise<bigint> {
  const { size, probe } = await probeSegment(path, options.fs);
  if (probe.kind === 'partial') return 0n;
  if (probe.kind === 'damaged') throw corruptSegment(path, 0, probe.reason);
  const format: SegmentFormat = probe.kind;
  return (await scanSegment(path, format, size, { ...options, headersOnly: true })).lastIndex;
}

/**
 * Describes the segments of a topic folder without changing anything: start
 * index, path, file size and last index (read from the next segment's header
 * where ours has recorded it, else by scanning the file). An empty or missing
 * folder has none.
 */
export async function listSegments(topicDir: string, options: { maxDataLength?: number; fs?: FileSystem } = {}): Promise<SegmentInfo[]> {
  const files = await listSegmentFiles(topicDir, options.fs);
  const probes = await Promise.all(files.map((file) => probeSegment(file.path, options.fs)));
  const out: SegmentInfo[] = [];
  for (let i = 0; i < files.length; i++) {
    const file = files[i]!;
    const { size } = probes[i]!;
    const next = probes[i + 1]?.probe;
    const lastIndex = next?.kind === 'v1' ? next.header.prevLastIndex : await readSegmentMaxIndex(file.path, options);
    out.push({ startIndex: file.startIndex, path: file.path, size, lastIndex });
  }
  return out;
}

/**
 * The segment a read from `index` starts in: the last segment whose start
 * index is <= `index`, or the first segment when `index` precedes them all
 * (as the original did). `undefined` only when `segments` is empty.
 * `segments` must be sorted by start index.
 */
export function findSegment<S extends { startIndex: bigint }>(segments: readonly S[], index: bigint): S | undefined {
  let lo = 0;
  let hi = segments.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (segments[mid]!.startIndex <= index) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return segments[Math.max(found, 0)];
}

/**
 * The topic ids of a broker folder: its subfolders named by a decimal u64,
 * sorted. A missing folder has none. `options.fs`: the file system (default
 * the real one).
 */
export async function listTopicIDs(dir: string, options: { fs?: FileSystem } = {}): Promise<bigint[]> {
  const fs = options.fs ?? nodeFileSystem;
  const ids: bigint[] = [];
  for (const name of await listOrEmpty(dir, fs)) {
    const id = parseU64(name);
    if (id === undefined || String(id) !== name) continue;
    if ((await fs.stat(join(dir, name)))?.isDirectory) ids.push(id);
  }
  return ids.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

async function listOrEmpty(dir: string, fs: FileSystem): Promise<string[]> {
  try {
    return await fs.list(dir);
  } catch (error) {
    if (isNotFound(error)) return [];
    throw error;
  }
}

/** True for a Node error with code ENOENT. */
export function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
