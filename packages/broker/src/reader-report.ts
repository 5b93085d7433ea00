import { BrokerError, MessageType, SET_TOPIC_MAX_INDEX_SIZE, type Message } from '@msg/wire';

/** Longest reader id, in UTF-8 bytes. */
export const MAX_READER_ID_LENGTH = 255;

/**
 * The payload of a `SetTopicMaxIndex` message (type 0x8000, topic 0): a reader
 * reports the highest index of a topic it has stored.
 *
 * The original payload is 16 bytes, topic id (u64) ‖ index (u64), big-endian,
 * and names no reader. Ours appends an optional reader id: the UTF-8 bytes
 * after the first 16 (1..{@link MAX_READER_ID_LENGTH} bytes). A 16-byte payload
 * is the anonymous report, whose id is the empty string, so reports from
 * clients of the original keep working.
 *
 * A report with a reader id names one reader: reclamation removes only what
 * every such reader has passed. Anonymous reports cannot tell readers apart
 * (all clients of the original send them), so the broker merges them by
 * maximum and shows the result, but never reclaims because of them: as in
 * the original, where a heartbeat never removed data.
 */
export interface ReaderReport {
  /** The topic the reader stores. */
  topicID: bigint;
  /** Highest index of the topic the reader has stored. */
  index: bigint;
  /** Who reports; `''` is the anonymous report of the original protocol. */
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

/**
 * The raft log entry of a report, as a message: `SetTopicMaxIndex`, topic 0,
 * the payload of {@link encodeReaderReport}, and in the header's index field
 * (unused by the original for this type) `atMs`, the proposing leader's clock
 * in milliseconds since the epoch, so that every replica records the same
 * time for it. Negative or non-integer times are written as 0 (unknown).
 */
export function readerReportMessage(report: ReaderReport, atMs: number): Message {
  const at = Number.isSafeInteger(atMs) && atMs > 0 ? BigInt(atMs) : 0n;
  return { type: MessageType.SetTopicMaxIndex, topicID: 0n, index: at, data: encodeReaderReport(report) };
}

/**
 * When the leader proposed a report entry ({@link readerReportMessage}), in
 * milliseconds since the epoch; `undefined` when unknown (0, as in entries
 * written before the time was recorded, or beyond 2^53).
 */
export function readerReportTime(message: Message): number | undefined {
  return message.index > 0n && message.index <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(message.index) : undefined;
}
