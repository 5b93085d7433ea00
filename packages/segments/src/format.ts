import { crc32 } from 'node:zlib';
import { MESSAGE_HEADER_SIZE, writeFrameIndex, writeHeader, type Frame, type Message } from '@msg/wire';

/*
 * On-disk format of a segment written by this package (version 1):
 *
 *   file header, 32 bytes, big-endian:
 *     0  8  magic 8d 4d 53 47 53 45 47 0a ("\x8dMSGSEG\n")
 *     8  4  version (1)
 *    12  8  createdAt: ms since the epoch (the topic's clock) when the segment was created
 *    20  8  prevLastIndex: last index of the segment before this one when it was created (0: none)
 *    28  4  CRC-32 of bytes 0..28
 *
 *   then records, back to back. A record holds one or more whole frames of the
 *   original encoding (22-byte header + data), contiguous, so a reader can hand
 *   them to an HTTP response without re-encoding:
 *     0  4  payloadLength: bytes of frames that follow the record header
 *     4  8  firstIndex: index of the first frame
 *    12  8  lastIndex: index of the last frame
 *    20  4  CRC-32 of the payload
 *    24  4  CRC-32 of bytes 0..24 of this header
 *    28  .  payload
 *
 * The header checksum tells a torn tail (the file ends inside a record whose
 * header is intact, or inside the header itself) from corruption (a header
 * whose checksum fails, or a payload whose checksum fails). Segments of the
 * original broker have no file header: raw frames back to back.
 */

/** The 8 bytes a segment of ours starts with. */
export const FILE_MAGIC: Uint8Array = Uint8Array.of(0x8d, 0x4d, 0x53, 0x47, 0x53, 0x45, 0x47, 0x0a);
/** Version number in the file header. */
export const FORMAT_VERSION = 1;
/** Bytes of the file header. */
export const FILE_HEADER_SIZE = 32;
/** Bytes of a record header. */
export const RECORD_HEADER_SIZE = 28;
/**
 * Frames are grouped into records of at most this many payload bytes (a
 * single larger frame gets a record of its own): 64 KiB keeps checksumming
 * and the reader's buffers small while the per-record overhead stays < 0.05%.
 */
export const RECORD_TARGET_PAYLOAD = 64 * 1024;

/** Storage format of one segment file. */
export type SegmentFormat = 'v1' | 'legacy';

/** The fields of a file header. */
export interface FileHeader {
  /** Creation time, ms since the epoch. */
  createdAt: number;
  /** Last index of the preceding segment when this one was created; 0n if none. */
  prevLastIndex: bigint;
}

/** Encodes a version-1 file header (32 bytes). */
export function encodeFileHeader(header: FileHeader): Uint8Array {
  const out = new Uint8Array(FILE_HEADER_SIZE);
  const view = new DataView(out.buffer);
  out.set(FILE_MAGIC, 0);
  view.setUint32(8, FORMAT_VERSION);
  view.setBigUint64(12, BigInt(Math.max(0, Math.trunc(header.createdAt))));
  view.setBigUint64(20, header.prevLastIndex);
  view.setUint32(28, crc32(out.subarray(0, 28)));
  return out;
}

/** What the first bytes of a segment file say about it. */
export type HeaderProbe =
  | { kind: 'v1'; header: FileHeader }
  /** Starts like ours (magic within 2 bit flips) but the header is damaged. */
  | { kind: 'damaged'; reason: string }
  /** Shorter than a file header and a prefix of one (a torn creation), or empty. */
  | { kind: 'partial' }
  /** Raw frames of the original broker. */
  | { kind: 'legacy' };

/**
 * Classifies a segment by its first bytes. `bytes` holds the first
 * `min(size, FILE_HEADER_SIZE)` bytes of a file of `size` bytes.
 *
 * A file is ours when its first 8 bytes are within two bit flips of the
 * magic, so a flipped bit in the magic is reported as damage rather than
 * misread as the original's raw frames.
 */
export function probeHeader(bytes: Uint8Array, size: number): HeaderProbe {
  if (size === 0 || (size <= FILE_HEADER_SIZE && isZero(bytes.subarray(0, size)))) return { kind: 'partial' };
  if (size < FILE_MAGIC.byteLength) {
    return isPrefixOf(bytes.subarray(0, size), FILE_MAGIC) ? { kind: 'partial' } : { kind: 'legacy' };
  }
  if (bitDistance(bytes.subarray(0, 8), FILE_MAGIC) > 2) return { kind: 'legacy' };
  if (size < FILE_HEADER_SIZE) {
    return bitDistance(bytes.subarray(0, 8), FILE_MAGIC) === 0 ? { kind: 'partial' } : { kind: 'damaged', reason: 'bad magic' };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, FILE_HEADER_SIZE);
  if (view.getUint32(28) !== crc32(bytes.subarray(0, 28))) {
    if (isZero(bytes.subarray(8, FILE_HEADER_SIZE))) return { kind: 'partial' };
    return { kind: 'damaged', reason: 'file header checksum mismatch' };
  }
  const version = view.getUint32(8);
  if (version !== FORMAT_VERSION) return { kind: 'damaged', reason: `unsupported format version ${version}` };
  return { kind: 'v1', header: { createdAt: Number(view.getBigUint64(12)), prevLastIndex: view.getBigUint64(20) } };
}

