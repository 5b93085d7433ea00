import { frameDataLength, frameIndex, MESSAGE_HEADER_SIZE } from '@msg/wire';
import { corruptSegment } from './errors.js';
import { nodeFileSystem, type FileHandle, type FileSystem } from './file-system.js';
import { checksum, isZero, readRecordHeader, RECORD_HEADER_SIZE, RECORD_TARGET_PAYLOAD, type SegmentFormat } from './format.js';

/** Bytes a cursor asks the OS for in one read (unless one record needs more). */
export const READ_SIZE = 1024 * 1024;

/** Outcome of one {@link SegmentCursor.read}. */
export interface CursorRead {
  /**
   * Frames (original encoding, back to back) with index >= the requested
   * index, in a buffer of their own (the caller may keep it). Empty when the
   * bytes read held only records below the requested index.
   */
  frames: Uint8Array;
  /** Index of the last frame in `frames`; 0n when `frames` is empty. */
  lastIndex: bigint;
  /**
   * The buffer the bytes were read into (`frames` is a view of it): the
   * buffer given to {@link SegmentCursor.read} when it was used, else a
   * fresh one (empty when nothing was read).
   */
  buffer: Buffer;
  /**
   * `'data'`: records were consumed (more may follow); `'end'`: the cursor
   * is at `limit`; `'incomplete'`: the bytes before `limit` end inside a
   * record (or are a zero-filled tail), which starts at {@link SegmentCursor.position}.
   */
  status: 'data' | 'end' | 'incomplete';
}

/**
 * What the cursor uses of a file handle beyond {@link FileHandle} when the
 * handle has it: a read into a buffer the caller gives, so that a reader can
 * reuse its buffers instead of allocating one per read. Resolves with the
 * bytes read, up to `target.byteLength` (fewer at the end of the file).
 */
interface ReadsInto {
  readInto(target: Uint8Array, position: number): Promise<number>;
}

function readsInto(fd: FileHandle): fd is FileHandle & ReadsInto {
  return typeof (fd as Partial<ReadsInto>).readInto === 'function';
}

/**
 * A forward-only reader over one segment file that checks every record it
 * hands out: for our format the header and payload checksums, for the
 * original's raw frames the length cap and increasing indexes. Any failure is
 * `CORRUPT_SEGMENT` naming the file and the record's byte offset, thrown
 * before a byte of that record is returned.
 */
export class SegmentCursor {
  readonly path: string;
  readonly format: SegmentFormat;
  readonly #fd: FileHandle;
  readonly #maxPayload: number;
  readonly #maxDataLength: number;
  #position: number;
  #lastIndex = 0n;
  /** Bytes the record at #position needs, when it did not fit the last read. */
  #need = 0;

  private constructor(path: string, format: SegmentFormat, fd: FileHandle, position: number, maxDataLength: number) {
    this.path = path;
    this.format = format;
    this.#fd = fd;
    this.#position = position;
    this.#maxDataLength = maxDataLength;
    this.#maxPayload = Math.max(RECORD_TARGET_PAYLOAD, MESSAGE_HEADER_SIZE + maxDataLength);
  }

  /**
   * Opens `path` for reading from byte `position` (the first record: 32 for
   * our format, 0 for the original's). Frames longer than `maxDataLength`
   * data bytes are corruption. The file is opened read-only through `fs`.
   */
  static async open(path: string, format: SegmentFormat, position: number, maxDataLength: number, fs: FileSystem = nodeFileSystem): Promise<SegmentCursor> {
    const fd = await fs.open(path, { readOnly: true });
    return new SegmentCursor(path, format, fd, position, maxDataLength);
  }

  /** Byte offset of the next record to read. */
  get position(): number {
    return this.#position;
  }

  /** Index of the last record or frame passed over, delivered or skipped (0n before any). */
  get lastIndex(): bigint {
    return this.#lastIndex;
  }

