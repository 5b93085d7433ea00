import { corruptSegment, SegmentError } from './errors.js';
import type { FileSystem } from './file-system.js';
import { readReclaimMark } from './reclaim-mark.js';
import { describeSegment } from './recovery.js';
import { dataStartOf, isNotFound, listSegmentFiles, probeSegment, type SegmentProbe } from './segment.js';
import { SegmentCursor } from './segment-cursor.js';
import type { SegmentState } from './topic-reader.js';

/** What a {@link TopicView} reads from and reports to: the read-only `Topic` that owns it. */
export interface ViewHost {
  /** The topic's folder. */
  readonly dir: string;
  readonly fs: FileSystem;
  /** Largest data length a frame may have, in bytes. */
  readonly maxDataLength: number;
  /** Milliseconds between polls while readers wait. */
  readonly pollIntervalMs: number;
  /** Whether the topic is open (no poll is scheduled otherwise). */
  isOpen(): boolean;
  /** Whether readers wait for more (polls go on while they do). */
  hasWaiters(): boolean;
  /** Wakes the waiting readers. */
  wakeAll(): void;
  /** Takes the segments (oldest first) and the reclaim mark the last refresh found. */
  update(segments: SegmentState[], mark: bigint): void;
}

/**
 * The read-only view of a topic another process writes (a `readOnly`
 * `Topic`): re-reads the folder on demand or by polling, follows the last
 * segment with a cursor, and treats an incomplete record at its end as not
 * yet written (a checksum failure there gets one more poll: a write may be in
 * progress). Takes no lock and writes nothing. The constructor does no I/O.
 */
export class TopicView {
  readonly #host: ViewHost;
  #segments: SegmentState[] = [];
  #mark = 0n;
  #pollTimer: ReturnType<typeof setTimeout> | undefined;
  /** The tail cursor over the last segment read, and the offset of a suspect record there. */
  #tail: { segment: SegmentState; cursor: SegmentCursor } | undefined;
  #suspect: { path: string; offset: number } | undefined;
  #failure: Error | undefined;
  #refreshing: Promise<boolean> | undefined;

  /** A view for `host`; does no I/O. */
  constructor(host: ViewHost) {
    this.#host = host;
  }

  /** A fault readers waiting for more must report (a corrupt tail), or `undefined`. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Stops polling and closes the tail cursor. */
  async close(): Promise<void> {
    if (this.#pollTimer) clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    const tail = this.#tail;
    this.#tail = undefined;
    await tail?.cursor.close();
  }

  /**
   * Re-reads the folder within `pollIntervalMs`, and again after that while
   * the topic has waiting readers; wakes them when something changed or a
   * read failed. Does nothing while a poll is pending or the topic is not open.
   */
  schedulePoll(): void {
    if (this.#pollTimer || !this.#host.isOpen()) return;
    this.#pollTimer = setTimeout(() => {
      this.#pollTimer = undefined;
      this.refresh().then(
        (changed) => {
          if (changed || this.#failure) this.#host.wakeAll();
          if (this.#host.hasWaiters()) this.schedulePoll();
        },
        (error: unknown) => {
          this.#failure ??= error instanceof Error ? error : new Error(String(error));
          this.#host.wakeAll();
        },
      );
    }, this.#host.pollIntervalMs);
  }

  /**
   * Re-reads the folder and hands the segments and the reclaim mark to the
   * host. Resolves whether anything changed. Concurrent calls share one read.
   */
  refresh(): Promise<boolean> {
    this.#refreshing ??= this.#doRefresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #doRefresh(): Promise<boolean> {
    const files = await listSegmentFiles(this.#host.dir, this.#host.fs);
    // The mark is read after the listing: a segment missing from the listing
    // was deleted after the mark covering it was written.
    const mark = await readReclaimMark(this.#host.dir, this.#host.fs);
    const previous = this.#segments;
    const known = new Map(previous.map((s) => [s.path, s]));
    const next: SegmentState[] = [];
    for (let i = 0; i < files.length; i++) {
      const file = files[i]!;
      const isLast = i === files.length - 1;
      let state = known.get(file.path);
      if (state === undefined) {
        const probed = await probeOrMissing(file.path, this.#host.fs);
        if (probed === undefined) continue;
        if (isLast && probed.probe.kind === 'partial') break; // being created
        const after = isLast ? undefined : await probeOrMissing(files[i + 1]!.path, this.#host.fs);
        // A new last segment starts with nothing visible; #scanTail reads it.
        const empty = isLast ? { end: dataStartOf(probed.probe.kind === 'v1' ? 'v1' : 'legacy'), lastIndex: 0n } : undefined;
        state = await describeSegment(file.startIndex, file.path, probed, after, empty, this.#host.maxDataLength, this.#host.fs);
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
    this.#host.update(next, mark);
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
      const cursor = await SegmentCursor.open(state.path, state.format, state.dataStart, this.#host.maxDataLength, this.#host.fs);
      this.#tail = { segment: state, cursor };
      // Skip what is already visible without re-checking it.
      if (state.size > state.dataStart) await skipTo(cursor, state.size);
    }
    const { cursor } = this.#tail;
    let fileSize: number;
    try {
      fileSize = (await probeSegment(state.path, this.#host.fs)).size;
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
        this.#failure = error as Error;
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