/** A decoded record header. */
export interface RecordHeader {
  /** Payload bytes after the header. */
  payloadLength: number;
  /** Index of the record's first frame. */
  firstIndex: bigint;
  /** Index of the record's last frame. */
  lastIndex: bigint;
  /** CRC-32 the payload must have. */
  payloadCrc: number;
}

/**
 * Reads the record header at `offset` (28 bytes must be there), or returns
 * `undefined` when its checksum fails.
 */
export function readRecordHeader(bytes: Uint8Array, offset: number): RecordHeader | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, RECORD_HEADER_SIZE);
  if (view.getUint32(24) !== crc32(bytes.subarray(offset, offset + 24))) return undefined;
  const header = {
    payloadLength: view.getUint32(0),
    firstIndex: view.getBigUint64(4),
    lastIndex: view.getBigUint64(12),
    payloadCrc: view.getUint32(20),
  };
  if (header.payloadLength < MESSAGE_HEADER_SIZE || header.firstIndex > header.lastIndex) return undefined;
  return header;
}

/** CRC-32 of `bytes` (zlib's, hardware-assisted where the CPU allows). */
export function checksum(bytes: Uint8Array): number {
  return crc32(bytes);
}

/**
 * A frame to append at an index (see `Topic.appendFrames`): the frame as
 * `@msg/wire` validated it, whose index field is ignored, and the index it is
 * stored at.
 */
export interface IndexedFrame {
  /** Index the frame is stored at (written into its index field on disk). */
  index: bigint;
  /** One whole frame; it is copied as it is, its index field replaced by `index`. */
  frame: Frame;
}

/** What a record holds one of: a message, or a frame with its index. */
export type RecordItem = Message | IndexedFrame;

function isIndexedFrame(item: RecordItem): item is IndexedFrame {
  return (item as Partial<IndexedFrame>).frame !== undefined;
}

/** Bytes of the frame `item` becomes. */
function frameLength(item: RecordItem): number {
  return isIndexedFrame(item) ? item.frame.byteLength : MESSAGE_HEADER_SIZE + item.data.byteLength;
}

/**
 * Encodes `items` (already validated, indexes strictly increasing) as
 * version-1 records, frames grouped greedily into records of at most
 * {@link RECORD_TARGET_PAYLOAD} payload bytes. A message is encoded; a frame
 * is copied as it is with its index field set. Returns one buffer holding
 * every record back to back.
 */
export function encodeRecords(items: readonly RecordItem[]): Uint8Array {
  // Pass 1: split into records and size the buffer.
  const recordEnds: number[] = []; // exclusive end item position of each record
  let total = 0;
  let payload = 0;
  for (let i = 0; i < items.length; i++) {
    const frame = frameLength(items[i]!);
    if (payload > 0 && payload + frame > RECORD_TARGET_PAYLOAD) {
      recordEnds.push(i);
      total += RECORD_HEADER_SIZE + payload;
      payload = 0;
    }
    payload += frame;
  }
  if (payload > 0) {
    recordEnds.push(items.length);
    total += RECORD_HEADER_SIZE + payload;
  }
  // Pass 2: frames, then each record's header with its checksums.
  const out = Buffer.allocUnsafe(total);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let at = 0;
  let m = 0;
  for (const end of recordEnds) {
    const headerAt = at;
    const payloadAt = at + RECORD_HEADER_SIZE;
    at = payloadAt;
    const first = items[m]!;
    let last = first;
    for (; m < end; m++) {
      const item = items[m]!;
      if (isIndexedFrame(item)) {
        out.set(item.frame, at);
        writeFrameIndex(out, at, item.index);
        at += item.frame.byteLength;
      } else {
        writeHeader(out, at, item.type, item.topicID, item.index, item.data.byteLength);
        out.set(item.data, at + MESSAGE_HEADER_SIZE);
        at += MESSAGE_HEADER_SIZE + item.data.byteLength;
      }
      last = item;
    }
    view.setUint32(headerAt, at - payloadAt);
    view.setBigUint64(headerAt + 4, first.index);
    view.setBigUint64(headerAt + 12, last.index);
    view.setUint32(headerAt + 20, crc32(out.subarray(payloadAt, at)));
    view.setUint32(headerAt + 24, crc32(out.subarray(headerAt, headerAt + 24)));
  }
  return out;
}

/** Bytes {@link encodeRecords} produces for `items`. */
export function encodedRecordsLength(items: readonly RecordItem[]): number {
  let total = 0;
  let payload = 0;
  for (const item of items) {
    const frame = frameLength(item);
    if (payload > 0 && payload + frame > RECORD_TARGET_PAYLOAD) {
      total += RECORD_HEADER_SIZE + payload;
      payload = 0;
    }
    payload += frame;
  }
  return payload > 0 ? total + RECORD_HEADER_SIZE + payload : total;
}

/** True when every byte of `bytes` is zero. */
export function isZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.byteLength; i++) if (bytes[i] !== 0) return false;
  return true;
}

function isPrefixOf(prefix: Uint8Array, whole: Uint8Array): boolean {
  for (let i = 0; i < prefix.byteLength; i++) if (prefix[i] !== whole[i]) return false;
  return true;
}

function bitDistance(a: Uint8Array, b: Uint8Array): number {
  let bits = 0;
  for (let i = 0; i < b.byteLength; i++) {
    let x = (a[i] ?? 0) ^ (b[i] ?? 0);
    while (x !== 0) {
      bits += x & 1;
      x >>>= 1;
    }
  }
  return bits;
}
