import { frameDataLength, frameIndex, frameTopicID, frameType, MESSAGE_HEADER_SIZE, type Message } from '@msg/wire';
import type { TopicReader } from '@msg/segments';

/** Options of {@link Broker.openTopicReader}. */
export interface TopicReaderOptions {
  /** Keep waiting for new messages at the end of the topic (default false: end at the current end). */
  streaming?: boolean;
}

/**
 * How a {@link BrokerTopicReader} gets at its topic: the segments reader when
 * the topic exists, or a wait for its creation.
 * @internal
 */
export interface ReaderSource {
  /** The topic's reader if the topic exists now (and the broker is open), else `undefined`. */
  open(): TopicReader | undefined;
  /** Resolves when the topic is created or the broker closes. */
  created(): { promise: Promise<void>; cancel(): void };
}

/**
 * A reader of one topic of a broker, from an index on. Iterate it for the raw
 * bytes (the original's frame encoding, back to back, whole frames per chunk:
 * what `GET /messaging/messages` sends), or iterate {@link messages} for
 * decoded messages. It can be iterated once.
 *
 * A non-streaming reader ends at the topic's end as of its first read; of a
 * topic that does not exist it is empty. A streaming reader waits for new
 * messages, and of a topic that does not exist yet it waits until the
 * topic's first message is applied. The reader ends when closed, when the
 * broker closes, and when a snapshot is restored over its topic (clients
 * reconnect from the last index they saw).
 */
export class BrokerTopicReader implements AsyncIterable<Uint8Array> {
  readonly #source: ReaderSource;
  readonly #streaming: boolean;
  #inner: TopicReader | undefined;
  #chunks: AsyncIterator<Uint8Array> | undefined;
  #primed: IteratorResult<Uint8Array> | undefined;
  #cancelWait: (() => void) | undefined;
  #closed = false;

  /** @internal Made by {@link Broker.openTopicReader}. */
  constructor(source: ReaderSource, streaming: boolean) {
    this.#source = source;
    this.#streaming = streaming;
  }

  /** True once the topic exists and this reader reads it. */
  get attached(): boolean {
    return this.#inner !== undefined;
  }

  /**
   * Reads the first chunk now, so that a start below the first retained
   * index fails (`SEGMENT_RECLAIMED`) before anything is sent.
   * @internal
   */
  async prime(): Promise<void> {
    const chunks = await this.#attach();
    if (chunks) this.#primed = await chunks.next();
  }

  async #attach(): Promise<AsyncIterator<Uint8Array> | undefined> {
    while (!this.#chunks && !this.#closed) {
      this.#inner = this.#source.open();
      if (this.#inner) {
        this.#chunks = this.#inner.frames()[Symbol.asyncIterator]();
        break;
      }
      if (!this.#streaming) break;
      const wait = this.#source.created();
      this.#cancelWait = () => wait.cancel();
      await wait.promise;
      this.#cancelWait = undefined;
      this.#inner = this.#source.open();
      if (!this.#inner) break; // the broker closed
      this.#chunks = this.#inner.frames()[Symbol.asyncIterator]();
    }
    return this.#closed ? undefined : this.#chunks;
  }

  /** Raw frames in chunks (fresh buffers, whole frames) ready to write to an HTTP response. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    const chunks = await this.#attach();
    if (!chunks) return;
    try {
      const primed = this.#primed;
      this.#primed = undefined;
      if (primed) {
        if (primed.done) return;
        yield primed.value;
      }
      for (;;) {
        const next = await chunks.next();
        if (next.done) return;
        yield next.value;
      }
    } finally {
      await this.close();
    }
  }

  /**
   * Hands back a chunk of this reader that the caller is done with (its
   * bytes written to the socket), so that the topic reader may read a later
   * chunk into its memory instead of a new buffer (see `TopicReader.release`
   * of `@msg/segments`). The caller must not look at the chunk again. Chunks
   * not handed back stay the caller's; a chunk this reader did not hand out
   * is ignored.
   */
  release(chunk: Uint8Array): void {
    this.#inner?.release(chunk);
  }

  /** Decoded messages, in index order; `data` is a view of the chunk read (no copy). */
  async *messages(): AsyncGenerator<Message, void, undefined> {
    for await (const chunk of this) {
      // The chunk holds whole frames (checked by the topic reader); @msg/wire reads their headers.
      for (let at = 0; at < chunk.byteLength; ) {
        const end = at + MESSAGE_HEADER_SIZE + frameDataLength(chunk, at);
        yield { type: frameType(chunk, at), topicID: frameTopicID(chunk, at), index: frameIndex(chunk, at), data: chunk.subarray(at + MESSAGE_HEADER_SIZE, end) };
        at = end;
      }
    }
  }

  /** Ends the reader; a waiting read ends at once. Calling it again does nothing. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelWait?.();
    await this.#inner?.close();
  }
}
