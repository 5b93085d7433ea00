import { basename, join } from 'node:path';
import { assertValidMessage, BrokerError, DEFAULT_MAX_DATA_LENGTH, isU64, MESSAGE_HEADER_SIZE, parseU64, type Message } from '@msg/wire';
import { corruptSegment, SegmentError } from './errors.js';
import { nodeFileSystem, type FileHandle, type FileLock, type FileSystem } from './file-system.js';
import { encodeFileHeader, encodeRecords, FILE_HEADER_SIZE, isZero, readRecordHeader, RECORD_HEADER_SIZE, type SegmentFormat } from './format.js';
import { readReclaimMark, removeStaleMarkTemp, writeReclaimMark } from './reclaim-mark.js';
import { dataStartOf, isNotFound, listSegmentFiles, probeSegment, scanSegment, type SegmentFile, type SegmentInfo, type SegmentProbe } from './segment.js';
import { READ_SIZE, SegmentCursor } from './segment-cursor.js';
import { TopicReader, type ReaderSource, type SegmentState, type TopicReaderOptions } from './topic-reader.js';

/** Default {@link TopicOptions.maxSegmentSize}: 10 MiB, the original's. */
export const DEFAULT_MAX_SEGMENT_SIZE = 10 * 1024 * 1024;
/** Default {@link TopicOptions.syncIntervalMs}. */
export const DEFAULT_SYNC_INTERVAL_MS = 100;
/** Default {@link TopicOptions.pollIntervalMs}: the original's reader poll. */
export const DEFAULT_POLL_INTERVAL_MS = 100;

/** Bytes of queued messages one write takes at most (a single larger batch is written whole). */
const MAX_WRITE_BYTES = 8 * 1024 * 1024;

/**
 * When an append is acknowledged relative to fsync:
 * - `'always'` (default): `append()` resolves after the data is written and
 *   fdatasync'ed. Concurrent appends share one write and one fsync (group
 *   commit). Nothing acknowledged is lost on a crash of the process or the
 *   machine.
 * - `'interval'`: resolves after the write; fsync follows within
 *   `syncIntervalMs`. A machine crash (power loss, kernel panic) can lose the
 *   last `syncIntervalMs` of acknowledged appends; a process crash loses
 *   nothing.
 * - `'never'`: resolves after the write and never fsyncs (the OS writes back
 *   when it likes). A machine crash can lose any amount of recent data, in
 *   any segment. For benchmarks and tests, or when another log (raft) can
 *   replay the data.
 */
export type SyncPolicy = 'always' | 'interval' | 'never';

/** What `open()` repaired; see {@link TopicOptions.onRecovery}. */
export interface RecoveryEvent {
  /**
   * `'torn-tail'`: the last segment ended inside a record (a write cut short
   * by a crash), in a zero-filled tail, or (beyond the owner's durable point,
   * see {@link TopicOpenOptions.durable}) in a record overlapping a zeroed
   * 512-byte sector; the file was truncated at `offset`.
   * `'empty-segment'`: the last segment held no whole record (a crash right
   * after it was created) and was deleted. `'reclaim-finished'`: a segment
   * below the reclaim mark, left by a crash during reclamation, was deleted.
   * `'rolled-back'`: {@link TopicOpenOptions.rollBackTo} cut the segment at
   * `offset` (or deleted it: offset 0) without reading what it dropped.
   */
  kind: 'torn-tail' | 'empty-segment' | 'reclaim-finished' | 'rolled-back';
  /** Path of the segment file. */
  segment: string;
  /** Byte offset where the dropped bytes began (0 for a deleted file). */
  offset: number;
  /** Bytes dropped. */
  bytesDropped: number;
}

/**
 * A point of a topic known to be durable: what {@link Topic.checkpoint}
 * returns, and what an owner hands back to {@link Topic.open} after a restart.
 */
export interface TopicCheckpoint {
  /** The topic's last index then (0n when empty). */
  lastIndex: bigint;
  /** File name (not path) of its active segment then; absent when it had none. */
  segment?: string;
  /** Bytes of that segment then (0 when there was none). */
  size: number;
}

/**
 * Options of {@link Topic.open}: what the owner knows to be durable. Give at
 * most one of the two.
 */
export interface TopicOpenOptions {
  /**
   * The last point the owner knows durable (its last checkpoint). Damage of
   * the last segment at or before it is `CORRUPT_SEGMENT`; beyond it, damage
   * with the shape a crash leaves (the file ends inside the record, or a
   * 512-byte aligned sector overlapping the record is all zero) is truncated
   * and reported. Without it, only damage that runs to the end of the file is
   * recovered (see the README's "Failure model").
   */
  durable?: TopicCheckpoint;
  /**
   * Roll the topic back to this checkpoint, without reading what follows it:
   * segments starting above `lastIndex` are deleted, the checkpoint's segment
   * is truncated to `size` (and fsynced), each reported as `'rolled-back'`.
   * For an owner that writes everything after the checkpoint again (a raft
   * state machine). What remains is durable: any damage in it is
   * `CORRUPT_SEGMENT`, and a checkpoint's segment shorter than `size` too.
   */
  rollBackTo?: TopicCheckpoint;
}

