import { basename, join } from 'node:path';
import { frameDataLength, isU64, MESSAGE_HEADER_SIZE, parseU64 } from '@msg/wire';
import { corruptSegment, SegmentError } from './errors.js';
import type { FileSystem } from './file-system.js';
import { isZero, readRecordHeader, RECORD_HEADER_SIZE, type SegmentFormat } from './format.js';
import { readReclaimMark, removeStaleMarkTemp } from './reclaim-mark.js';
import { dataStartOf, listSegmentFiles, probeSegment, scanSegment, type SegmentFile, type SegmentProbe } from './segment.js';
import { READ_SIZE } from './segment-cursor.js';
import type { SegmentState } from './topic-reader.js';

/*
 * The recovery routine a writing Topic runs when it opens: finish an
 * interrupted reclamation, roll back to a checkpoint, and recover the last
 * segment by the rule of the README's "Failure model" (crash-shaped damage
 * beyond the owner's durable point is truncated; anything else is
 * CORRUPT_SEGMENT naming file and offset).
 */

/** What `open()` repaired; see `TopicOptions.onRecovery`. */
export interface RecoveryEvent {
  /**
   * `'torn-tail'`: the last segment ended inside a record (a write cut short
   * by a crash), in a zero-filled tail, or (beyond the owner's durable point,
   * see {@link TopicOpenOptions.durable}) in a record overlapping a zeroed
   * 512-byte sector; the file was truncated at `offset`.
   * `'empty-segment'`: the last segment held no whole record (a crash right
   * after it was created) and was deleted. `'reclaim-finished'`: a segment
   * below the reclaim mark, left by a crash during reclamation, was deleted.
   * `'rolled-back'`: {@link TopicOpenOptions.rollBackTo} cut the segment at
   * `offset` (or deleted it: offset 0) without reading what it dropped.
   */
  kind: 'torn-tail' | 'empty-segment' | 'reclaim-finished' | 'rolled-back';
  /** Path of the segment file. */
  segment: string;
  /** Byte offset where the dropped bytes began (0 for a deleted file). */
  offset: number;
  /** Bytes dropped. */
  bytesDropped: number;
}

/**
 * A point of a topic known to be durable: what `Topic.checkpoint`
 * returns, and what an owner hands back to `Topic.open` after a restart.
 */
export interface TopicCheckpoint {
  /** The topic's last index then (0n when empty). */
  lastIndex: bigint;
  /** File name (not path) of its active segment then; absent when it had none. */
  segment?: string;
  /** Bytes of that segment then (0 when there was none). */
  size: number;
}

/**
 * Options of `Topic.open`: what the owner knows to be durable. Give at
 * most one of the two.
 */
export interface TopicOpenOptions {
  /**
   * The last point the owner knows durable (its last checkpoint). Damage of
   * the last segment at or before it is `CORRUPT_SEGMENT`; beyond it, damage
   * with the shape a crash leaves (the file ends inside the record, or a
   * 512-byte aligned sector overlapping the record is all zero) is truncated
   * and reported. Without it, only damage that runs to the end of the file is
   * recovered (see the README's "Failure model").
   */
  durable?: TopicCheckpoint;
  /**
   * Roll the topic back to this checkpoint, without reading what follows it:
   * segments starting above `lastIndex` are deleted, the checkpoint's segment
   * is truncated to `size` (and fsynced), each reported as `'rolled-back'`.
   * For an owner that writes everything after the checkpoint again (a raft
   * state machine). What remains is durable: any damage in it is
   * `CORRUPT_SEGMENT`, and a checkpoint's segment shorter than `size` too.
   */
  rollBackTo?: TopicCheckpoint;
}

/** What recovery needs of the topic it opens. */
export interface RecoveryContext {
  /** The topic's folder. */
  dir: string;
  fs: FileSystem;
  /** Largest data length a frame may have, in bytes (a larger one on disk is corruption). */
  maxDataLength: number;
  /** Told of every repair. */
  onRecovery: (event: RecoveryEvent) => void;
}

/** What {@link recoverTopic} leaves: the segments, oldest first, and the reclaim mark. */
export interface RecoveredTopic {
  segments: SegmentState[];
  /** Reads below this index are reclaimed (0n: none). */
  mark: bigint;
}

/**
 * Recovers the topic in `topic.dir` for writing (the caller holds its lock)
 * and describes its segments: finishes an interrupted reclamation, applies
 * `options.rollBackTo`, truncates a torn tail of the last segment beyond the
 * durable point (`options.durable`) and deletes a last segment without a
 * whole record, each reported through `onRecovery`. Damage anywhere else is
 * `CORRUPT_SEGMENT`.
 */
