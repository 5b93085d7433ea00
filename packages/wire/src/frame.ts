import { DEFAULT_MAX_DATA_LENGTH, type DecoderOptions } from './decoder.js';
import { BrokerError } from './errors.js';
import { MESSAGE_HEADER_SIZE, frameDataLength, writeHeader } from './header.js';
import { assertValidFields } from './message.js';

declare const validFrame: unique symbol;

/**
 * One whole frame (22-byte header + data, nothing before or after it) that
 * `@msg/wire` has validated: only {@link encodeFrame}, {@link asFrame} and
 * {@link splitFrames} make one. At run time it is the `Uint8Array` itself
 * (often a view into a larger buffer, such as a request body); the type
 * records that it was checked, so code that receives a `Frame` passes it on
 * or stores it without decoding or checking it again. Do not modify it.
 */
export type Frame = Uint8Array & { readonly [validFrame]: true };

/** What a producer chooses of a message (the log assigns the index). */
export interface PublishFields {
  /** Message type, 0..65535. */
  type: number;
  /** Topic id, 0..2^64-1. */
  topicID: bigint;
  /** The payload; may be empty. */
  data: Uint8Array;
}

/**
 * Encodes `message` as a new frame with index field `index` (default 0n: a
 * message not yet published). Throws `INVALID_MESSAGE` when a field does not
 * fit its wire width. Copies the data once.
 */
export function encodeFrame(message: PublishFields, index = 0n): Frame {
  const { type, topicID, data } = message;
  assertValidFields(type, topicID, index, data);
  const frame = new Uint8Array(MESSAGE_HEADER_SIZE + data.byteLength);
  writeHeader(frame, 0, type, topicID, index, data.byteLength);
  frame.set(data, MESSAGE_HEADER_SIZE);
  return frame as Frame;
}

/**
 * Checks that `bytes` holds exactly one frame and returns it as a
 * {@link Frame} (the same bytes, no copy). Fewer bytes than the header says
 * is `TRUNCATED_FRAME`; bytes after the frame are `INVALID_MESSAGE`; data
 * longer than `options.maxDataLength` (default 16 MiB) is `FRAME_TOO_LARGE`.
 */
export function asFrame(bytes: Uint8Array, options: DecoderOptions = {}): Frame {
  if (bytes.byteLength < MESSAGE_HEADER_SIZE) throw new BrokerError('TRUNCATED_FRAME');
  const dataLength = frameDataLength(bytes, 0);
  checkLength(dataLength, options.maxDataLength ?? DEFAULT_MAX_DATA_LENGTH);
  const end = MESSAGE_HEADER_SIZE + dataLength;
  if (bytes.byteLength < end) throw new BrokerError('TRUNCATED_FRAME');
  if (bytes.byteLength > end) {
    throw new BrokerError('INVALID_MESSAGE', { message: `invalid message: ${bytes.byteLength - end} bytes after the frame` });
  }
  return bytes as Frame;
}

/**
 * Splits `bytes` (frames back to back, as a batch or stream body holds them)
 * into {@link Frame}s: views into `bytes`, no copy. Raises what a
 * {@link MessageDecoder} fed `bytes` and then ended raises: `FRAME_TOO_LARGE`
 * for a data length above `options.maxDataLength` (checked before the data
 * is looked at), `TRUNCATED_FRAME` (`unexpected EOF`) when the bytes end
 * inside a frame. Empty `bytes` give no frames.
 */
export function splitFrames(bytes: Uint8Array, options: DecoderOptions = {}): Frame[] {
  const max = options.maxDataLength ?? DEFAULT_MAX_DATA_LENGTH;
  const frames: Frame[] = [];
  const end = bytes.byteLength;
  let at = 0;
  while (at < end) {
    if (end - at >= MESSAGE_HEADER_SIZE) {
      const dataLength = frameDataLength(bytes, at);
      checkLength(dataLength, max);
      const frameEnd = at + MESSAGE_HEADER_SIZE + dataLength;
      if (frameEnd <= end) {
        frames.push(bytes.subarray(at, frameEnd) as Frame);
        at = frameEnd;
        continue;
      }
    }
    throw new BrokerError('TRUNCATED_FRAME', { message: `unexpected EOF: stream ended ${end - at} bytes into a frame` });
  }
  return frames;
}

/** The data of `frame`: a view of its bytes after the header. */
export function frameData(frame: Frame): Uint8Array {
  return frame.subarray(MESSAGE_HEADER_SIZE);
}

function checkLength(dataLength: number, max: number): void {
  if (dataLength > max) {
    throw new BrokerError('FRAME_TOO_LARGE', { message: `frame too large: data length ${dataLength} exceeds the limit of ${max} bytes` });
  }
}