  /** Whether {@link read} can read into a buffer it is given (the file handle can). */
  get readsInto(): boolean {
    return readsInto(this.#fd);
  }

  /**
   * Reads records between {@link position} and byte `limit` (exclusive) and
   * returns the frames with index >= `fromIndex`, up to about
   * {@link READ_SIZE} bytes per call. With `into`, the bytes are read into
   * it when the file handle can and the read fits (see {@link readsInto}),
   * and the frames are a view of it; the caller must not use `into` for
   * anything else while it holds those frames. Every record is checked
   * either way.
   */
  async read(limit: number, fromIndex: bigint, into?: Buffer): Promise<CursorRead> {
    for (;;) {
      if (this.#position >= limit) return { frames: EMPTY, lastIndex: 0n, status: 'end', buffer: EMPTY_BUFFER };
      const want = Math.min(limit - this.#position, Math.max(READ_SIZE, this.#need));
      const { buffer, bytes } = await this.#readAt(this.#position, want, into);
      const got = bytes.byteLength;
      const result = this.format === 'v1' ? this.#parseRecords(bytes, got, fromIndex) : this.#parseFrames(bytes, got, fromIndex);
      if (result.consumed > 0) {
        this.#position += result.consumed;
        this.#need = 0;
        return { frames: result.frames, lastIndex: result.lastIndex, status: 'data', buffer };
      }
      // Nothing whole in what was read: either the record is larger than the
      // read (read again, larger), or it runs past `limit` (or the file).
      if (result.zeroTail) {
        if (await this.#zeroUntil(this.#position, limit)) return { frames: EMPTY, lastIndex: 0n, status: 'incomplete', buffer };
        throw corruptSegment(this.path, this.#position, this.format === 'v1' ? 'record header checksum mismatch' : 'frame index 0');
      }
      if (got < want || result.need > limit - this.#position) return { frames: EMPTY, lastIndex: 0n, status: 'incomplete', buffer };
      this.#need = result.need;
    }
  }

  /** Closes the file. */
  async close(): Promise<void> {
    await this.#fd.close();
  }

  #parseRecords(buffer: Buffer, length: number, fromIndex: bigint): Parsed {
    let at = 0;
    let out = 0;
    let lastIndex = 0n;
    const done = (need: number): Parsed => ({ consumed: at, frames: buffer.subarray(0, out), lastIndex, need, zeroTail: false });
    // A fault after the first record is reported on the next call, so the
    // records before it are handed out first.
    const fail = (reason: string): Parsed => {
      if (at > 0) return done(0);
      throw corruptSegment(this.path, this.#position, reason);
    };
    while (length - at >= RECORD_HEADER_SIZE) {
      const header = readRecordHeader(buffer, at);
      if (header === undefined) {
        if (at === 0 && isZero(buffer.subarray(0, length))) return { ...done(0), zeroTail: true };
        return fail('record header checksum mismatch');
      }
      if (header.payloadLength > this.#maxPayload) return fail(`record of ${header.payloadLength} bytes exceeds the limit`);
      if (header.firstIndex <= this.#lastIndex) return fail(`index ${header.firstIndex} does not follow ${this.#lastIndex}`);
      const payloadAt = at + RECORD_HEADER_SIZE;
      const end = payloadAt + header.payloadLength;
      if (end > length) return done(end - at);
      if (header.lastIndex >= fromIndex) {
        if (checksum(buffer.subarray(payloadAt, end)) !== header.payloadCrc) return fail('record checksum mismatch');
        let start = payloadAt;
        if (header.firstIndex < fromIndex) {
          start = this.#firstFrameFrom(buffer, payloadAt, end, header.lastIndex, fromIndex);
          if (start < 0) return fail('record payload does not match its header');
        }
        buffer.copyWithin(out, start, end);
        out += end - start;
        lastIndex = header.lastIndex;
      }
      this.#lastIndex = header.lastIndex;
      at = end;
    }
    return done(at === 0 ? RECORD_HEADER_SIZE : 0);
  }

  /**
   * Offset of the first frame with index >= fromIndex in a record's payload,
   * checking that the frames tile the payload and match its header; -1 if not.
   */
  #firstFrameFrom(buffer: Buffer, start: number, end: number, recordLast: bigint, fromIndex: bigint): number {
    let at = start;
    let previous = this.#lastIndex;
    let found = -1;
    while (at < end) {
      if (end - at < MESSAGE_HEADER_SIZE) return -1;
      const index = frameIndex(buffer, at);
      const frameEnd = at + MESSAGE_HEADER_SIZE + frameDataLength(buffer, at);
      if (index <= previous || frameEnd > end) return -1;
      if (found < 0 && index >= fromIndex) found = at;
      previous = index;
      at = frameEnd;
    }
    return previous === recordLast ? found : -1;
  }

  #parseFrames(buffer: Buffer, length: number, fromIndex: bigint): Parsed {
    let at = 0;
    let start = -1;
    let lastIndex = 0n;
    const done = (need: number): Parsed => ({ consumed: at, frames: start < 0 ? EMPTY : buffer.subarray(start, at), lastIndex, need, zeroTail: false });
    const fail = (reason: string): Parsed => {
      if (at > 0) return done(0);
      throw corruptSegment(this.path, this.#position, reason);
    };
    while (length - at >= MESSAGE_HEADER_SIZE) {
      if (at === 0 && isZero(buffer.subarray(0, length))) return { ...done(0), zeroTail: true };
      const dataLength = frameDataLength(buffer, at);
      if (dataLength > this.#maxDataLength) return fail(`frame data length ${dataLength} exceeds the limit of ${this.#maxDataLength} bytes`);
      const end = at + MESSAGE_HEADER_SIZE + dataLength;
      if (end > length) return done(end - at);
      const index = frameIndex(buffer, at);
      if (index <= this.#lastIndex) return fail(index === 0n ? 'frame index 0' : `index ${index} does not follow ${this.#lastIndex}`);
      if (index >= fromIndex) {
        if (start < 0) start = at;
        lastIndex = index;
      }
      this.#lastIndex = index;
      at = end;
    }
    return done(at === 0 ? MESSAGE_HEADER_SIZE : 0);
  }

  /**
   * Up to `length` bytes at `position` (fewer at the end of the file): read
   * into `into` when it fits and the handle can, else into a fresh buffer.
   * `bytes` is what was read, a view of `buffer`.
   */
  async #readAt(position: number, length: number, into?: Buffer): Promise<{ buffer: Buffer; bytes: Buffer }> {
    const fd = this.#fd;
    if (into !== undefined && length <= into.byteLength && readsInto(fd)) {
      const got = await fd.readInto(into.subarray(0, length), position);
      return { buffer: into, bytes: into.subarray(0, got) };
    }
    const read = await fd.read(position, length);
    const bytes = Buffer.isBuffer(read) ? read : Buffer.from(read.buffer, read.byteOffset, read.byteLength);
    return { buffer: bytes, bytes };
  }

  async #zeroUntil(from: number, limit: number): Promise<boolean> {
    for (let at = from; at < limit; ) {
      const { bytes } = await this.#readAt(at, Math.min(READ_SIZE, limit - at));
      if (bytes.byteLength === 0) return true;
      if (!isZero(bytes)) return false;
      at += bytes.byteLength;
    }
    return true;
  }
}

interface Parsed {
  consumed: number;
  frames: Uint8Array;
  lastIndex: bigint;
  /** Bytes needed at the first unconsumed position (when consumed is 0). */
  need: number;
  /** The first record header failed its checksum and everything read is zero. */
  zeroTail: boolean;
}

const EMPTY = new Uint8Array(0);
const EMPTY_BUFFER = Buffer.alloc(0);
