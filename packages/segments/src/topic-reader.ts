import { BrokerError, frameDataLength, frameIndex, frameTopicID, frameType, MESSAGE_HEADER_SIZE, type Message } from '@msg/wire';
import { corruptSegment, SegmentError } from './errors.js';
import { findSegment, isNotFound } from './segment.js';
import { READ_SIZE, SegmentCursor } from './segment-cursor.js';
import type { FileSystem } from './file-system.js';
import type { SegmentFormat } from './format.js';

/**
 * A segment as the topic shows it to readers. The topic mutates these objects
 * in place (size and lastIndex grow as appends become visible) and replaces
 * or shortens its list when segments roll or are reclaimed.
 * @internal
 */
export interface SegmentState {
  readonly startIndex: bigint;
  readonly path: string;
  readonly format: SegmentFormat;
  /** Offset of the first record. */
  readonly dataStart: number;
  /** Bytes readers may read (a record boundary). */
  size: number;
  /** Index of the last visible message; 0n if none. */
  lastIndex: bigint;
  /** Creation time from our header (ms), if the format records it. */
  readonly createdAt: number | undefined;
  /** When the segment stopped being the active one (ms), when known. */
  sealedAt: number | undefined;
}

/**
 * What a reader needs from its topic: the narrow interface `Topic`
 * implements, so readers can be tested against a plain object.
 * @internal
 */
export interface ReaderSource {
  /** Frame data cap for reading. */
  readonly maxDataLength: number;
  /** The file system segment files are read through (default the real one). */
  readonly fs?: FileSystem;
  /** The current segments, oldest first (the last one is the active one). */
  segments(): readonly SegmentState[];
  /** Reads below this index are `SEGMENT_RECLAIMED` (0n: nothing reclaimed). */
  reclaimedBelow(): bigint;
  /** The first index still available (for `SEGMENT_RECLAIMED`). */
  firstAvailable(): bigint;
  /** Registers a callback run once at the next change (append, roll, reclaim, close). */
  addWaiter(wake: () => void): void;
  removeWaiter(wake: () => void): void;
  /** Brings the view up to date (a read-only view re-reads the folder). */
  refresh(): Promise<void>;
  /** A fault that readers waiting for more must report (a corrupt tail seen by a read-only view). */
  failure(): Error | undefined;
  /** The reader is done with the topic. */
  detach(reader: TopicReader): void;
  /** Whether the topic has closed: a waiting reader then ends instead of waiting. */
  isClosed(): boolean;
}

/** Options of `Topic.reader()`. */
export interface TopicReaderOptions {
  /**
   * `false` (default): the read ends at the topic's end as of the first
   * read. `true`: it then waits for appends and never ends by itself (until
   * {@link TopicReader.close} or the topic closes).
   */
  streaming?: boolean;
}

/**
 * A one-pass cursor over a topic from a start index, made by
 * `Topic.reader()`. Iterate it (`for await (const message of reader)`) for
 * messages, or iterate {@link TopicReader.frames} for the raw bytes of the
 * original encoding; a reader can be iterated once (then `READER_IN_USE`).
 *
 * Errors come from the iteration: `SEGMENT_RECLAIMED` (a `BrokerError`
 * carrying `firstIndex`) when the start index, or the place a lagging reader
 * had reached, has been reclaimed; `CORRUPT_SEGMENT` when a record fails its
 * checksum (no byte of that record is handed out; the records before it are).
 * A reader sees a message only once its append has resolved.
 */
export class TopicReader implements AsyncIterable<Message> {
  readonly #source: ReaderSource;
  readonly #streaming: boolean;
  #nextIndex: bigint;
  #segment: SegmentState | undefined;
  #cursor: SegmentCursor | undefined;
  /** Non-streaming end: a segment and a byte offset in it, fixed at the first read. */
  #stop: { segment: SegmentState; size: number } | null | undefined;
  #claimed = false;
  #closed = false;
  #busy = false;
  #wake: (() => void) | undefined;
  /** Memory of chunks handed back, to read later chunks into (at most {@link MAX_SPARE}). */
  readonly #spare: Buffer[] = [];
  /** For each chunk lent out whose memory may be reused: the buffer it was read into, by the chunk's memory. */
  readonly #lent = new WeakMap<ArrayBufferLike, Buffer>();
  /** Whether the reader is waiting for appends (it then keeps no spare memory). */
  #waiting = false;

