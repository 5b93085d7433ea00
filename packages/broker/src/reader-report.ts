import { BrokerError, SET_TOPIC_MAX_INDEX_SIZE } from '@msg/wire';

/** Longest reader id, in UTF-8 bytes. */
export const MAX_READER_ID_LENGTH = 255;

/**
 * The payload of a `SetTopicMaxIndex` message (type 0x8000, topic 0): a reader
 * reports the highest index of a topic it has stored.
 *
 * The original payload is 16 bytes, topic id (u64) ‖ index (u64), big-endian,
 * and names no reader. Ours appends an optional reader id: the UTF-8 bytes
 * after the first 16 (1..{@link MAX_READER_ID_LENGTH} bytes). A 16-byte payload
 * is the anonymous reader, whose id is the empty string, so reports from
 * clients of the original keep working (they all count as one reader).
 */
export interface ReaderReport {
  /** The topic the reader stores. */
  topicID: bigint;
  /** Highest index of the topic the reader has stored. */
  index: bigint;
  /** Who reports; `''` is the anonymous reader of the original protocol. */
  readerId: string;
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Encodes a {@link ReaderReport} (16 bytes, plus the reader id when not empty). */
export function encodeReaderReport(report: ReaderReport): Uint8Array {
  const id = validReaderId(report.readerId);
  const out = new Uint8Array(SET_TOPIC_MAX_INDEX_SIZE + id.byteLength);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt.asUintN(64, report.topicID));
  view.setBigUint64(8, BigInt.asUintN(64, report.index));
  out.set(id, SET_TOPIC_MAX_INDEX_SIZE);
  return out;
}

/**
 * Decodes a `SetTopicMaxIndex` payload. Shorter than 16 bytes, a reader id
 * longer than {@link MAX_READER_ID_LENGTH} bytes or not valid UTF-8 is
 * `INVALID_MESSAGE`.
 */
export function decodeReaderReport(data: Uint8Array): ReaderReport {
  if (data.byteLength < SET_TOPIC_MAX_INDEX_SIZE || data.byteLength > SET_TOPIC_MAX_INDEX_SIZE + MAX_READER_ID_LENGTH) {
    throw new BrokerError('INVALID_MESSAGE', {
      message: `invalid message: SetTopicMaxIndex data must be ${SET_TOPIC_MAX_INDEX_SIZE}..${SET_TOPIC_MAX_INDEX_SIZE + MAX_READER_ID_LENGTH} bytes, got ${data.byteLength}`,
    });
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let readerId: string;
  try {
    readerId = strictUtf8.decode(data.subarray(SET_TOPIC_MAX_INDEX_SIZE));
  } catch (cause) {
    throw new BrokerError('INVALID_MESSAGE', { message: 'invalid message: SetTopicMaxIndex reader id is not UTF-8', cause });
  }
  return { topicID: view.getBigUint64(0), index: view.getBigUint64(8), readerId };
}

/** Throws `INVALID_MESSAGE` unless `readerId` fits the payload; returns its UTF-8 bytes. */
export function validReaderId(readerId: string): Uint8Array {
  const bytes = utf8.encode(readerId);
  if (bytes.byteLength > MAX_READER_ID_LENGTH) {
    throw new BrokerError('INVALID_MESSAGE', {
      message: `invalid message: reader id is ${bytes.byteLength} bytes, at most ${MAX_READER_ID_LENGTH} allowed`,
    });
  }
  return bytes;
}