export async function recoverTopic(topic: RecoveryContext, options: TopicOpenOptions): Promise<RecoveredTopic> {
  const { dir, fs, maxDataLength, onRecovery } = topic;
  await removeStaleMarkTemp(dir, fs);
  const mark = await readReclaimMark(dir, fs);
  let files = await listSegmentFiles(dir, fs);
  if (mark > 0n && files.some((f) => f.startIndex < mark)) {
    if (!files.some((f) => f.startIndex >= mark)) {
      throw corruptSegment(join(dir, '.first-index'), 0, `reclaim mark ${mark} is beyond every segment`);
    }
    for (const file of files.filter((f) => f.startIndex < mark)) {
      const { size } = await probeSegment(file.path, fs);
      await fs.remove(file.path);
      onRecovery({ kind: 'reclaim-finished', segment: file.path, offset: 0, bytesDropped: size });
    }
    await fs.syncDir(dir);
    files = files.filter((f) => f.startIndex >= mark);
  }
  if (options.rollBackTo) files = await rollBack(topic, files, options.rollBackTo);
  const durable = options.rollBackTo ?? options.durable;
  const probes = await Promise.all(files.map((file) => probeSegment(file.path, fs)));

  // The last segment: truncate a torn tail beyond the durable point, drop it if no whole record remains.
  let tail: { end: number; lastIndex: bigint } | undefined;
  while (files.length > 0 && tail === undefined) {
    const file = files.at(-1)!;
    const { size, probe } = probes.at(-1)!;
    const durableEnd = durableEndOf(file, durable);
    if (probe.kind === 'damaged') throw corruptSegment(file.path, 0, probe.reason);
    if (durableEnd !== undefined && Number.isFinite(durableEnd) && size < durableEnd) {
      throw corruptSegment(file.path, size, `the segment ends before its durable size ${durableEnd}`);
    }
    let end = 0;
    let lastIndex = 0n;
    if (probe.kind === 'partial') {
      if (durableEnd !== undefined && durableEnd > 0) throw corruptSegment(file.path, 0, 'file header cut short in a durable segment');
    } else {
      const scan = await scanSegment(file.path, probe.kind, size, { maxDataLength: maxDataLength, keepDamage: true, fs });
      end = scan.end;
      lastIndex = scan.lastIndex;
      if (scan.damage) {
        // Recovered only beyond the durable point, and only with the shape of a crash (a zeroed sector).
        if (durableEnd === undefined || end < durableEnd || !(await overlapsZeroSector(fs, maxDataLength, file.path, probe.kind, end, size))) throw scan.damage;
      } else if (scan.torn && durableEnd !== undefined && end < durableEnd) {
        throw corruptSegment(file.path, end, 'record cut short in the durable part of the segment');
      }
    }
    const dataStart = dataStartOf(probe.kind === 'partial' ? 'legacy' : probe.kind);
    if (end > dataStart) {
      if (end < size) {
        const handle = await fs.open(file.path);
        try {
          await handle.truncate(end);
          await handle.sync();
        } finally {
          await handle.close();
        }
        onRecovery({ kind: 'torn-tail', segment: file.path, offset: end, bytesDropped: size - end });
      }
      tail = { end, lastIndex };
    } else {
      if (durableEnd === Infinity) throw corruptSegment(file.path, end, 'a durable segment holds no record');
      await fs.remove(file.path);
      await fs.syncDir(dir);
      onRecovery({ kind: 'empty-segment', segment: file.path, offset: 0, bytesDropped: size });
      files.pop();
      probes.pop();
    }
  }

  const segments: SegmentState[] = [];
  for (let i = 0; i < files.length; i++) {
    segments.push(await describeSegment(files[i]!.startIndex, files[i]!.path, probes[i]!, probes[i + 1], i === files.length - 1 ? tail : undefined, maxDataLength, fs));
  }
  return { segments, mark };
}

/**
 * {@link TopicOpenOptions.rollBackTo}: deletes the segments that start after
 * the checkpoint and truncates the checkpoint's segment to its size, without
 * reading what goes. Returns the files left.
 */
async function rollBack({ dir, fs, onRecovery }: RecoveryContext, files: SegmentFile[], to: TopicCheckpoint): Promise<SegmentFile[]> {
  const kept: SegmentFile[] = [];
  let removed = false;
  for (const file of files) {
    const isCheckpointSegment = to.segment !== undefined && basename(file.path) === to.segment;
    if (!isCheckpointSegment && file.startIndex > to.lastIndex) {
      const size = (await fs.stat(file.path))?.size ?? 0;
      await fs.remove(file.path);
      removed = true;
      onRecovery({ kind: 'rolled-back', segment: file.path, offset: 0, bytesDropped: size });
      continue;
    }
    kept.push(file);
    if (!isCheckpointSegment) continue;
    const handle = await fs.open(file.path);
    try {
      const size = await handle.size();
      if (size > to.size) {
        await handle.truncate(to.size);
        await handle.sync();
        onRecovery({ kind: 'rolled-back', segment: file.path, offset: to.size, bytesDropped: size - to.size });
      }
    } finally {
      await handle.close();
    }
  }
  if (removed) await fs.syncDir(dir);
  return kept;
}

