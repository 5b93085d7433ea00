import { BrokerError } from './errors.js';
import { MESSAGE_HEADER_SIZE, frameDataLength, frameIndex, frameTopicID, frameType, readHeader } from './header.js';
import type { Message } from './message.js';

/**
 * Default cap on one frame's data length: 16 MiB. A larger length in a header
 * is `FRAME_TOO_LARGE`, raised before anything is allocated for it.
 */
export const DEFAULT_MAX_DATA_LENGTH = 16 * 1024 * 1024;

/** Options of {@link MessageDecoder} and {@link decodeMessages}. */
export interface DecoderOptions {
  /** Largest data length accepted, in bytes. Default {@link DEFAULT_MAX_DATA_LENGTH}. */
  maxDataLength?: number;
}

/**
 * Turns a byte stream cut into arbitrary chunks (down to one byte at a time)
 * into whole messages.
 *
 * A message that lies wholly inside one pushed chunk is returned as a view of
 * that chunk (no copy), so do not reuse a chunk's memory after pushing it.
 * After an error the decoder is unusable: every later call throws it again.
 */
export class MessageDecoder {
  readonly #maxDataLength: number;
  /** Header bytes of a frame that spans chunks (fill = #headerFill). */
  readonly #header = new Uint8Array(MESSAGE_HEADER_SIZE);
  #headerFill = 0;
  /** The whole frame being assembled once its header is known. */
  #frame: Uint8Array | undefined;
  #frameFill = 0;
  #failure: BrokerError | undefined;

  constructor(options: DecoderOptions = {}) {
    const max = options.maxDataLength ?? DEFAULT_MAX_DATA_LENGTH;
    if (!Number.isInteger(max) || max < 0) throw new RangeError(`maxDataLength must be a non-negative integer, got ${max}`);
    this.#maxDataLength = max;
  }

  /** Bytes held of a frame not yet complete. */
  get bufferedBytes(): number {
    return this.#frame ? this.#frameFill : this.#headerFill;
  }

  /** Feeds a chunk; returns the messages it completed, in order. */
  push(chunk: Uint8Array): Message[] {
    if (this.#failure) throw this.#failure;
    const out: Message[] = [];
    let pos = 0;
    const end = chunk.byteLength;
    try {
      while (pos < end) {
        if (this.#frame === undefined && this.#headerFill === 0) {
          // Aligned on a frame boundary: decode in place while whole frames are here.
          if (end - pos >= MESSAGE_HEADER_SIZE) {
            const dataLength = frameDataLength(chunk, pos);
            this.#checkLength(dataLength);
            const frameEnd = pos + MESSAGE_HEADER_SIZE + dataLength;
            if (frameEnd <= end) {
              out.push({ type: frameType(chunk, pos), topicID: frameTopicID(chunk, pos), index: frameIndex(chunk, pos), data: chunk.subarray(pos + MESSAGE_HEADER_SIZE, frameEnd) });
              pos = frameEnd;
              continue;
            }
            this.#frame = new Uint8Array(MESSAGE_HEADER_SIZE + dataLength);
            this.#frameFill = 0;
          }
        }
        if (this.#frame === undefined) {
          // Collecting a header that spans chunks.
          const take = Math.min(MESSAGE_HEADER_SIZE - this.#headerFill, end - pos);
          this.#header.set(chunk.subarray(pos, pos + take), this.#headerFill);
          this.#headerFill += take;
          pos += take;
          if (this.#headerFill < MESSAGE_HEADER_SIZE) break;
          const dataLength = frameDataLength(this.#header, 0);
          this.#checkLength(dataLength);
          this.#frame = new Uint8Array(MESSAGE_HEADER_SIZE + dataLength);
          this.#frame.set(this.#header, 0);
          this.#frameFill = MESSAGE_HEADER_SIZE;
          this.#headerFill = 0;
        }
        const frame = this.#frame;
        const take = Math.min(frame.byteLength - this.#frameFill, end - pos);
        frame.set(chunk.subarray(pos, pos + take), this.#frameFill);
        this.#frameFill += take;
        pos += take;
        if (this.#frameFill === frame.byteLength) {
          const header = readHeader(frame, 0);
          out.push({ type: header.type, topicID: header.topicID, index: header.index, data: frame.subarray(MESSAGE_HEADER_SIZE) });
          this.#frame = undefined;
          this.#frameFill = 0;
        }
      }
    } catch (error) {
      this.#failure = error instanceof BrokerError ? error : new BrokerError('INVALID_MESSAGE', { cause: error });
      throw this.#failure;
    }
    return out;
  }

  /**
   * Declares the end of the stream. A clean end between frames is fine; a
   * partial header or body is `TRUNCATED_FRAME` ("unexpected EOF").
   */
  end(): void {
    if (this.#failure) throw this.#failure;
    if (this.bufferedBytes > 0) {
      this.#failure = new BrokerError('TRUNCATED_FRAME', {
        message: `unexpected EOF: stream ended ${this.bufferedBytes} bytes into a frame`,
      });
      throw this.#failure;
    }
  }

  #checkLength(dataLength: number): void {
    if (dataLength > this.#maxDataLength) {
      throw new BrokerError('FRAME_TOO_LARGE', {
        message: `frame too large: data length ${dataLength} exceeds the limit of ${this.#maxDataLength} bytes`,
      });
    }
  }
}

/**
 * Decodes a byte stream (any async or sync iterable of chunks, such as a Node
 * readable or a fetch body reader) into messages, ending cleanly at a frame
 * boundary and throwing `TRUNCATED_FRAME` on a partial frame at the end.
 */
export async function* decodeMessages(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: DecoderOptions = {},
): AsyncGenerator<Message, void, undefined> {
  const decoder = new MessageDecoder(options);
  for await (const chunk of source) {
    yield* decoder.push(chunk);
  }
  decoder.end();
}