  /** @internal Readers are made by `Topic.reader()`. */
  constructor(source: ReaderSource, fromIndex: bigint, options: TopicReaderOptions = {}) {
    this.#source = source;
    this.#nextIndex = fromIndex;
    this.#streaming = options.streaming ?? false;
  }

  /** Index from which the reader continues: its start index, then the last delivered index + 1. */
  get nextIndex(): bigint {
    return this.#nextIndex;
  }

  /** Whether {@link TopicReader.close} has been called (or the topic closed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Iterates messages; each message's `data` is a view of a buffer of its own read (no copy). */
  [Symbol.asyncIterator](): AsyncIterator<Message> {
    this.#claim();
    return this.#messages();
  }

  /**
   * Iterates raw frames: chunks of whole frames of the original encoding
   * (22-byte header + data, back to back), up to about 1 MiB each, fresh
   * buffers the caller may keep (write them straight to an HTTP response).
   * The first chunk starts at the first message whose index is >= the start
   * index. A caller done with a chunk may hand it back with
   * {@link TopicReader.release}, so that a later chunk is read into its
   * memory instead of a new buffer.
   */
  frames(): AsyncIterable<Uint8Array> {
    this.#claim();
    const chunks = this.#chunks();
    return { [Symbol.asyncIterator]: () => chunks };
  }

