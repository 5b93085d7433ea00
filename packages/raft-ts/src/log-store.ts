import { checksum, isZero, joinPath, readU64, viewOf, writeU64 } from './bytes.js';
import { silentLogger, type Logger } from './clock.js';
import { RaftError } from './errors.js';
import { LatencyHistogram } from './replication.js';
import type { FileHandle, FileSystem } from './file-system.js';
import { EntryType, type LogEntry } from './types.js';

/** Options of {@link LogStore}. */
export interface LogStoreOptions {
  /** fsync appends and truncations before {@link LogStore.sync} resolves. `false` is unsafe (tests, benchmarks). */
  sync: boolean;
  /** A segment is closed and a new one started once it holds at least this many bytes. */
  segmentBytes: number;
  /**
   * Most bytes of entry data kept in memory for the most recent entries already
   * written (entries still queued for the writer and config entries are held
   * besides). Other entries are read from disk. Default 64 MiB.
   */
  cacheBytes?: number;
  /** Where a recovered torn tail is reported (`warn`). Default: silent. */
  logger?: Logger;
  /**
   * Called once with the error when a write or fsync of the background writer
   * fails, at once, even when no {@link LogStore.sync} is waiting (a
   * compaction's, say): the owner must stop then, not at its next sync.
   */
  onFailure?: (err: unknown) => void;
}

/** Where {@link LogStore.open} starts. */
export interface LogStart {
  /** The index the log starts at when there are no segments (the snapshot's index + 1). */
  emptyFirst: number;
  /**
   * The owner's durable point: every entry up to this index is known to have
   * been durable (it was applied, or a snapshot covers it). Damage at or before
   * it is `CORRUPT`, never recovered.
   */
  durableIndex: number;
}

/** Bytes of the header at offset 0 of every segment file: u32 magic, u32 format version, u64 first index, u32 CRC-32 of the 16 bytes before. Internal. */
export const SEGMENT_HEADER_BYTES = 20;

/** A write round (writes and fsync) that takes this long (ms) is logged as `raft: slow log write`. */
export const SLOW_ROUND_MS = 100;
/**
 * Bytes of a record's header: u32 data length, u32 CRC-32 of the data, u64
 * index, u64 term, u8 type, 3 zero bytes, u32 CRC-32 of the 28 bytes before
 * (so a damaged length is detected before it is trusted). The data follows. Internal.
 */
export const RECORD_HEADER_BYTES = 32;
const MAGIC = 0x52_54_4c_47; // "RTLG"
const FORMAT_VERSION = 1;
const NAME = /^log-(\d{20})\.seg$/;
/** Largest read of the open scan. */
const CHUNK = 1 << 20;
const SECTOR = 512;
const DEFAULT_CACHE_BYTES = 64 << 20;

interface Segment {
  first: number;
  path: string;
  /** Open for appending (the last segment) and reading (all); closed once removed and no read uses it. */
  fh: FileHandle;
  /** Byte offset of each record. */
  offsets: number[];
  size: number;
  /** Reads in progress on `fh`. */
  reads: number;
  removed: boolean;
}

/** One retained entry: always its term, type and size; its data while queued, cached or a config entry; else where it is on disk. */
interface Slot {
  index: number;
  term: number;
  type: EntryType;
  /** Bytes of data. */
  size: number;
  /** Data bytes of the log up to and including this entry (a running total, for {@link LogStore.bytesBetween}). */
  end: number;
  data: Uint8Array | undefined;
  /** Where the writer put the record (unset while queued). */
  seg: Segment | undefined;
  pos: number;
  /** In the cache (its bytes counted). */
  cached: boolean;
  /** Truncated, compacted or reset away. */
  dead: boolean;
}

type Op =
  | { kind: 'append'; slots: Slot[] }
  | { kind: 'truncate'; from: number }
  | { kind: 'compact'; before: number }
  | { kind: 'reset'; next: number };