/** Options of a {@link Topic}. */
export interface TopicOptions {
  /**
   * Bytes at which the active segment is rolled: before a write, once the
   * active segment has reached this size, a new segment is started (a single
   * write is never split, so a segment can exceed it by one write). Default
   * {@link DEFAULT_MAX_SEGMENT_SIZE} (10 MiB).
   */
  maxSegmentSize?: number;
  /** See {@link SyncPolicy}. Default `'always'`. */
  sync?: SyncPolicy;
  /** Milliseconds between fsyncs under `sync: 'interval'`. Default 100. */
  syncIntervalMs?: number;
  /**
   * Milliseconds between checks of the folder by a waiting streaming reader
   * of a `readOnly` topic (whose writer is another process). Readers of the
   * writing topic are woken by its appends at once, without polling. Default 100.
   */
  pollIntervalMs?: number;
  /**
   * Called for each repair `open()` makes. Default: a process warning with
   * code `MSG_SEGMENTS_RECOVERY`.
   */
  onRecovery?: (event: RecoveryEvent) => void;
  /**
   * Largest message data accepted by `append()` and while reading, in bytes
   * (a larger length on disk is corruption). Default `DEFAULT_MAX_DATA_LENGTH`
   * of `@msg/wire` (16 MiB).
   */
  maxDataLength?: number;
  /**
   * Clock for segment creation times, which retention by age compares to
   * `now()` (ms since the epoch). Default `Date`.
   */
  clock?: { now(): number };
  /**
   * Open without writing: no lock, no recovery, no appends (`READ_ONLY`).
   * For reading a topic another process writes: streaming readers poll the
   * folder every `pollIntervalMs`, and an incomplete record at the end is
   * treated as not yet written. Such a reader sees what the writer has
   * written, whether or not the writer has fsynced it yet. Default `false`.
   */
  readOnly?: boolean;
  /**
   * The file system every file access goes through (default the real one,
   * {@link NodeFileSystem}, with its cross-process lock). A file system
   * without `lock` gets no lock: then make sure one `Topic` writes a folder.
   */
  fs?: FileSystem;
}

/** Retention limits for {@link Topic.enforceRetention}. */
export interface RetentionPolicy {
  /** Delete the oldest segments while the topic holds more than this many bytes. */
  maxBytes?: number;
  /** Delete segments sealed more than this many ms ago (by the topic's clock). */
  maxAgeMs?: number;
}

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed';

interface PendingWrite {
  messages: readonly Message[];
  bytes: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * A topic: a durable, segmented append-log of messages in one folder.
 * Segment files are named by the decimal index of their first message.
 *
 * One `Topic` writes a folder at a time (a lock file enforces it, across
 * processes too); any number of readers, in-process ({@link Topic.reader})
 * or in other processes (a `readOnly` Topic), read it.
 *
 * ```ts
 * const topic = new Topic('/var/lib/app/topics/7');
 * await topic.open();
 * await topic.append({ type: 1, topicID: 7n, index: 1n, data });
 * for await (const message of topic.reader(0n)) console.log(message.index);
 * await topic.close();
 * ```
 */
export class Topic {
  /** The topic's folder. */
  readonly dir: string;
  readonly #maxSegmentSize: number;
  readonly #sync: SyncPolicy;
  readonly #syncIntervalMs: number;
  readonly #pollIntervalMs: number;
  readonly #onRecovery: (event: RecoveryEvent) => void;
  readonly #maxDataLength: number;
  readonly #clock: { now(): number };
  readonly #readOnly: boolean;
  readonly #fs: FileSystem;
  readonly #source: ReaderSource;

  #state: State = 'new';
  #lock: FileLock | undefined;
  #segments: SegmentState[] = [];
  /** Reads below this index are reclaimed (0n: none). */
  #mark = 0n;
  /** Last visible (acknowledged) index. */
  #lastIndex = 0n;
  /** Last index accepted by append (queued or written). */
  #acceptedIndex = 0n;
  /** The active segment's file, open for writing (ours only). */
  #fd: FileHandle | undefined;
  /** Bytes written to the active segment (>= its visible size until fsync). */
  #writeEnd = 0;
  /** Whether written bytes await an fsync. */
  #dirty = false;
  /**
   * Under `'never'`: segments sealed without an fsync, with the handle that
   * wrote them (kept open until it has synced them), and whether the folder
   * awaits an fsync.
   */
  #unsyncedSealed: { path: string; handle: FileHandle }[] = [];
  #dirUnsynced = false;
  #failure: SegmentError | undefined;
  #queue: PendingWrite[] = [];
  #flushing: Promise<void> | undefined;
  /** Serializes every operation on the active file (writes, fsyncs, rolls, close). */
  #io: Promise<void> = Promise.resolve();
  /** Serializes reclamations. */
  #reclaiming: Promise<unknown> = Promise.resolve();
  #syncTimer: ReturnType<typeof setTimeout> | undefined;
  #pollTimer: ReturnType<typeof setTimeout> | undefined;
  #waiters = new Set<() => void>();
  #readers = new Set<TopicReader>();
  /** Read-only view: the tail cursor over the last segment and its suspect offset. */
  #tail: { segment: SegmentState; cursor: SegmentCursor } | undefined;
  #suspect: { path: string; offset: number } | undefined;
  #tailFailure: Error | undefined;
  #refreshing: Promise<boolean> | undefined;