  /**
   * Hands back a chunk of {@link TopicReader.frames} that the caller is done
   * with (an HTTP response calls it once the chunk's bytes are written to the
   * socket): the reader may read a later chunk into its memory, which saves
   * allocating (and garbage collecting) a buffer per chunk. After the call
   * the caller must not look at the chunk again. Chunks never handed back
   * are simply the caller's. Memory is reused only where the topic's file
   * handles can read into a given buffer, only for chunks of a full read
   * (about 1 MiB), and not while the reader waits for appends; a chunk this
   * reader did not lend, or one handed back twice, is ignored.
   */
  release(chunk: Uint8Array): void {
    const buffer = this.#lent.get(chunk.buffer);
    if (buffer === undefined) return;
    this.#lent.delete(chunk.buffer);
    if (this.#closed || this.#waiting || this.#spare.length >= MAX_SPARE) return;
    this.#spare.push(buffer);
  }

  /**
   * Ends the reader: a read waiting for appends returns at once (the
   * iteration ends normally) and the file it holds is closed. Calling it
   * again does nothing.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake?.();
    if (!this.#busy) await this.#release();
  }

  /** Same as {@link TopicReader.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #claim(): void {
    if (this.#closed) throw new BrokerError('READER_CLOSED');
    if (this.#claimed) throw new SegmentError('READER_IN_USE');
    this.#claimed = true;
  }

  /**
   * Messages decoded from the chunks. A hand-written iterator rather than an
   * async generator: a message already read is handed out as a resolved
   * promise, without a generator resumption per message (about 2x faster
   * replay). Calls to next() that overlap are served in order.
   */
  #messages(): AsyncIterableIterator<Message> {
    const chunks = this.#chunks();
    let chunk: Uint8Array = EMPTY;
    let at = 0;
    let pulling: Promise<IteratorResult<Message, undefined>> | undefined;
    const decode = (): IteratorResult<Message, undefined> => {
      const length = frameDataLength(chunk, at);
      const value: Message = {
        type: frameType(chunk, at),
        topicID: frameTopicID(chunk, at),
        index: frameIndex(chunk, at),
        data: new Uint8Array(chunk.buffer, chunk.byteOffset + at + MESSAGE_HEADER_SIZE, length),
      };
      at += MESSAGE_HEADER_SIZE + length;
      return { done: false, value };
    };
    const pull = async (): Promise<IteratorResult<Message, undefined>> => {
      const step = await chunks.next();
      if (step.done === true) return { done: true, value: undefined };
      chunk = step.value; // never empty
      at = 0;
      return decode();
    };
    const next = (): Promise<IteratorResult<Message, undefined>> => {
      if (pulling) return pulling.then(next);
      if (at < chunk.byteLength) return Promise.resolve(decode());
      pulling = pull().finally(() => {
        pulling = undefined;
      });
      return pulling;
    };
    return {
      next,
      return: async (): Promise<IteratorResult<Message, undefined>> => {
        at = chunk.byteLength;
        await chunks.return(undefined);
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  async *#chunks(): AsyncGenerator<Uint8Array, void, undefined> {
    try {
      for (;;) {
        this.#busy = true;
        let chunk: Uint8Array | undefined;
        try {
          chunk = await this.#next();
        } finally {
          this.#busy = false;
        }
        if (chunk === undefined) return;
        yield chunk;
      }
    } finally {
      this.#closed = true;
      await this.#release();
    }
  }

  /** The next non-empty chunk of frames, or undefined at the end. */
  async #next(): Promise<Uint8Array | undefined> {
    const source = this.#source;
    if (this.#stop === undefined) {
      await source.refresh();
      const segments = source.segments();
      const last = segments.at(-1);
      this.#stop = this.#streaming || last === undefined ? null : { segment: last, size: last.size };
    }
    for (;;) {
      if (this.#closed) return undefined;
      const segment = this.#segment;
      if (segment === undefined) {
        if (this.#nextIndex < source.reclaimedBelow()) {
          throw new BrokerError('SEGMENT_RECLAIMED', { details: { firstIndex: source.firstAvailable() } });
        }
        const start = findSegment(source.segments(), this.#nextIndex);
        if (start === undefined) {
          if (!this.#streaming) return undefined;
          await this.#wait();
          continue;
        }
        await this.#enter(start);
        continue;
      }
      const cursor = this.#cursor!;
      let limit = segment.size;
      const stop = this.#stop;
      if (stop && stop.segment === segment) limit = Math.min(limit, stop.size);
      if (cursor.position < limit) {
        const into = this.#spare.pop();
        const read = await cursor.read(limit, this.#nextIndex, into);
        if (this.#closed) return undefined;
        if (read.status === 'incomplete') throw corruptSegment(segment.path, cursor.position, 'record cut short');
        const frames = read.frames;
        if (frames.byteLength > 0) {
          this.#nextIndex = read.lastIndex + 1n;
          if (cursor.readsInto && isWholeReadBuffer(read.buffer)) this.#lent.set(frames.buffer, read.buffer);
          if (into !== undefined && read.buffer !== into) this.#spare.push(into);
          return frames;
        }
        // Nothing handed out: the memory read into (if it was ours) is free again.
        if (into !== undefined) this.#spare.push(into);
        continue;
      }
      if (stop && stop.segment === segment) return undefined;
      const segments = source.segments();
      const at = segments.indexOf(segment);
      if (at < 0) {
        // Our segment was deleted under us (reclaimed): positions are
        // re-resolved, and a reader that may have missed messages fails.
        await this.#leave();
        continue;
      }
      const next = segments[at + 1];
      if (next !== undefined) {
        await this.#leave();
        await this.#enter(next);
        continue;
      }
      const failure = source.failure();
      if (failure) throw failure;
      if (!this.#streaming) return undefined;
      await this.#wait();
    }
  }

  async #enter(segment: SegmentState): Promise<void> {
    try {
      this.#cursor = await SegmentCursor.open(segment.path, segment.format, segment.dataStart, this.#source.maxDataLength, this.#source.fs);
      this.#segment = segment;
      if (this.#closed) await this.#release();
    } catch (error) {
      if (!isNotFound(error)) throw error;
      // Deleted between listing and opening: resolve the position again.
      await this.#source.refresh();
      if (!this.#source.segments().includes(segment)) return;
      throw error;
    }
  }

  async #leave(): Promise<void> {
    const cursor = this.#cursor;
    this.#cursor = undefined;
    this.#segment = undefined;
    await cursor?.close();
  }

  #wait(): Promise<void> {
    if (this.#source.isClosed()) {
      // Nothing more can come: end like close() would (never spin on a closed topic).
      this.#closed = true;
      return Promise.resolve();
    }
    // A reader at the end may wait for long: it holds no spare memory meanwhile.
    this.#waiting = true;
    this.#spare.length = 0;
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        this.#source.removeWaiter(wake);
        this.#wake = undefined;
        this.#waiting = false;
        resolve();
      };
      this.#wake = wake;
      this.#source.addWaiter(wake);
    });
  }

  async #release(): Promise<void> {
    this.#spare.length = 0;
    this.#source.detach(this);
    await this.#leave();
  }
}

const EMPTY = new Uint8Array(0);

/** Spare buffers a reader keeps for reuse: one being written out while the next is read, and one more. */
const MAX_SPARE = 2;

/**
 * Whether `buffer` is memory a chunk may be read into again: a full read's
 * buffer that is the whole of its memory (never a slice of memory shared
 * with anything else).
 */
function isWholeReadBuffer(buffer: Buffer): boolean {
  return buffer.byteLength === READ_SIZE && buffer.byteOffset === 0 && buffer.buffer.byteLength === READ_SIZE;
}
