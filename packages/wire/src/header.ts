/*
 * The one reader and writer of the 22-byte frame header (every package that
 * looks into a frame goes through these):
 *
 *   offset size field
 *        0    2 type (u16)
 *        2    8 topic id (u64)
 *       10    8 index (u64)
 *       18    4 data length N (u32)
 *       22    N data
 *
 * Big-endian. The readers take any `Uint8Array` (a Node `Buffer` included)
 * and allocate nothing but the bigints they return; the caller guarantees the
 * 22 header bytes are there.
 */

/** Bytes in a message header: type u16, topic id u64, index u64, data length u32. */
export const MESSAGE_HEADER_SIZE = 22;

const TYPE_AT = 0;
const TOPIC_AT = 2;
const INDEX_AT = 10;
const LENGTH_AT = 18;

/** The header fields of a frame, read without touching its data. */
export interface MessageHeader {
  type: number;
  topicID: bigint;
  index: bigint;
  /** Data length in bytes. */
  dataLength: number;
}

function u32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

function u64(bytes: Uint8Array, at: number): bigint {
  const high = u32(bytes, at);
  const low = u32(bytes, at + 4);
  return high === 0 ? BigInt(low) : (BigInt(high) << 32n) | BigInt(low);
}

function setU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = value >>> 16;
  bytes[at + 2] = value >>> 8;
  bytes[at + 3] = value;
}

function setU64(bytes: Uint8Array, at: number, value: bigint): void {
  if (value <= 0xffff_ffffn) {
    setU32(bytes, at, 0);
    setU32(bytes, at + 4, Number(value));
  } else {
    setU32(bytes, at, Number(value >> 32n));
    setU32(bytes, at + 4, Number(value & 0xffff_ffffn));
  }
}

/** The type (u16) of the frame at `offset` of `bytes`. */
export function frameType(bytes: Uint8Array, offset = 0): number {
  return (bytes[offset + TYPE_AT]! << 8) | bytes[offset + TYPE_AT + 1]!;
}

/** The topic id (u64) of the frame at `offset` of `bytes`. */
export function frameTopicID(bytes: Uint8Array, offset = 0): bigint {
  return u64(bytes, offset + TOPIC_AT);
}

/** The index (u64) of the frame at `offset` of `bytes`. */
export function frameIndex(bytes: Uint8Array, offset = 0): bigint {
  return u64(bytes, offset + INDEX_AT);
}

/** The data length in bytes (u32) of the frame at `offset` of `bytes`. */
export function frameDataLength(bytes: Uint8Array, offset = 0): number {
  return u32(bytes, offset + LENGTH_AT);
}

/**
 * Reads the 22-byte header at `offset` of `bytes`. The caller guarantees 22
 * bytes are there.
 */
export function readHeader(bytes: Uint8Array, offset = 0): MessageHeader {
  return {
    type: frameType(bytes, offset),
    topicID: frameTopicID(bytes, offset),
    index: frameIndex(bytes, offset),
    dataLength: frameDataLength(bytes, offset),
  };
}

/**
 * Writes a 22-byte header at `offset` of `target` (22 bytes must be there).
 * Does not check the fields: the caller has (a u16 type, u64 topic id and
 * index, u32 data length).
 */
export function writeHeader(target: Uint8Array, offset: number, type: number, topicID: bigint, index: bigint, dataLength: number): void {
  target[offset + TYPE_AT] = type >>> 8;
  target[offset + TYPE_AT + 1] = type;
  setU64(target, offset + TOPIC_AT, topicID);
  setU64(target, offset + INDEX_AT, index);
  setU32(target, offset + LENGTH_AT, dataLength);
}

/** Overwrites the index field of the frame at `offset` of `target` with `index` (a u64 the caller has checked). */
export function writeFrameIndex(target: Uint8Array, offset: number, index: bigint): void {
  setU64(target, offset + INDEX_AT, index);
}
