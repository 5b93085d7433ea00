import { basename, join } from 'node:path';
import { assertValidMessage, BrokerError, DEFAULT_MAX_DATA_LENGTH, frameDataLength, isU64, MAX_U64, MESSAGE_HEADER_SIZE, type Message } from '@msg/wire';
import { corruptSegment, SegmentError } from './errors.js';
import { nodeFileSystem, type FileHandle, type FileLock, type FileSystem } from './file-system.js';
import { encodeFileHeader, encodeRecords, FILE_HEADER_SIZE, type IndexedFrame, type RecordItem } from './format.js';
import { writeReclaimMark } from './reclaim-mark.js';
import { assertCheckpoint, recoverTopic, type RecoveryEvent, type TopicCheckpoint, type TopicOpenOptions } from './recovery.js';
import type { SegmentInfo } from './segment.js';
import { TopicReader, type ReaderSource, type SegmentState, type TopicReaderOptions } from './topic-reader.js';
import { TopicView } from './topic-view.js';

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
  messages: readonly RecordItem[];
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
  /** The fsyncs of the checkpoints under way (never rejects): a handle they use is not closed before they end. */
  #syncing: Promise<void> = Promise.resolve();
  /** Serializes every operation on the active file (writes, fsyncs, rolls, close). */
  #io: Promise<void> = Promise.resolve();
  /** Serializes reclamations. */
  #reclaiming: Promise<unknown> = Promise.resolve();
  #syncTimer: ReturnType<typeof setTimeout> | undefined;
  #waiters = new Set<() => void>();
  #readers = new Set<TopicReader>();
  /** A `readOnly` topic's view of the folder another process writes. */
  readonly #view: TopicView | undefined;

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
        if (this.#view && this.#state === 'open') await this.#view.refresh();
      },
      failure: () => this.#view?.failure,
      detach: (reader) => this.#readers.delete(reader),
      isClosed: () => this.#state === 'closed',
    };
    this.#view = this.#readOnly
      ? new TopicView({
          dir,
          fs: this.#fs,
          maxDataLength: this.#maxDataLength,
          pollIntervalMs: this.#pollIntervalMs,
          isOpen: () => this.#state === 'open',
          hasWaiters: () => this.#waiters.size > 0,
          wakeAll: () => this.#wakeAll(),
          update: (segments, mark) => {
            this.#segments = segments;
            this.#mark = mark;
            this.#lastIndex = segments.at(-1)?.lastIndex ?? 0n;
          },
        })
      : undefined;
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
      if (this.#view) {
        await this.#view.refresh();
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
      await this.#syncing;
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
   * Appends whole frames as they are, each at its index (written into the
   * frame's index field; the rest of the frame is stored byte for byte), with
   * one write and one fsync, like {@link Topic.appendBatch}: indexes strictly
   * increasing (a u64 each), the first greater than every index appended
   * before, else `STALE_WRITE`; data longer than `maxDataLength` is
   * `FRAME_TOO_LARGE`; all of them or, on such an error, none. The frames are
   * not decoded or checked again: `Frame` is what `@msg/wire` validated. Do
   * not modify them before the promise settles.
   */
  async appendFrames(frames: readonly IndexedFrame[]): Promise<void> {
    this.#assertWritable();
    if (frames.length === 0) return;
    let previous = this.#acceptedIndex;
    for (const { index, frame } of frames) {
      const dataLength = frameDataLength(frame, 0);
      if (dataLength > this.#maxDataLength) throw this.#tooLarge(dataLength);
      if (typeof index !== 'bigint' || index > MAX_U64) throw new BrokerError('INVALID_MESSAGE', { message: `invalid message: index ${String(index)} is not a u64 bigint` });
      if (index <= previous) throw staleWrite(index, previous);
      previous = index;
    }
    this.#acceptedIndex = previous;
    return this.#enqueue([...frames]);
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
   * covered may be lost whatever a later fsync says). The point covers the
   * appends acknowledged before the call; later appends are not held back
   * while its fsyncs run (see {@link Topic.startCheckpoint}).
   */
  async checkpoint(): Promise<TopicCheckpoint> {
    return (await this.startCheckpoint()).durable;
  }

  /**
   * {@link Topic.checkpoint} in its two steps. Resolves, quickly and without
   * I/O, once the point is fixed: every append acknowledged before this call,
   * none made after it. Its `durable` resolves with that point once the
   * fsyncs that cover it are done (after those of an earlier checkpoint),
   * or rejects with the topic's `WRITE_FAILED`. Appends go on meanwhile: a
   * caller that records the point elsewhere (a broker's meta) need not hold
   * its writers back for the length of an fsync.
   */
  async startCheckpoint(): Promise<{ point: TopicCheckpoint; durable: Promise<TopicCheckpoint> }> {
    this.#assertWritable();
    await this.#flushing;
    const previous = this.#syncing;
    // Under the write lock: the point, and what must be synced to cover it.
    const captured = await this.#serial(async () => {
      if (this.#failure) throw this.#failure;
      const active = this.#segments.at(-1);
      const point: TopicCheckpoint = active ? { lastIndex: this.#lastIndex, segment: basename(active.path), size: active.size } : { lastIndex: this.#lastIndex, size: 0 };
      const sealed = this.#unsyncedSealed.splice(0);
      const dir = this.#dirUnsynced;
      this.#dirUnsynced = false;
      const fd = this.#dirty ? this.#fd : undefined;
      this.#dirty = false;
      return { point, sealed, dir, fd };
    });
    const durable = (async () => {
      await previous;
      if (this.#failure) throw this.#failure;
      try {
        // Through the handles that wrote them (a reclaimed file is synced all the same: harmless).
        for (const { handle } of captured.sealed) await handle.sync();
        if (captured.dir) await this.#fs.syncDir(this.dir);
        await captured.fd?.sync();
      } catch (error) {
        throw this.#fail(error);
      } finally {
        await Promise.allSettled(captured.sealed.map(({ handle }) => handle.close()));
      }
      return captured.point;
    })();
    this.#syncing = durable.then(
      () => undefined,
      () => undefined,
    );
    return { point: captured.point, durable };
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
    if (message.data.byteLength > this.#maxDataLength) throw this.#tooLarge(message.data.byteLength);
  }

  #tooLarge(dataLength: number): BrokerError {
    return new BrokerError('FRAME_TOO_LARGE', { message: `frame too large: data length ${dataLength} exceeds the limit of ${this.#maxDataLength} bytes` });
  }

  #enqueue(messages: readonly RecordItem[]): Promise<void> {
    let bytes = 0;
    for (const item of messages) bytes += 'frame' in item ? item.frame.byteLength - MESSAGE_HEADER_SIZE : item.data.byteLength;
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
      else {
        await this.#syncing; // a checkpoint may be syncing it
        await fd.close();
      }
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

  /** Recovers the folder (see `recovery.ts`) and opens the active segment for appending. */
  async #recover(options: TopicOpenOptions): Promise<void> {
    const { segments, mark } = await recoverTopic({ dir: this.dir, fs: this.#fs, maxDataLength: this.#maxDataLength, onRecovery: this.#onRecovery }, options);
    this.#segments = segments;
    this.#mark = mark;
    const active = segments.at(-1);
    this.#lastIndex = active?.lastIndex ?? 0n;
    // Indexes below the reclaim mark are stale even when no segment is left.
    this.#acceptedIndex = mark > this.#lastIndex + 1n ? mark - 1n : this.#lastIndex;
    if (active?.format === 'v1') {
      this.#fd = await this.#fs.open(active.path);
      this.#writeEnd = active.size;
      if ((await this.#fd.size()) !== active.size) throw corruptSegment(active.path, active.size, 'the segment changed while it was opened');
    }
  }

  async #closeFiles(): Promise<void> {
    const fd = this.#fd;
    this.#fd = undefined;
    const lock = this.#lock;
    this.#lock = undefined;
    const sealed = this.#unsyncedSealed.splice(0);
    try {
      await Promise.allSettled(sealed.map(({ handle }) => handle.close()));
      await fd?.close();
      await this.#view?.close();
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
    this.#view?.schedulePoll();
  }

  #wakeAll(): void {
    if (this.#waiters.size === 0) return;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
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