  /** Describes a topic over `dir`; does no I/O (see {@link Topic.open}). */
  constructor(dir: string, options: TopicOptions = {}) {
    if (typeof dir !== 'string' || dir.length === 0) throw invalid('dir must be a non-empty string');
    this.dir = dir;
    this.#maxSegmentSize = positiveInteger('maxSegmentSize', options.maxSegmentSize ?? DEFAULT_MAX_SEGMENT_SIZE);
    const sync = options.sync ?? 'always';
    if (sync !== 'always' && sync !== 'interval' && sync !== 'never') throw invalid(`sync must be 'always', 'interval' or 'never', got ${String(sync)}`);
    this.#sync = sync;
    this.#syncIntervalMs = positiveInteger('syncIntervalMs', options.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS);
    this.#pollIntervalMs = positiveInteger('pollIntervalMs', options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS);
    this.#maxDataLength = options.maxDataLength ?? DEFAULT_MAX_DATA_LENGTH;
    if (!Number.isInteger(this.#maxDataLength) || this.#maxDataLength < 0 || this.#maxDataLength > 0xffff_ffff) {
      throw invalid(`maxDataLength must be an integer in 0..2^32-1, got ${String(options.maxDataLength)}`);
    }
    this.#onRecovery = options.onRecovery ?? defaultRecoveryReport;
    this.#clock = options.clock ?? Date;
    this.#readOnly = options.readOnly ?? false;
    this.#fs = options.fs ?? nodeFileSystem;
    this.#source = {
      maxDataLength: this.#maxDataLength,
      fs: this.#fs,
      segments: () => this.#segments,
      reclaimedBelow: () => this.#mark,
      firstAvailable: () => this.#segments[0]?.startIndex ?? this.#mark,
      addWaiter: (wake) => this.#addWaiter(wake),
      removeWaiter: (wake) => this.#waiters.delete(wake),
      refresh: async () => {
        if (this.#readOnly && this.#state === 'open') await this.#refresh();
      },
      failure: () => this.#tailFailure,
      detach: (reader) => this.#readers.delete(reader),
      isClosed: () => this.#state === 'closed',
    };
  }

  /**
   * Opens the topic. A writing topic creates the folder if missing, takes its
   * lock (`TOPIC_ALREADY_OPEN` if a live process holds it), finishes an
   * interrupted reclamation, and recovers the last segment: a torn last
   * record is truncated and a last segment without a whole record is
   * deleted, each reported through `onRecovery`. A record of the last
   * segment that fails its checksum is `CORRUPT_SEGMENT` (nothing is
   * repaired: that needs a person). Older segments are checked when read.
   *
   * What is recovered follows the owner's durable point, see
   * {@link TopicOpenOptions} (`durable`, `rollBackTo`).
   *
   * A `readOnly` topic only reads what is there. A second `open()` is
   * `ALREADY_OPEN`; after a failed open the object is closed.
   */
  async open(options: TopicOpenOptions = {}): Promise<void> {
    if (this.#state !== 'new') throw new SegmentError('ALREADY_OPEN');
    if (options.durable !== undefined && options.rollBackTo !== undefined) throw invalid('give durable or rollBackTo, not both');
    for (const point of [options.durable, options.rollBackTo]) if (point !== undefined) assertCheckpoint(point);
    this.#state = 'opening';
    try {
      if (this.#readOnly) {
        await this.#refresh();
      } else {
        await this.#fs.mkdir(this.dir);
        this.#lock = await this.#fs.lock?.(this.dir);
        await this.#recover(options);
      }
      this.#state = 'open';
    } catch (error) {
      this.#state = 'closed';
      await this.#closeFiles().catch(() => undefined);
      throw error;
    }
  }

  /**
   * Closes the topic: appends already queued are written (and synced under
   * `'interval'`), every reader of this topic is closed (a waiting read ends
   * at once), the lock is released. Later appends and a second `close()`
   * are `TOPIC_CLOSED`; closing a topic never opened is `NOT_OPEN`.
   */
  async close(): Promise<void> {
    if (this.#state === 'new' || this.#state === 'opening') throw new SegmentError('NOT_OPEN');
    if (this.#state !== 'open') throw new SegmentError('TOPIC_CLOSED');
    this.#state = 'closing';
    await this.#flushing;
    await this.#reclaiming.catch(() => undefined);
    if (this.#syncTimer) clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    try {
      await this.#serial(async () => {
        if (this.#sync !== 'never') await this.#syncActive();
      });
    } finally {
      await Promise.all([...this.#readers].map((reader) => reader.close()));
      this.#wakeAll();
      this.#state = 'closed';
      await this.#closeFiles();
    }
  }

  /** Same as {@link Topic.close}, but a no-op on a topic already closed or never opened. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#state === 'open') await this.close();
  }

  /** Index of the last acknowledged message; 0n when the topic is empty. */
  get lastIndex(): bigint {
    return this.#lastIndex;
  }

  /** Index of the first message still retained (the first segment's name); 0n when empty. */
  get firstIndex(): bigint {
    return this.#segments[0]?.startIndex ?? 0n;
  }

  /** Bytes of all segments (for the active one: bytes readers may see). */
  get size(): number {
    let total = 0;
    for (const segment of this.#segments) total += segment.size;
    return total;
  }

  /** Whether the topic was opened with `readOnly`. */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /** The segments, oldest first; the last is the active one. */
  segments(): SegmentInfo[] {
    return this.#segments.map((s) => ({ startIndex: s.startIndex, path: s.path, size: s.size, lastIndex: s.lastIndex }));
  }

  /**
   * Appends one message. Its index must be greater than every index appended
   * before (including appends still in flight), else `BrokerError`
   * `STALE_WRITE`; a message that does not fit the wire format is
   * `INVALID_MESSAGE`, data longer than `maxDataLength` is `FRAME_TOO_LARGE`.
   * Resolves when the message is durable under the topic's {@link SyncPolicy}
   * (and visible to readers). Do not modify `message.data` before then.
   * Failures of the disk reject with `WRITE_FAILED` and leave the topic
   * refusing appends until it is reopened.
   */
  async append(message: Message): Promise<void> {
    this.#assertWritable();
    this.#assertMessage(message);
    if (message.index <= this.#acceptedIndex) throw staleWrite(message.index, this.#acceptedIndex);
    this.#acceptedIndex = message.index;
    return this.#enqueue([message]);
  }

  /**
   * Appends messages (indexes strictly increasing, the first greater than
   * every index appended before) with one write and one fsync; all of them
   * or, on a validation error, none. An empty batch resolves at once.
   */
  async appendBatch(messages: readonly Message[]): Promise<void> {
    this.#assertWritable();
    if (messages.length === 0) return;
    let previous = this.#acceptedIndex;
    for (const message of messages) {
      this.#assertMessage(message);
      if (message.index <= previous) throw staleWrite(message.index, previous);
      previous = message.index;
    }
    this.#acceptedIndex = previous;
    return this.#enqueue([...messages]);
  }

  /**
   * Makes every acknowledged append durable now: an fdatasync of the active
   * segment if anything is unsynced, and under `'never'` also of the
   * segments sealed since the last `sync()` and of the folder (new segment
   * files). Useful under `'interval'` or `'never'` before recording
   * elsewhere that the data is safe.
   */
  async sync(): Promise<void> {
    await this.checkpoint();
  }

  /**
   * Makes every acknowledged append durable (as {@link Topic.sync}: through
   * the handles that wrote them, the segments rolled away since the last
   * checkpoint included, and the folder when segments were created) and
   * resolves with the point that is now durable: the last index and where
   * the active segment ends. Hand it to `open({ durable })` or
   * `open({ rollBackTo })` after a restart. A failed fsync fails the topic
   * (`WRITE_FAILED`, for good: it is never retried, since the data it
   * covered may be lost whatever a later fsync says).
   */
  async checkpoint(): Promise<TopicCheckpoint> {
    this.#assertWritable();
    await this.#flushing;
    return this.#serial(async () => {
      if (this.#failure) throw this.#failure;
      try {
        await this.#syncSealed();
      } catch (error) {
        throw this.#fail(error);
      }
      await this.#syncActive();
      const active = this.#segments.at(-1);
      return active ? { lastIndex: this.#lastIndex, segment: basename(active.path), size: active.size } : { lastIndex: this.#lastIndex, size: 0 };
    });
  }

  /**
   * The disk failure that failed the topic (a `WRITE_FAILED` error whose
   * `cause` is the file system's error), or `undefined`. Once set, every
   * append, sync, checkpoint and reclamation rejects with it.
   */
  get failure(): SegmentError | undefined {
    return this.#failure;
  }

  /**
   * A reader from `fromIndex` (the first message whose index is >=
   * `fromIndex`). No I/O until it is iterated; see {@link TopicReader}.
   */
  reader(fromIndex: bigint, options: TopicReaderOptions = {}): TopicReader {
    this.#assertOpen();
    if (!isU64(fromIndex)) throw invalid(`fromIndex must be a u64 bigint, got ${String(fromIndex)}`);
    const reader = new TopicReader(this.#source, fromIndex, options);
    this.#readers.add(reader);
    return reader;
  }

  /**
   * Deletes whole segments all of whose messages have indexes < `index`,
   * oldest first, never the active segment. Returns how many were deleted.
   * Readers that later ask for a deleted index get `SEGMENT_RECLAIMED`.
   * Crash-safe: the new first index is recorded durably before any file is
   * deleted, and `open()` finishes an interrupted deletion.
   */
  async reclaimBefore(index: bigint): Promise<number> {
    this.#assertWritable();
    if (!isU64(index)) throw invalid(`index must be a u64 bigint, got ${String(index)}`);
    return this.#exclusive(() => {
      let count = 0;
      while (count < this.#segments.length - 1 && this.#segments[count]!.lastIndex < index) count++;
      return this.#deletePrefix(count);
    });
  }

  /**
   * Deletes the oldest segments (never the active one) while the topic is
   * larger than `maxBytes` or the segment was sealed more than `maxAgeMs`
   * ago (by the topic's clock: a segment is sealed when the next one is
   * created; for the original's segments, their file modification time).
   * Returns how many were deleted; crash-safe like {@link Topic.reclaimBefore}.
   */
  async enforceRetention(policy: RetentionPolicy): Promise<number> {
    this.#assertWritable();
    const { maxBytes, maxAgeMs } = policy;
    if (maxBytes !== undefined && !(Number.isFinite(maxBytes) && maxBytes >= 0)) throw invalid(`maxBytes must be >= 0, got ${String(maxBytes)}`);
    if (maxAgeMs !== undefined && !(Number.isFinite(maxAgeMs) && maxAgeMs >= 0)) throw invalid(`maxAgeMs must be >= 0, got ${String(maxAgeMs)}`);
    return this.#exclusive(() => {
      const now = this.#clock.now();
      let total = this.size;
      let count = 0;
      while (count < this.#segments.length - 1) {
        const segment = this.#segments[count]!;
        const tooBig = maxBytes !== undefined && total > maxBytes;
        const tooOld = maxAgeMs !== undefined && segment.sealedAt !== undefined && now - segment.sealedAt > maxAgeMs;
        if (!tooBig && !tooOld) break;
        total -= segment.size;
        count++;
      }
      return this.#deletePrefix(count);
    });
  }

  // ---- appending ---------------------------------------------------------

  #assertOpen(): void {
    if (this.#state === 'new' || this.#state === 'opening') throw new SegmentError('NOT_OPEN');
    if (this.#state !== 'open') throw new SegmentError('TOPIC_CLOSED');
  }

  #assertWritable(): void {
    this.#assertOpen();
    if (this.#readOnly) throw new SegmentError('READ_ONLY');
    if (this.#failure) throw this.#failure;
  }

  #assertMessage(message: Message): void {
    assertValidMessage(message);
    if (message.data.byteLength > this.#maxDataLength) {
      throw new BrokerError('FRAME_TOO_LARGE', {
        message: `frame too large: data length ${message.data.byteLength} exceeds the limit of ${this.#maxDataLength} bytes`,
      });
    }
  }

  #enqueue(messages: readonly Message[]): Promise<void> {
    let bytes = 0;
    for (const message of messages) bytes += message.data.byteLength;
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ messages, bytes, resolve, reject });
      this.#scheduleFlush();
    });
  }

  #scheduleFlush(): void {
    if (this.#flushing) return;
    this.#flushing = new Promise<void>((resolve) => {
      // Start on the next turn of the event loop so every append made in
      // this one (64 concurrent writers resuming together) joins the write.
      setImmediate(() => {
        void this.#flushLoop().finally(() => {
          this.#flushing = undefined;
          resolve();
          if (this.#queue.length > 0) this.#scheduleFlush();
        });
      });
    });
  }

  async #flushLoop(): Promise<void> {
    while (this.#queue.length > 0) {
      let bytes = 0;
      let take = 0;
      while (take < this.#queue.length && (take === 0 || bytes + this.#queue[take]!.bytes <= MAX_WRITE_BYTES)) {
        bytes += this.#queue[take]!.bytes;
        take++;
      }
      const batch = this.#queue.splice(0, take);
      try {
        if (this.#failure) throw this.#failure;
        await this.#serial(() => this.#write(batch));
      } catch (error) {
        for (const item of batch) item.reject(error);
        continue;
      }
      for (const item of batch) item.resolve();
    }
  }

  async #write(batch: readonly PendingWrite[]): Promise<void> {
    const messages = batch.length === 1 ? batch[0]!.messages : batch.flatMap((item) => item.messages);
    const first = messages[0]!;
    const last = messages[messages.length - 1]!;
    try {
      const active = this.#segments.at(-1);
      if (this.#fd === undefined || active === undefined || active.format !== 'v1' || this.#writeEnd >= this.#maxSegmentSize) {
        await this.#roll(first.index);
      }
      const bytes = encodeRecords(messages);
      await this.#fd!.append(bytes);
      this.#writeEnd += bytes.byteLength;
      this.#dirty = true;
      if (this.#sync === 'always') await this.#syncActive();
      else if (this.#sync === 'interval') this.#scheduleSync();
    } catch (error) {
      throw this.#fail(error);
    }
    const active = this.#segments.at(-1)!;
    active.size = this.#writeEnd;
    active.lastIndex = last.index;
    this.#lastIndex = last.index;
    this.#wakeAll();
  }

  /** Starts a new segment named `startIndex`; the previous one becomes sealed. */
  async #roll(startIndex: bigint): Promise<void> {
    if (this.#fd) {
      if (this.#sync !== 'never') await this.#syncActive();
      const fd = this.#fd;
      this.#fd = undefined;
      // Under 'never' the handle stays open until a sync or checkpoint has synced it.
      if (this.#sync === 'never' && this.#dirty) this.#unsyncedSealed.push({ path: this.#segments.at(-1)!.path, handle: fd });
      else await fd.close();
    }
    const createdAt = this.#clock.now();
    const path = join(this.dir, String(startIndex));
    if ((await this.#fs.stat(path)) !== undefined) throw new Error(`segment file ${path} already exists`);
    const fd = await this.#fs.open(path);
    this.#fd = fd;
    await fd.append(encodeFileHeader({ createdAt, prevLastIndex: this.#lastIndex }));
    if (this.#sync !== 'never') await this.#fs.syncDir(this.dir);
    else this.#dirUnsynced = true;
    const previous = this.#segments.at(-1);
    if (previous) previous.sealedAt = createdAt;
    this.#segments.push({
      startIndex,
      path,
      format: 'v1',
      dataStart: FILE_HEADER_SIZE,
      size: FILE_HEADER_SIZE,
      lastIndex: 0n,
      createdAt,
      sealedAt: undefined,
    });
    this.#writeEnd = FILE_HEADER_SIZE;
    this.#dirty = true;
    this.#wakeAll();
  }

  /** Under `'never'`: fsyncs the segments sealed unsynced (a reclaimed one is skipped) and the folder. */
  async #syncSealed(): Promise<void> {
    while (this.#unsyncedSealed.length > 0) {
      // Through the handle that wrote it (a reclaimed file is synced all the same: harmless).
      const { handle } = this.#unsyncedSealed[0]!;
      await handle.sync();
      this.#unsyncedSealed.shift();
      await handle.close();
    }
    if (this.#dirUnsynced) {
      this.#dirUnsynced = false;
      await this.#fs.syncDir(this.dir);
    }
  }

  async #syncActive(): Promise<void> {
    if (!this.#dirty || this.#fd === undefined) return;
    try {
      await this.#fd.sync();
    } catch (error) {
      throw this.#fail(error);
    }
    this.#dirty = false;
  }

  #scheduleSync(): void {
    if (this.#syncTimer) return;
    this.#syncTimer = setTimeout(() => {
      this.#syncTimer = undefined;
      this.#serial(() => this.#syncActive()).catch(() => undefined); // the failure is kept in #failure
    }, this.#syncIntervalMs);
    this.#syncTimer.unref();
  }

  /** Records a disk failure: the topic refuses appends, syncs, checkpoints and reclamations from now on. */
  #fail(error: unknown): SegmentError {
    if (error instanceof SegmentError && error.code === 'WRITE_FAILED') return error;
    this.#failure ??= new SegmentError('WRITE_FAILED', { cause: error, message: `write failed in ${this.dir}: ${(error as Error).message ?? String(error)}` });
    return this.#failure;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#io.then(fn);
    this.#io = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#reclaiming.then(fn, fn);
    this.#reclaiming = run.catch(() => undefined);
    return run;
  }

  // ---- reclamation -------------------------------------------------------

  async #deletePrefix(count: number): Promise<number> {
    if (count === 0 || this.#state !== 'open') return 0;
    if (this.#failure) throw this.#failure;
    const doomed = this.#segments.slice(0, count);
    const keep = this.#segments[count]!;
    try {
      await writeReclaimMark(this.dir, keep.startIndex, this.#fs);
      this.#mark = keep.startIndex;
      if (this.#acceptedIndex < keep.startIndex - 1n) this.#acceptedIndex = keep.startIndex - 1n;
      this.#segments.splice(0, count);
      this.#wakeAll();
      for (const segment of doomed) await this.#fs.remove(segment.path);
      await this.#fs.syncDir(this.dir);
    } catch (error) {
      throw this.#fail(error);
    }
    return count;
  }

  // ---- opening -----------------------------------------------------------

  async #recover(options: TopicOpenOptions): Promise<void> {
    const fs = this.#fs;
    await removeStaleMarkTemp(this.dir, fs);
    this.#mark = await readReclaimMark(this.dir, fs);
    let files = await listSegmentFiles(this.dir, fs);
    if (this.#mark > 0n && files.some((f) => f.startIndex < this.#mark)) {
      if (!files.some((f) => f.startIndex >= this.#mark)) {
        throw corruptSegment(join(this.dir, '.first-index'), 0, `reclaim mark ${this.#mark} is beyond every segment`);
      }
      for (const file of files.filter((f) => f.startIndex < this.#mark)) {
        const { size } = await probeSegment(file.path, fs);
        await fs.remove(file.path);
        this.#onRecovery({ kind: 'reclaim-finished', segment: file.path, offset: 0, bytesDropped: size });
      }
      await fs.syncDir(this.dir);
      files = files.filter((f) => f.startIndex >= this.#mark);
    }
    if (options.rollBackTo) files = await this.#rollBack(files, options.rollBackTo);
    const durable = options.rollBackTo ?? options.durable;
    const probes = await Promise.all(files.map((file) => probeSegment(file.path, fs)));

    // The last segment: truncate a torn tail beyond the durable point, drop it if no whole record remains.
    let tail: { end: number; lastIndex: bigint } | undefined;
    while (files.length > 0 && tail === undefined) {
      const file = files.at(-1)!;
      const { size, probe } = probes.at(-1)!;
      const durableEnd = durableEndOf(file, durable);
      if (probe.kind === 'damaged') throw corruptSegment(file.path, 0, probe.reason);
      if (durableEnd !== undefined && Number.isFinite(durableEnd) && size < durableEnd) {
        throw corruptSegment(file.path, size, `the segment ends before its durable size ${durableEnd}`);
      }
      let end = 0;
      let lastIndex = 0n;
      if (probe.kind === 'partial') {
        if (durableEnd !== undefined && durableEnd > 0) throw corruptSegment(file.path, 0, 'file header cut short in a durable segment');
      } else {
        const scan = await scanSegment(file.path, probe.kind, size, { maxDataLength: this.#maxDataLength, keepDamage: true, fs });
        end = scan.end;
        lastIndex = scan.lastIndex;
        if (scan.damage) {
          // Recovered only beyond the durable point, and only with the shape of a crash (a zeroed sector).
          if (durableEnd === undefined || end < durableEnd || !(await this.#overlapsZeroSector(file.path, probe.kind, end, size))) throw scan.damage;
        } else if (scan.torn && durableEnd !== undefined && end < durableEnd) {
          throw corruptSegment(file.path, end, 'record cut short in the durable part of the segment');
        }
      }
      const dataStart = dataStartOf(probe.kind === 'partial' ? 'legacy' : probe.kind);
      if (end > dataStart) {
        if (end < size) {
          const handle = await fs.open(file.path);
          try {
            await handle.truncate(end);
            await handle.sync();
          } finally {
            await handle.close();
          }
          this.#onRecovery({ kind: 'torn-tail', segment: file.path, offset: end, bytesDropped: size - end });
        }
        tail = { end, lastIndex };
      } else {
        if (durableEnd === Infinity) throw corruptSegment(file.path, end, 'a durable segment holds no record');
        await fs.remove(file.path);
        await fs.syncDir(this.dir);
        this.#onRecovery({ kind: 'empty-segment', segment: file.path, offset: 0, bytesDropped: size });
        files.pop();
        probes.pop();
      }
    }

    const segments: SegmentState[] = [];
    for (let i = 0; i < files.length; i++) {
      segments.push(await this.#describe(files[i]!.startIndex, files[i]!.path, probes[i]!, probes[i + 1], i === files.length - 1 ? tail : undefined));
    }
    this.#segments = segments;
    const active = segments.at(-1);
    this.#lastIndex = active?.lastIndex ?? 0n;
    // Indexes below the reclaim mark are stale even when no segment is left.
    this.#acceptedIndex = this.#mark > this.#lastIndex + 1n ? this.#mark - 1n : this.#lastIndex;
    if (active?.format === 'v1') {
      this.#fd = await fs.open(active.path);
      this.#writeEnd = active.size;
      if ((await this.#fd.size()) !== active.size) throw corruptSegment(active.path, active.size, 'the segment changed while it was opened');
    }
  }

  /**
   * {@link TopicOpenOptions.rollBackTo}: deletes the segments that start after
   * the checkpoint and truncates the checkpoint's segment to its size, without
   * reading what goes. Returns the files left.
   */
  async #rollBack(files: SegmentFile[], to: TopicCheckpoint): Promise<SegmentFile[]> {
    const kept: SegmentFile[] = [];
    let removed = false;
    for (const file of files) {
      const isCheckpointSegment = to.segment !== undefined && basename(file.path) === to.segment;
      if (!isCheckpointSegment && file.startIndex > to.lastIndex) {
        const size = (await this.#fs.stat(file.path))?.size ?? 0;
        await this.#fs.remove(file.path);
        removed = true;
        this.#onRecovery({ kind: 'rolled-back', segment: file.path, offset: 0, bytesDropped: size });
        continue;
      }
      kept.push(file);
      if (!isCheckpointSegment) continue;
      const handle = await this.#fs.open(file.path);
      try {
        const size = await handle.size();
        if (size > to.size) {
          await handle.truncate(to.size);
          await handle.sync();
          this.#onRecovery({ kind: 'rolled-back', segment: file.path, offset: to.size, bytesDropped: size - to.size });
        }
      } finally {
        await handle.close();
      }
    }
    if (removed) await this.#fs.syncDir(this.dir);
    return kept;
  }

  /**
   * Whether some 512-byte sector at a multiple of 512 that overlaps the
   * damaged record at `offset` is all zero (the part of it inside the file):
   * the shape of a write a crash left unfinished (delayed allocation, a
   * sector never written), as opposed to a bit flip. Reads in bounded chunks.
   */
  async #overlapsZeroSector(path: string, format: SegmentFormat, offset: number, fileSize: number): Promise<boolean> {
    const handle = await this.#fs.open(path, { readOnly: true });
    try {
      // The record's extent: its header's length when the header verifies, else the header alone.
      const headerSize = format === 'v1' ? RECORD_HEADER_SIZE : MESSAGE_HEADER_SIZE;
      const head = await handle.read(offset, headerSize);
      let extent = headerSize;
      if (head.byteLength === headerSize) {
        if (format === 'v1') {
          const header = readRecordHeader(head, 0);
          if (header !== undefined) extent += header.payloadLength;
        } else {
          const dataLength = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(18);
          if (dataLength <= this.#maxDataLength) extent += dataLength;
        }
      }
      const end = Math.min(fileSize, offset + extent);
      const stop = Math.ceil(end / SECTOR) * SECTOR;
      for (let at = offset - (offset % SECTOR); at < stop; at += READ_SIZE) {
        const want = Math.min(READ_SIZE, stop - at);
        const bytes = await handle.read(at, want);
        for (let sector = 0; sector < bytes.byteLength; sector += SECTOR) {
          if (isZero(bytes.subarray(sector, sector + SECTOR))) return true;
        }
        if (bytes.byteLength < want) break;
      }
      return false;
    } finally {
      await handle.close();
    }
  }

  /** Builds the state of a segment from its probe and its successor's. */
  async #describe(
    startIndex: bigint,
    path: string,
    { size, mtimeMs, probe }: SegmentProbe,
    next: SegmentProbe | undefined,
    tail: { end: number; lastIndex: bigint } | undefined,
  ): Promise<SegmentState> {
    if (probe.kind === 'damaged') throw corruptSegment(path, 0, probe.reason);
    if (probe.kind === 'partial' && size > 0) throw corruptSegment(path, 0, 'file header cut short');
    const format: SegmentFormat = probe.kind === 'v1' ? 'v1' : 'legacy';
    let end = size;
    let lastIndex: bigint;
    if (tail) {
      end = tail.end;
      lastIndex = tail.lastIndex;
    } else if (next?.probe.kind === 'v1') {
      lastIndex = next.probe.header.prevLastIndex;
    } else if (size === 0) {
      lastIndex = 0n;
    } else {
      const scan = await scanSegment(path, format, size, { maxDataLength: this.#maxDataLength, headersOnly: true });
      if (scan.torn) throw corruptSegment(path, scan.end, 'sealed segment ends inside a record');
      lastIndex = scan.lastIndex;
    }
    return {
      startIndex,
      path,
      format,
      dataStart: size === 0 ? 0 : dataStartOf(format),
      size: end,
      lastIndex,
      createdAt: probe.kind === 'v1' ? probe.header.createdAt : undefined,
      sealedAt: next === undefined ? undefined : next.probe.kind === 'v1' ? next.probe.header.createdAt : mtimeMs,
    };
  }

  async #closeFiles(): Promise<void> {
    if (this.#pollTimer) clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    const fd = this.#fd;
    this.#fd = undefined;
    const tail = this.#tail;
    this.#tail = undefined;
    const lock = this.#lock;
    this.#lock = undefined;
    const sealed = this.#unsyncedSealed.splice(0);
    try {
      await Promise.allSettled(sealed.map(({ handle }) => handle.close()));
      await fd?.close();
      await tail?.cursor.close();
    } finally {
      await lock?.release();
    }
  }

  // ---- waking readers ----------------------------------------------------

  #addWaiter(wake: () => void): void {
    // While closing, a waiter is registered like any other: close() ends the
    // readers and wakes them. Waking it at once instead would let a reader
    // spin on microtasks and starve the close it waits for.
    if (this.#state === 'closed') {
      queueMicrotask(wake);
      return;
    }
    this.#waiters.add(wake);
    if (this.#readOnly) this.#schedulePoll();
  }

  #wakeAll(): void {
    if (this.#waiters.size === 0) return;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  // ---- read-only view ----------------------------------------------------

  #schedulePoll(): void {
    if (this.#pollTimer || this.#state !== 'open') return;
    this.#pollTimer = setTimeout(() => {
      this.#pollTimer = undefined;
      this.#refresh().then(
        (changed) => {
          if (changed || this.#tailFailure) this.#wakeAll();
          if (this.#waiters.size > 0) this.#schedulePoll();
        },
        (error: unknown) => {
          this.#tailFailure ??= error instanceof Error ? error : new Error(String(error));
          this.#wakeAll();
        },
      );
    }, this.#pollIntervalMs);
  }

  /** Re-reads the folder (read-only view). Resolves whether anything changed. */
  #refresh(): Promise<boolean> {
    this.#refreshing ??= this.#doRefresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #doRefresh(): Promise<boolean> {
    const files = await listSegmentFiles(this.dir, this.#fs);
    // The mark is read after the listing: a segment missing from the listing
    // was deleted after the mark covering it was written.
    const mark = await readReclaimMark(this.dir, this.#fs);
    const previous = this.#segments;
    const known = new Map(previous.map((s) => [s.path, s]));
    const next: SegmentState[] = [];
    for (let i = 0; i < files.length; i++) {
      const file = files[i]!;
      const isLast = i === files.length - 1;
      let state = known.get(file.path);
      if (state === undefined) {
        const probed = await probeOrMissing(file.path, this.#fs);
        if (probed === undefined) continue;
        if (isLast && probed.probe.kind === 'partial') break; // being created
        const after = isLast ? undefined : await probeOrMissing(files[i + 1]!.path, this.#fs);
        // A new last segment starts with nothing visible; #scanTail reads it.
        const empty = isLast ? { end: dataStartOf(probed.probe.kind === 'v1' ? 'v1' : 'legacy'), lastIndex: 0n } : undefined;
        state = await this.#describe(file.startIndex, file.path, probed, after, empty);
      }
      next.push(state);
    }
    let changed = mark !== this.#mark || next.length !== previous.length || next.some((s, i) => s !== previous[i]);
    // Catch up on the segment the tail cursor was on (sealed now, or still
    // the last) and on the last segment.
    for (let i = 0; i < next.length; i++) {
      const state = next[i]!;
      const isLast = i === next.length - 1;
      if (!isLast && this.#tail?.segment !== state) continue;
      const before = state.size;
      const { size, lastIndex } = await this.#scanTail(state, !isLast);
      state.size = size;
      if (lastIndex > state.lastIndex) state.lastIndex = lastIndex;
      if (size !== before) changed = true;
    }
    this.#segments = next;
    this.#mark = mark;
    this.#lastIndex = next.at(-1)?.lastIndex ?? 0n;
    return changed;
  }

  /**
   * Reads the new whole records of a segment of the read-only view from its
   * visible end. An incomplete record waits; a checksum failure at the end of
   * the last segment is given one more poll (a write may be in progress).
   */
  async #scanTail(state: SegmentState, sealed: boolean): Promise<{ size: number; lastIndex: bigint }> {
    if (this.#tail?.segment !== state) {
      await this.#tail?.cursor.close();
      this.#tail = undefined;
      const cursor = await SegmentCursor.open(state.path, state.format, state.dataStart, this.#maxDataLength, this.#fs);
      this.#tail = { segment: state, cursor };
      // Skip what is already visible without re-checking it.
      if (state.size > state.dataStart) await skipTo(cursor, state.size);
    }
    const { cursor } = this.#tail;
    let fileSize: number;
    try {
      fileSize = (await probeSegment(state.path, this.#fs)).size;
    } catch (error) {
      if (isNotFound(error)) return { size: state.size, lastIndex: state.lastIndex };
      throw error;
    }
    let lastIndex = state.lastIndex;
    try {
      for (;;) {
        const read = await cursor.read(fileSize, 0n);
        if (read.status === 'data') {
          if (read.lastIndex > lastIndex) lastIndex = read.lastIndex;
          this.#suspect = undefined;
          continue;
        }
        if (read.status === 'incomplete' && sealed) throw corruptSegment(state.path, cursor.position, 'sealed segment ends inside a record');
        break;
      }
    } catch (error) {
      const suspect = { path: state.path, offset: cursor.position };
      const again = this.#suspect?.path === suspect.path && this.#suspect.offset === suspect.offset;
      if (sealed || again || !(error instanceof SegmentError && error.code === 'CORRUPT_SEGMENT')) {
        this.#tailFailure = error as Error;
      } else {
        this.#suspect = suspect;
      }
    }
    return { size: cursor.position, lastIndex };
  }
}

async function probeOrMissing(path: string, fs: FileSystem): Promise<SegmentProbe | undefined> {
  try {
    return await probeSegment(path, fs);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/** Moves a fresh cursor to byte `offset` (a record boundary already checked). */
async function skipTo(cursor: SegmentCursor, offset: number): Promise<void> {
  while (cursor.position < offset) {
    const read = await cursor.read(offset, 0n);
    if (read.status !== 'data') break;
  }
}

/** Bytes of the sectors the recovery rule looks at (see {@link TopicOpenOptions.durable}). */
const SECTOR = 512;

/**
 * How far segment `file` is durable by the owner's point `durable`:
 * `undefined` without one, `Infinity` for a segment before the point's,
 * its size for the point's segment, 0 after it.
 */
function durableEndOf(file: SegmentFile, durable: TopicCheckpoint | undefined): number | undefined {
  if (durable === undefined) return undefined;
  const start = durable.segment === undefined ? undefined : parseU64(durable.segment);
  if (start === undefined) return 0;
  if (file.startIndex < start) return Infinity;
  return file.startIndex === start ? durable.size : 0;
}

function assertCheckpoint(point: TopicCheckpoint): void {
  if (typeof point !== 'object' || point === null || !isU64(point.lastIndex)) throw invalid('a checkpoint needs a u64 lastIndex');
  if (!Number.isSafeInteger(point.size) || point.size < 0) throw invalid(`a checkpoint size must be a non-negative integer, got ${String(point.size)}`);
  if (point.segment !== undefined && (typeof point.segment !== 'string' || parseU64(point.segment) === undefined)) {
    throw invalid(`a checkpoint segment must be a segment file name, got ${String(point.segment)}`);
  }
}

function staleWrite(index: bigint, last: bigint): BrokerError {
  return new BrokerError('STALE_WRITE', { cause: new Error(`index ${index} is not greater than ${last}`) });
}

function invalid(message: string): SegmentError {
  return new SegmentError('INVALID_ARGUMENT', { message: `invalid argument: ${message}` });
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw invalid(`${name} must be a positive integer, got ${String(value)}`);
  return value;
}

function defaultRecoveryReport(event: RecoveryEvent): void {
  process.emitWarning(`${event.kind}: dropped ${event.bytesDropped} bytes at offset ${event.offset} of ${event.segment}`, {
    code: 'MSG_SEGMENTS_RECOVERY',
  });
}