function segmentName(first: number): string {
  return `log-${String(first).padStart(20, '0')}.seg`;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * The queued operations with runs of consecutive appends merged into one, so
 * that the appends of many callers (one per request under load) cost one
 * write, not one thread-pool round trip each.
 */
function coalesceAppends(ops: readonly Op[]): Op[] {
  const merged: Op[] = [];
  for (const op of ops) {
    const last = merged[merged.length - 1];
    if (op.kind === 'append' && last?.kind === 'append') last.slots.push(...op.slots);
    else merged.push(op.kind === 'append' ? { kind: 'append', slots: [...op.slots] } : op);
  }
  return merged;
}

function encodeSegmentHeader(first: number): Uint8Array {
  const bytes = new Uint8Array(SEGMENT_HEADER_BYTES);
  const view = viewOf(bytes);
  view.setUint32(0, MAGIC);
  view.setUint32(4, FORMAT_VERSION);
  writeU64(view, 8, first);
  view.setUint32(16, checksum(bytes.subarray(0, 16)));
  return bytes;
}

/** Records of `slots` back to back, after a segment header when `first` is given. */
function encodeRecords(slots: readonly Slot[], first: number | undefined): Uint8Array {
  let total = first === undefined ? 0 : SEGMENT_HEADER_BYTES;
  for (const s of slots) total += RECORD_HEADER_BYTES + s.size;
  const bytes = new Uint8Array(total);
  const view = viewOf(bytes);
  let at = 0;
  if (first !== undefined) {
    bytes.set(encodeSegmentHeader(first));
    at = SEGMENT_HEADER_BYTES;
  }
  for (const s of slots) {
    const data = s.data!;
    view.setUint32(at, data.length);
    view.setUint32(at + 4, checksum(data));
    writeU64(view, at + 8, s.index);
    writeU64(view, at + 16, s.term);
    view.setUint8(at + 24, s.type);
    view.setUint32(at + 28, checksum(bytes.subarray(at, at + 28)));
    bytes.set(data, at + RECORD_HEADER_BYTES);
    at += RECORD_HEADER_BYTES + data.length;
  }
  return bytes;
}

/** Why the record at `off` of `buf` is not the entry `slot` describes, or `undefined` when it is. */
function mismatch(buf: Uint8Array, off: number, slot: Slot): string | undefined {
  if (buf.length < off + RECORD_HEADER_BYTES + slot.size) return 'record cut short';
  const view = viewOf(buf);
  if (checksum(buf.subarray(off, off + 28)) !== view.getUint32(off + 28)) return 'bad record header checksum';
  if (view.getUint32(off) !== slot.size || readU64(view, off + 8) !== slot.index || readU64(view, off + 16) !== slot.term || view.getUint8(off + 24) !== slot.type) {
    return `record is not entry ${slot.index} of term ${slot.term}`;
  }
  const data = buf.subarray(off + RECORD_HEADER_BYTES, off + RECORD_HEADER_BYTES + slot.size);
  if (checksum(data) !== view.getUint32(off + 4)) return 'bad data checksum';
  return undefined;
}

/** Reads a file front to back in windows of at most {@link CHUNK} bytes. */
class Scanner {
  readonly #fh: FileHandle;
  readonly size: number;
  #buf: Uint8Array = new Uint8Array(0);
  #at = 0;

  constructor(fh: FileHandle, size: number) {
    this.#fh = fh;
    this.size = size;
  }

  /** `n` (at most {@link CHUNK}) bytes at `pos`, fewer at the end of the file. */
  async bytes(pos: number, n: number): Promise<Uint8Array> {
    const want = Math.min(n, this.size - pos);
    if (pos < this.#at || pos + want > this.#at + this.#buf.length) {
      this.#buf = await this.#fh.read(pos, Math.min(CHUNK, this.size - pos));
      this.#at = pos;
    }
    return this.#buf.subarray(pos - this.#at, pos - this.#at + want);
  }

  /**
   * Whether some 512-byte sector, aligned in the file, that overlaps the damaged
   * record at [from, to) is all zero: the part of it from `from` on (the bytes
   * before belong to records that verified) and within the file. A sector whose
   * last write never reached the disk reads like that (a hole).
   */
  async zeroSector(from: number, to: number): Promise<boolean> {
    for (let s = Math.floor(from / SECTOR) * SECTOR; s < to && s < this.size; s += SECTOR) {
      const lo = Math.max(s, from);
      const hi = Math.min(s + SECTOR, this.size);
      if (hi > lo && isZero(await this.bytes(lo, hi - lo))) return true;
    }
    return false;
  }
}

/**
 * The durable Raft log: segment files `log-<first index, 20 digits>.seg`
 * (a versioned header, then records whose header and data carry their own
 * CRC-32), and in memory the term, type and place of every retained entry
 * plus a bounded cache of recent entry data ({@link LogStoreOptions.cacheBytes}).
 *
 * Changes ({@link LogStore.append}, {@link LogStore.truncateFrom},
 * {@link LogStore.compactBefore}, {@link LogStore.reset}) apply to the index
 * in memory at once and are written to disk in order by a background writer;
 * each write round ends with one fdatasync (group commit). {@link LogStore.sync}
 * resolves once everything changed before the call is durable. Entry data is
 * read with {@link LogStore.read} (from memory or disk, checksums verified).
 *
 * On open every record is verified, streaming each segment in bounded reads.
 * Damage of the shape a crash leaves (the file ends inside a record, or an
 * aligned 512-byte sector overlapping it is all zero, from the record's start
 * and up to the end of the file) in the last segment,
 * beyond the owner's durable point, is truncated and reported; any other
 * damage is a `CORRUPT` error naming file and offset. Internal to raft-ts.
 */
export class LogStore {
  /**
   * Latency of the fsync that ends each write round (the active segment, and
   * the directory when files were added or removed), measured with
   * `performance.now()`; nothing is observed with `sync: false`.
   */
  readonly fsyncs = new LatencyHistogram();
  readonly #fs: FileSystem;
  readonly #dir: string;
  readonly #opts: LogStoreOptions;
  readonly #cacheLimit: number;
  readonly #logger: Logger;
  #slowReportedAt = -Infinity;
  #slots: Slot[] = [];
  #first = 1;
  /** The running data total just before the first slot. */
  #bytesBase = 0;
  #cache: Slot[] = [];
  #cacheHead = 0;
  #cachedBytes = 0;
  #reading = new Set<Promise<unknown>>();
  // disk side (what the writer has done)
  #segments: Segment[] = [];
  #nextFirst = 1;
  #dirDirty = false;
  #queue: Op[] = [];
  #enqueued = 0;
  #done = 0;
  #diskLast = 0;
  #durable = 0;
  #waiters: { gen: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  #running = false;
  #failed: unknown;
  #closed = false;

  private constructor(fs: FileSystem, dir: string, opts: LogStoreOptions) {
    this.#fs = fs;
    this.#dir = dir;
    this.#opts = opts;
    this.#cacheLimit = opts.cacheBytes ?? DEFAULT_CACHE_BYTES;
    this.#logger = opts.logger ?? silentLogger;
  }

  /**
   * Opens the log in `dir`, verifying every segment (see {@link LogStart} for
   * the durable point that decides what may be recovered).
   */
  static async open(fs: FileSystem, dir: string, opts: LogStoreOptions, start: LogStart): Promise<LogStore> {
    const log = new LogStore(fs, dir, opts);
    try {
      await log.#load(start);
    } catch (err) {
      for (const seg of log.#segments) await seg.fh.close().catch(() => undefined);
      throw err;
    }
    return log;
  }

  async #load(start: LogStart): Promise<void> {
    const names = (await this.#fs.list(this.#dir)).filter((n) => NAME.test(n)).sort();
    const handles: FileHandle[] = [];
    const sizes: number[] = [];
    try {
      for (const name of names) {
        const fh = await this.#fs.open(joinPath(this.#dir, name));
        handles.push(fh);
        sizes.push(await fh.size());
      }
    } catch (err) {
      for (const fh of handles) await fh.close().catch(() => undefined);
      throw err;
    }
    const total = sizes.reduce((a, b) => a + b, 0);
    let before = 0; // bytes of the segments before this one
    let expected: number | undefined;
    try {
      for (let s = 0; s < names.length; s++) {
        const first = Number(NAME.exec(names[s]!)![1]);
        const seg: Segment = { first, path: joinPath(this.#dir, names[s]!), fh: handles[s]!, offsets: [], size: 0, reads: 0, removed: false };
        this.#segments.push(seg);
        if (expected !== undefined && first !== expected) throw new RaftError('CORRUPT', `${seg.path}: segment starts at ${first}, expected ${expected} at offset 0`);
        if (s === 0) this.#first = first;
        await this.#scan(seg, sizes[s]!, s === names.length - 1, start.durableIndex, total - before);
        before += sizes[s]!;
        expected = first + seg.offsets.length;
      }
    } catch (err) {
      for (const fh of handles.slice(this.#segments.length)) await fh.close().catch(() => undefined);
      throw err;
    }
    if (this.#segments.length === 0) this.#first = start.emptyFirst;
    this.#nextFirst = this.#first + this.#slots.length;
    this.#diskLast = this.#durable = this.lastIndex;
  }

  /** Verifies the records of one segment into slots; `fromEnd` is the bytes from its start to the end of the log. */
  async #scan(seg: Segment, size: number, last: boolean, durableIndex: number, fromEnd: number): Promise<void> {
    const path = seg.path;
    const file = new Scanner(seg.fh, size);
    // The damage at `at`: recovered (truncated, reported) or CORRUPT; false ends the scan.
    const damaged = async (at: number, what: string, crashShaped: boolean): Promise<false> => {
      const want = seg.first + seg.offsets.length;
      if (!last || want <= durableIndex || !crashShaped) throw new RaftError('CORRUPT', `${path}: ${what} at offset ${at}`);
      if (at < SEGMENT_HEADER_BYTES) {
        await seg.fh.truncate(0);
        await seg.fh.append(encodeSegmentHeader(seg.first));
        seg.size = SEGMENT_HEADER_BYTES;
      } else {
        await seg.fh.truncate(at);
        seg.size = at;
      }
      if (this.#opts.sync) await seg.fh.sync();
      this.#logger.warn('raft: recovered the torn tail of the log', { file: path, offset: at, reason: what, firstDropped: want, bytesDropped: size - at });
      return false;
    };
    const checkHeader = async (): Promise<boolean> => {
      if (size < SEGMENT_HEADER_BYTES) return damaged(0, 'incomplete segment header', true);
      const h = await file.bytes(0, SEGMENT_HEADER_BYTES);
      const view = viewOf(h);
      if (view.getUint32(0) !== MAGIC) {
        return damaged(0, `not a raft-ts log segment of format ${FORMAT_VERSION} (no header: written before 1.0 in an older format, which cannot be read)`, await file.zeroSector(0, SEGMENT_HEADER_BYTES));
      }
      if (checksum(h.subarray(0, 16)) !== view.getUint32(16)) return damaged(0, 'bad segment header checksum', await file.zeroSector(0, SEGMENT_HEADER_BYTES));
      if (view.getUint32(4) !== FORMAT_VERSION) throw new RaftError('CORRUPT', `${path}: unsupported log format version ${view.getUint32(4)} at offset 4`);
      if (readU64(view, 8) !== seg.first) throw new RaftError('CORRUPT', `${path}: header says first index ${readU64(view, 8)} at offset 8`);
      return true;
    };
    seg.size = size;
    if (!(await checkHeader())) return;
    let at = SEGMENT_HEADER_BYTES;
    while (at < size) {
      if (size - at < RECORD_HEADER_BYTES) return void (await damaged(at, 'incomplete record header', true));
      const h = await file.bytes(at, RECORD_HEADER_BYTES);
      const view = viewOf(h);
      if (checksum(h.subarray(0, 28)) !== view.getUint32(28)) {
        return void (await damaged(at, 'bad record header checksum', await file.zeroSector(at, at + RECORD_HEADER_BYTES)));
      }
      const len = view.getUint32(0);
      const dataCrc = view.getUint32(4);
      const index = readU64(view, 8);
      const term = readU64(view, 16);
      const type = view.getUint8(24);
      const end = at + RECORD_HEADER_BYTES + len;
      if (end > size) return void (await damaged(at, 'record runs past the end of the file', true));
      // Keep the data of config entries and, as a warm cache, of the entries at the end of the log.
      const keep = type === EntryType.Config || (len <= this.#cacheLimit && fromEnd - end < this.#cacheLimit - len);
      const data = keep ? new Uint8Array(len) : undefined;
      let crc = 0;
      for (let p = at + RECORD_HEADER_BYTES; p < end; p += CHUNK) {
        const piece = await file.bytes(p, Math.min(CHUNK, end - p));
        crc = checksum(piece, crc);
        data?.set(piece, p - at - RECORD_HEADER_BYTES);
      }
      if (crc !== dataCrc) return void (await damaged(at, 'bad data checksum', await file.zeroSector(at, end)));
      const want = seg.first + seg.offsets.length;
      if (index !== want) return void (await damaged(at, `record index ${index}, expected ${want}`, await file.zeroSector(at, end)));
      if (type > EntryType.Config || h[25] !== 0 || h[26] !== 0 || h[27] !== 0) return void (await damaged(at, `bad entry type ${type}`, await file.zeroSector(at, end)));
      const slot = this.#newSlot(index, term, type as EntryType, len, data);
      slot.seg = seg;
      slot.pos = at;
      this.#slots.push(slot);
      if (data && type !== EntryType.Config) this.#cacheAdd(slot);
      seg.offsets.push(at);
      at = end;
    }
  }

  #newSlot(index: number, term: number, type: EntryType, size: number, data: Uint8Array | undefined): Slot {
    const prev = this.#slots[this.#slots.length - 1];
    return { index, term, type, size, end: (prev ? prev.end : this.#bytesBase) + size, data, seg: undefined, pos: 0, cached: false, dead: false };
  }

  /** Index of the first entry held (equals `lastIndex + 1` when empty). */
  get firstIndex(): number {
    return this.#first;
  }

  /** Index of the last entry, or `firstIndex - 1` when empty. */
  get lastIndex(): number {
    return this.#first + this.#slots.length - 1;
  }

  /** Term of the last entry, or `undefined` when empty. */
  get lastTerm(): number | undefined {
    return this.#slots[this.#slots.length - 1]?.term;
  }

  /** Highest index whose entry (as it is now in memory) is durable on disk. */
  get durableIndex(): number {
    return this.#durable;
  }

  /** Bytes of data of the entries held (in memory or only on disk). */
  get retainedBytes(): number {
    return this.bytesBetween(this.#first, this.lastIndex);
  }

  /** Bytes of data of the held entries from `from` to `to` (inclusive). */
  bytesBetween(from: number, to: number): number {
    const lo = Math.max(from, this.#first);
    const hi = Math.min(to, this.lastIndex);
    if (lo > hi) return 0;
    const base = lo === this.#first ? this.#bytesBase : this.#slots[lo - 1 - this.#first]!.end;
    return this.#slots[hi - this.#first]!.end - base;
  }

  /** Bytes of entry data in the cache (not counting entries still queued for the writer, nor config entries). */
  get cachedBytes(): number {
    return this.#cachedBytes;
  }

  /** The last segment and its size (where the log ends on disk), for messages. */
  get end(): { path: string; offset: number } {
    const seg = this.#segments[this.#segments.length - 1];
    return seg ? { path: seg.path, offset: seg.size } : { path: joinPath(this.#dir, 'log-*.seg'), offset: 0 };
  }

  /** The term of the entry at `index`, or `undefined` when not held. */
  term(index: number): number | undefined {
    return this.#slots[index - this.#first]?.term;
  }

  /** Where the record of the entry at `index` is on disk (`undefined` while it is only queued, or not held). */
  locate(index: number): { path: string; offset: number } | undefined {
    const slot = this.#slots[index - this.#first];
    return slot?.seg ? { path: slot.seg.path, offset: slot.pos } : undefined;
  }

  /** The config entries held, in index order (their data is always in memory). */
  configEntries(): LogEntry[] {
    const out: LogEntry[] = [];
    for (const s of this.#slots) if (s.type === EntryType.Config) out.push({ index: s.index, term: s.term, type: s.type, data: s.data! });
    return out;
  }

  /** The entry at `index`, or `undefined` outside [firstIndex, lastIndex]. */
  async entry(index: number): Promise<LogEntry | undefined> {
    return (await this.read(index, index))[0];
  }

  /**
   * The index of the last entry {@link LogStore.read} returns when called now
   * with the same arguments (`max(from, firstIndex) - 1` when none).
   */
  batchEnd(from: number, to: number, maxCount = Infinity, maxBytes = Infinity): number {
    const lo = Math.max(from, this.#first);
    const hi = Math.min(to, this.lastIndex);
    let bytes = 0;
    let i = lo;
    for (; i <= hi && i - lo < maxCount; i++) {
      bytes += this.#slots[i - this.#first]!.size + 32;
      if (i > lo && bytes > maxBytes) break;
    }
    return i - 1;
  }

  /** What {@link LogStore.read} returns, now, when every entry of it is in memory; else `undefined`. */
  readNow(from: number, to: number, maxCount = Infinity, maxBytes = Infinity): LogEntry[] | undefined {
    const out: LogEntry[] = [];
    const hi = this.batchEnd(from, to, maxCount, maxBytes);
    for (let i = Math.max(from, this.#first); i <= hi; i++) {
      const s = this.#slots[i - this.#first]!;
      if (!s.data) return undefined;
      out.push({ index: s.index, term: s.term, type: s.type, data: s.data });
    }
    return out;
  }

  /**
   * Entries from `from` to `to` (inclusive), at most `maxCount` of them and
   * about `maxBytes` of data (always at least one when any is in range): the
   * entries held when called, from memory or disk (checksums verified).
   * Fewer when the log was truncated meanwhile. Rejects `CORRUPT` naming file
   * and offset when a record on disk does not verify.
   */
  read(from: number, to: number, maxCount = Infinity, maxBytes = Infinity): Promise<LogEntry[]> {
    const picked: { slot: Slot; data: Uint8Array | undefined; seg: Segment | undefined; pos: number }[] = [];
    const hi = this.batchEnd(from, to, maxCount, maxBytes);
    for (let i = Math.max(from, this.#first); i <= hi; i++) {
      const slot = this.#slots[i - this.#first]!;
      picked.push({ slot, data: slot.data, seg: slot.seg, pos: slot.pos });
    }
    if (picked.every((p) => p.data)) return Promise.resolve(picked.map((p) => ({ index: p.slot.index, term: p.slot.term, type: p.slot.type, data: p.data! })));
    if (this.#closed) return Promise.reject(new RaftError('CLOSED', 'log is closed'));
    const segs = new Set<Segment>();
    for (const p of picked) if (!p.data) segs.add(p.seg!);
    for (const seg of segs) seg.reads++;
    const done = this.#readPicked(picked).finally(async () => {
      for (const seg of segs) {
        seg.reads--;
        if (seg.removed && seg.reads === 0) await seg.fh.close().catch(() => undefined);
      }
    });
    const tracked = done.catch(() => undefined);
    this.#reading.add(tracked);
    void tracked.then(() => this.#reading.delete(tracked));
    return done;
  }

  async #readPicked(picked: { slot: Slot; data: Uint8Array | undefined; seg: Segment | undefined; pos: number }[]): Promise<LogEntry[]> {
    const out: LogEntry[] = [];
    let i = 0;
    while (i < picked.length) {
      const p = picked[i]!;
      if (p.data) {
        out.push({ index: p.slot.index, term: p.slot.term, type: p.slot.type, data: p.data });
        i++;
        continue;
      }
      // A run of records back to back in one segment: one read.
      let j = i + 1;
      while (j < picked.length) {
        const q = picked[j]!;
        const prev = picked[j - 1]!;
        if (q.data || q.seg !== p.seg || q.pos !== prev.pos + RECORD_HEADER_BYTES + prev.slot.size) break;
        j++;
      }
      const lastOfRun = picked[j - 1]!;
      const seg = p.seg!;
      const buf = await seg.fh.read(p.pos, lastOfRun.pos + RECORD_HEADER_BYTES + lastOfRun.slot.size - p.pos);
      for (let k = i; k < j; k++) {
        const q = picked[k]!;
        const off = q.pos - p.pos;
        const why = mismatch(buf, off, q.slot);
        if (why !== undefined) {
          if (q.slot.dead) return out; // truncated or reset meanwhile: the file changed under the read
          throw new RaftError('CORRUPT', `${seg.path}: ${why} at offset ${q.pos}`);
        }
        const at = off + RECORD_HEADER_BYTES;
        out.push({ index: q.slot.index, term: q.slot.term, type: q.slot.type, data: buf.subarray(at, at + q.slot.size) });
      }
      i = j;
    }
    return out;
  }

  /** Appends entries; their indexes must continue the log. */
  append(entries: readonly LogEntry[]): void {
    if (entries.length === 0) return;
    if (entries[0]!.index !== this.lastIndex + 1) throw new Error(`log: append at ${entries[0]!.index}, last is ${this.lastIndex}`);
    const slots: Slot[] = [];
    for (const e of entries) {
      const slot = this.#newSlot(e.index, e.term, e.type, e.data.length, e.data);
      this.#slots.push(slot);
      slots.push(slot);
    }
    this.#enqueue({ kind: 'append', slots });
  }

  /** Drops every entry from `from` on (a conflict with the leader's log). */
  truncateFrom(from: number): void {
    if (from > this.lastIndex) return;
    if (from < this.#first) throw new Error(`log: truncate at ${from} below first ${this.#first}`);
    for (const s of this.#slots.splice(from - this.#first)) this.#drop(s);
    this.#durable = Math.min(this.#durable, from - 1);
    this.#enqueue({ kind: 'truncate', from });
  }

  /** Forgets entries before `before` (covered by a snapshot); whole segments are deleted on disk. */
  compactBefore(before: number): void {
    const drop = Math.min(before, this.lastIndex + 1) - this.#first;
    if (drop <= 0) return;
    const gone = this.#slots.splice(0, drop);
    for (const s of gone) this.#drop(s);
    this.#bytesBase = gone[gone.length - 1]!.end;
    this.#first += drop;
    this.#enqueue({ kind: 'compact', before: this.#first });
  }

  /** Drops the whole log; the next entry appended has index `next` (after installing a snapshot). */
  reset(next: number): void {
    for (const s of this.#slots) this.#drop(s);
    this.#slots = [];
    this.#bytesBase = 0;
    this.#first = next;
    this.#durable = next - 1;
    this.#enqueue({ kind: 'reset', next });
  }

  /** Resolves once every change made before the call is durable; rejects if a write failed. */
  sync(): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(asError(this.#failed));
    if (this.#done >= this.#enqueued) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#waiters.push({ gen: this.#enqueued, resolve, reject });
    });
  }

  /** Waits for pending writes and reads, then closes the segment files. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.sync().catch(() => undefined);
    this.#closed = true;
    await Promise.all([...this.#reading]);
    for (const seg of this.#segments) await seg.fh.close();
    this.#segments = [];
  }

  #drop(slot: Slot): void {
    slot.dead = true;
    if (slot.cached) {
      slot.cached = false;
      this.#cachedBytes -= slot.size;
    }
    if (slot.seg) slot.data = undefined; // a queued one keeps its data until the writer wrote it
  }

  /** Caches the data of a written entry, evicting the oldest cached ones beyond the limit. */
  #cacheAdd(slot: Slot): void {
    if (slot.size > this.#cacheLimit) {
      slot.data = undefined;
      return;
    }
    slot.cached = true;
    this.#cache.push(slot);
    this.#cachedBytes += slot.size;
    while (this.#cachedBytes > this.#cacheLimit && this.#cacheHead < this.#cache.length) {
      const old = this.#cache[this.#cacheHead++]!;
      if (!old.cached) continue;
      old.cached = false;
      old.data = undefined;
      this.#cachedBytes -= old.size;
    }
    if (this.#cacheHead > 1024 && this.#cacheHead * 2 > this.#cache.length) {
      this.#cache = this.#cache.slice(this.#cacheHead).filter((s) => s.cached);
      this.#cacheHead = 0;
    }
  }

  #enqueue(op: Op): void {
    if (this.#closed) throw new RaftError('CLOSED', 'log is closed');
    this.#queue.push(op);
    this.#enqueued++;
    if (!this.#running) {
      this.#running = true;
      void this.#run();
    }
  }

  /** Warns (at most once a second) of a write round whose writes or fsync took {@link SLOW_ROUND_MS} or more: it held every commit back. */
  #reportSlow(writeMs: number, fsyncMs: number, now: number): void {
    if (writeMs + fsyncMs < SLOW_ROUND_MS || now - this.#slowReportedAt < 1000) return;
    this.#slowReportedAt = now;
    this.#logger.warn('raft: slow log write', { writeMs: Math.round(writeMs), fsyncMs: Math.round(fsyncMs) });
  }

  get #active(): FileHandle | undefined {
    return this.#segments[this.#segments.length - 1]?.fh;
  }

  async #run(): Promise<void> {
    try {
      while (this.#queue.length > 0 && this.#failed === undefined) {
        const ops = this.#queue.splice(0);
        const round = performance.now();
        for (const op of coalesceAppends(ops)) await this.#write(op);
        if (this.#opts.sync) {
          const started = performance.now();
          await this.#active?.sync();
          if (this.#dirDirty) {
            this.#dirDirty = false;
            await this.#fs.syncDir(this.#dir);
          }
          const done = performance.now();
          this.fsyncs.observe((done - started) / 1000);
          this.#reportSlow(started - round, done - started, done);
        }
        this.#done += ops.length;
        let durable = this.#diskLast;
        for (const op of this.#queue) {
          if (op.kind === 'truncate') durable = Math.min(durable, op.from - 1);
          if (op.kind === 'reset') durable = Math.min(durable, op.next - 1);
        }
        this.#durable = durable;
        const ready = this.#waiters.filter((w) => w.gen <= this.#done);
        this.#waiters = this.#waiters.filter((w) => w.gen > this.#done);
        for (const w of ready) w.resolve();
      }
    } catch (err) {
      this.#failed = err;
      const waiters = this.#waiters.splice(0);
      for (const w of waiters) w.reject(asError(err));
      this.#opts.onFailure?.(err);
    } finally {
      this.#running = false;
    }
  }

  async #remove(seg: Segment): Promise<void> {
    seg.removed = true;
    await this.#fs.remove(seg.path);
    if (seg.reads === 0) await seg.fh.close();
  }

  async #write(op: Op): Promise<void> {
    switch (op.kind) {
      case 'append': {
        let rest = op.slots;
        while (rest.length > 0) {
          let seg = this.#segments[this.#segments.length - 1];
          if (!seg || seg.size >= this.#opts.segmentBytes) {
            if (seg && this.#opts.sync) await seg.fh.sync(); // it stays open for reads
            const path = joinPath(this.#dir, segmentName(this.#nextFirst));
            seg = { first: this.#nextFirst, path, fh: await this.#fs.open(path), offsets: [], size: 0, reads: 0, removed: false };
            this.#segments.push(seg);
            this.#dirDirty = true;
          }
          const header = seg.size === 0 ? seg.first : undefined;
          // Fill the segment up to its size limit (at least one entry).
          let n = 0;
          let bytes = header === undefined ? seg.size : SEGMENT_HEADER_BYTES;
          while (n < rest.length && (n === 0 || bytes < this.#opts.segmentBytes)) {
            bytes += RECORD_HEADER_BYTES + rest[n]!.size;
            n++;
          }
          const part = rest.slice(0, n);
          rest = rest.slice(n);
          await seg.fh.append(encodeRecords(part, header));
          if (header !== undefined) seg.size = SEGMENT_HEADER_BYTES;
          for (const slot of part) {
            seg.offsets.push(seg.size);
            slot.seg = seg;
            slot.pos = seg.size;
            seg.size += RECORD_HEADER_BYTES + slot.size;
            if (slot.dead) slot.data = undefined;
            else if (slot.type !== EntryType.Config) this.#cacheAdd(slot);
          }
          this.#nextFirst += part.length;
          this.#diskLast = this.#nextFirst - 1;
        }
        return;
      }
      case 'truncate': {
        const from = op.from;
        let removed = false;
        while (this.#segments.length > 0 && this.#segments[this.#segments.length - 1]!.first >= from) {
          await this.#remove(this.#segments.pop()!);
          removed = true;
        }
        if (removed && this.#opts.sync) await this.#fs.syncDir(this.#dir);
        const seg = this.#segments[this.#segments.length - 1];
        if (seg) {
          const keep = from - seg.first;
          if (keep < seg.offsets.length) {
            seg.size = seg.offsets[keep]!;
            seg.offsets.length = keep;
            await seg.fh.truncate(seg.size);
          }
        }
        this.#nextFirst = from;
        this.#diskLast = from - 1;
        return;
      }
      case 'compact': {
        while (this.#segments.length > 1) {
          const next = this.#segments[1]!;
          if (next.first > op.before) break;
          await this.#remove(this.#segments.shift()!);
          this.#dirDirty = true;
        }
        return;
      }
      case 'reset': {
        for (const seg of this.#segments.splice(0)) await this.#remove(seg);
        if (this.#opts.sync) await this.#fs.syncDir(this.#dir);
        this.#nextFirst = op.next;
        this.#diskLast = op.next - 1;
        return;
      }
    }
  }
}