/**
 * Whether some 512-byte sector at a multiple of 512 that overlaps the
 * damaged record at `offset` is all zero (the part of it inside the file):
 * the shape of a write a crash left unfinished (delayed allocation, a
 * sector never written), as opposed to a bit flip. Reads in bounded chunks.
 */
async function overlapsZeroSector(fs: FileSystem, maxDataLength: number, path: string, format: SegmentFormat, offset: number, fileSize: number): Promise<boolean> {
  const handle = await fs.open(path, { readOnly: true });
  try {
    // The record's extent: its header's length when the header verifies, else the header alone.
    const headerSize = format === 'v1' ? RECORD_HEADER_SIZE : MESSAGE_HEADER_SIZE;
    const head = await handle.read(offset, headerSize);
    let extent = headerSize;
    if (head.byteLength === headerSize) {
      if (format === 'v1') {
        const header = readRecordHeader(head, 0);
        if (header !== undefined) extent += header.payloadLength;
      } else {
        const dataLength = frameDataLength(head, 0);
        if (dataLength <= maxDataLength) extent += dataLength;
      }
    }
    const end = Math.min(fileSize, offset + extent);
    const stop = Math.ceil(end / SECTOR) * SECTOR;
    for (let at = offset - (offset % SECTOR); at < stop; at += READ_SIZE) {
      const want = Math.min(READ_SIZE, stop - at);
      const bytes = await handle.read(at, want);
      for (let sector = 0; sector < bytes.byteLength; sector += SECTOR) {
        if (isZero(bytes.subarray(sector, sector + SECTOR))) return true;
      }
      if (bytes.byteLength < want) break;
    }
    return false;
  } finally {
    await handle.close();
  }
}

/**
 * Builds the state of a segment from its probe and its successor's (and,
 * for the last segment, what recovery or the read-only view found of its
 * tail). Reads a sealed segment's record headers when its successor does not
 * name its last index.
 */
export async function describeSegment(
  startIndex: bigint,
  path: string,
  { size, mtimeMs, probe }: SegmentProbe,
  next: SegmentProbe | undefined,
  tail: { end: number; lastIndex: bigint } | undefined,
  maxDataLength: number,
  fs: FileSystem,
): Promise<SegmentState> {
  if (probe.kind === 'damaged') throw corruptSegment(path, 0, probe.reason);
  if (probe.kind === 'partial' && size > 0) throw corruptSegment(path, 0, 'file header cut short');
  const format: SegmentFormat = probe.kind === 'v1' ? 'v1' : 'legacy';
  let end = size;
  let lastIndex: bigint;
  if (tail) {
    end = tail.end;
    lastIndex = tail.lastIndex;
  } else if (next?.probe.kind === 'v1') {
    lastIndex = next.probe.header.prevLastIndex;
  } else if (size === 0) {
    lastIndex = 0n;
  } else {
    const scan = await scanSegment(path, format, size, { maxDataLength, headersOnly: true, fs });
    if (scan.torn) throw corruptSegment(path, scan.end, 'sealed segment ends inside a record');
    lastIndex = scan.lastIndex;
  }
  return {
    startIndex,
    path,
    format,
    dataStart: size === 0 ? 0 : dataStartOf(format),
    size: end,
    lastIndex,
    createdAt: probe.kind === 'v1' ? probe.header.createdAt : undefined,
    sealedAt: next === undefined ? undefined : next.probe.kind === 'v1' ? next.probe.header.createdAt : mtimeMs,
  };
}

/** Bytes of the sectors the recovery rule looks at (see {@link TopicOpenOptions.durable}). */
const SECTOR = 512;

/**
 * How far segment `file` is durable by the owner's point `durable`:
 * `undefined` without one, `Infinity` for a segment before the point's,
 * its size for the point's segment, 0 after it.
 */
function durableEndOf(file: SegmentFile, durable: TopicCheckpoint | undefined): number | undefined {
  if (durable === undefined) return undefined;
  const start = durable.segment === undefined ? undefined : parseU64(durable.segment);
  if (start === undefined) return 0;
  if (file.startIndex < start) return Infinity;
  return file.startIndex === start ? durable.size : 0;
}

export function assertCheckpoint(point: TopicCheckpoint): void {
  if (typeof point !== 'object' || point === null || !isU64(point.lastIndex)) throw invalid('a checkpoint needs a u64 lastIndex');
  if (!Number.isSafeInteger(point.size) || point.size < 0) throw invalid(`a checkpoint size must be a non-negative integer, got ${String(point.size)}`);
  if (point.segment !== undefined && (typeof point.segment !== 'string' || parseU64(point.segment) === undefined)) {
    throw invalid(`a checkpoint segment must be a segment file name, got ${String(point.segment)}`);
  }
}

function invalid(message: string): SegmentError {
  return new SegmentError('INVALID_ARGUMENT', { message: `invalid argument: ${message}` });
}
