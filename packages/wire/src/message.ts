import { BrokerError } from './errors.js';
import { MESSAGE_HEADER_SIZE, readHeader, writeHeader } from './header.js';
import { isU64 } from './u64.js';

/** The largest data length the header can express (u32). */
export const MAX_DATA_LENGTH = 0xffff_ffff;

/**
 * One message of a topic. On the wire: a 22-byte big-endian header (type,
 * topicID, index, data length) followed by the data.
 */
export interface Message {
  /** Message type, 0..65535. Types with bit 0x8000 are the broker's own. */
  type: number;
  /** Topic id, 0..2^64-1. */
  topicID: bigint;
  /** Raft index the message was committed at, 0..2^64-1 (0 before publishing). */
  index: bigint;
  /** Opaque payload; may be empty. */
  data: Uint8Array;
}

/** Throws `INVALID_MESSAGE` unless every field of `message` fits its wire width. */
export function assertValidMessage(message: Message): void {
  assertValidFields(message.type, message.topicID, message.index, message.data);
}

/** {@link assertValidMessage} on the fields (no object needed). Internal to the package. */
export function assertValidFields(type: number, topicID: bigint, index: bigint, data: Uint8Array): void {
  if (!Number.isInteger(type) || type < 0 || type > 0xffff) {
    throw new BrokerError('INVALID_MESSAGE', { message: `invalid message: type ${String(type)} is not a u16` });
  }
  if (!isU64(topicID)) throw new BrokerError('INVALID_MESSAGE', { message: `invalid message: topicID ${String(topicID)} is not a u64 bigint` });
  if (!isU64(index)) throw new BrokerError('INVALID_MESSAGE', { message: `invalid message: index ${String(index)} is not a u64 bigint` });
  if (!(data instanceof Uint8Array)) throw new BrokerError('INVALID_MESSAGE', { message: 'invalid message: data is not a Uint8Array' });
}

/** Bytes `message` takes on the wire: 22 + data length. */
export function encodedLength(message: Message): number {
  return MESSAGE_HEADER_SIZE + message.data.byteLength;
}

/**
 * Writes `message` into `target` at `offset` and returns the offset after it.
 * `target` must have {@link encodedLength} bytes free there.
 */
export function encodeMessageInto(message: Message, target: Uint8Array, offset = 0): number {
  assertValidMessage(message);
  writeHeader(target, offset, message.type, message.topicID, message.index, message.data.byteLength);
  target.set(message.data, offset + MESSAGE_HEADER_SIZE);
  return offset + MESSAGE_HEADER_SIZE + message.data.byteLength;
}

/** Encodes one message: byte-identical to the original's `Message.MarshalBinary`. */
export function encodeMessage(message: Message): Uint8Array {
  const out = new Uint8Array(encodedLength(message));
  encodeMessageInto(message, out, 0);
  return out;
}

/** Encodes messages back to back, as a stream body or batch body carries them. */
export function encodeMessages(messages: Iterable<Message>): Uint8Array {
  const list = [...messages];
  let size = 0;
  for (const m of list) size += encodedLength(m);
  const out = new Uint8Array(size);
  let offset = 0;
  for (const m of list) offset = encodeMessageInto(m, out, offset);
  return out;
}

/**
 * Decodes exactly one frame. A short frame is `TRUNCATED_FRAME`; bytes after
 * the frame are `INVALID_MESSAGE`. The returned data is a view into `bytes`
 * (no copy).
 */
export function decodeMessage(bytes: Uint8Array): Message {
  if (bytes.byteLength < MESSAGE_HEADER_SIZE) throw new BrokerError('TRUNCATED_FRAME');
  const { type, topicID, index, dataLength } = readHeader(bytes, 0);
  const end = MESSAGE_HEADER_SIZE + dataLength;
  if (bytes.byteLength < end) throw new BrokerError('TRUNCATED_FRAME');
  if (bytes.byteLength > end) {
    throw new BrokerError('INVALID_MESSAGE', { message: `invalid message: ${bytes.byteLength - end} bytes after the frame` });
  }
  return { type, topicID, index, data: bytes.subarray(MESSAGE_HEADER_SIZE, end) };
}
