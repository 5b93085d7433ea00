import { checksum, joinPath, readU64, viewOf, writeU64 } from './bytes.js';
import { RaftError } from './errors.js';
import type { FileHandle, FileSystem } from './file-system.js';
import type { EntryType, LogEntry } from './types.js';

/** Options of {@link LogStore}. */
export interface LogStoreOptions {
  /** fsync appends and truncations before {@link LogStore.sync} resolves. `false` is unsafe (tests, benchmarks). */
  sync: boolean;
  /** A segment is closed and a new one started once it holds at least this many bytes. */
  segmentBytes: number;
}

const HEADER = 8; // u32 payload length, u32 crc32(payload)
const FIXED = 17; // u64 index, u64 term, u8 type
const NAME = /^log-(\d{20})\.seg$/;

interface Segment {
  first: number;
  path: string;
  /** Byte offset of each record. */
  offsets: number[];
  size: number;
}

type Op =
  | { kind: 'append'; entries: LogEntry[] }
  | { kind: 'truncate'; from: number }
  | { kind: 'compact'; before: number }
  | { kind: 'reset'; next: number };

function segmentName(first: number): string {
  return `log-${String(first).padStart(20, '0')}.seg`;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function isZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
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
    if (op.kind === 'append' && last?.kind === 'append') last.entries.push(...op.entries);
    else merged.push(op.kind === 'append' ? { kind: 'append', entries: [...op.entries] } : op);
  }
  return merged;
}

/** Encodes entries as log records, back to back. Internal. */
export function encodeRecords(entries: readonly LogEntry[]): { bytes: Uint8Array; sizes: number[] } {
  let total = 0;
  const sizes: number[] = [];
  for (const e of entries) {
    const size = HEADER + FIXED + e.data.length;
    sizes.push(size);
    total += size;
  }
  const bytes = new Uint8Array(total);
  const view = viewOf(bytes);
  let at = 0;
  for (const e of entries) {
    const len = FIXED + e.data.length;
    view.setUint32(at, len);
    writeU64(view, at + HEADER, e.index);
    writeU64(view, at + HEADER + 8, e.term);
    view.setUint8(at + HEADER + 16, e.type);
    bytes.set(e.data, at + HEADER + FIXED);
    view.setUint32(at + 4, checksum(bytes.subarray(at + HEADER, at + HEADER + len)));
    at += HEADER + len;
  }
  return { bytes, sizes };
}

/**
 * The durable Raft log: an in-memory copy of the retained entries plus
 * segment files `log-<first index, 20 digits>.seg` of CRC-checked records.
 *
 * Changes ({@link LogStore.append}, {@link LogStore.truncateFrom},
 * {@link LogStore.compactBefore}, {@link LogStore.reset}) apply to memory at
 * once and are written to disk in order by a background writer; each write
 * round ends with one fdatasync (group commit). {@link LogStore.sync} resolves
 * once everything changed before the call is durable. On open a torn tail of
 * the last segment is truncated; any other damage is a `CORRUPT` error naming
 * file and offset. Internal to raft-ts.
 */
export class LogStore {
  readonly #fs: FileSystem;
  readonly #dir: string;
  readonly #opts: LogStoreOptions;
  #entries: LogEntry[] = [];
  #first = 1;
  // disk side (what the writer has done)
  #segments: Segment[] = [];
  #active: FileHandle | undefined;
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
  }

  /**
   * Opens the log in `dir`, loading every segment. `emptyFirst` is the index
   * the log starts at when there are no segments (the snapshot's index + 1).
   */
  static async open(fs: FileSystem, dir: string, opts: LogStoreOptions, emptyFirst: number): Promise<LogStore> {
    const log = new LogStore(fs, dir, opts);
    await log.#load(emptyFirst);
    return log;
  }

  async #load(emptyFirst: number): Promise<void> {
    const names = (await this.#fs.list(this.#dir)).filter((n) => NAME.test(n)).sort();
    const entries: LogEntry[] = [];
    for (let s = 0; s < names.length; s++) {
      const name = names[s]!;
      const path = joinPath(this.#dir, name);
      const first = Number(NAME.exec(name)![1]);
      const last = s === names.length - 1;
      const bytes = (await this.#fs.readFile(path)) ?? new Uint8Array(0);
      const view = viewOf(bytes);
      const offsets: number[] = [];
      let at = 0;
      const expectedFirst = entries.length > 0 ? entries[entries.length - 1]!.index + 1 : first;
      if (first !== expectedFirst) throw new RaftError('CORRUPT', `${path}: segment starts at ${first}, expected ${expectedFirst} (offset 0)`);
      while (at < bytes.length) {
        const torn = (why: string): boolean => {
          if (!last) throw new RaftError('CORRUPT', `${path}: ${why} at offset ${at}`);
          return true;
        };
        if (at + HEADER > bytes.length) {
          torn('truncated record header');
          break;
        }
        const len = view.getUint32(at);
        const end = at + HEADER + len;
        if (end > bytes.length) {
          torn('truncated record');
          break;
        }
        if (len < FIXED) {
          if (last && isZero(bytes.subarray(at))) break;
          throw new RaftError('CORRUPT', `${path}: bad record length ${len} at offset ${at}`);
        }
        const payload = bytes.subarray(at + HEADER, end);
        if (checksum(payload) !== view.getUint32(at + 4)) {
          if (last && (end === bytes.length || isZero(bytes.subarray(end)))) break;
          throw new RaftError('CORRUPT', `${path}: checksum mismatch at offset ${at}`);
        }
        const pv = viewOf(payload);
        const index = readU64(pv, 0);
        const want = first + offsets.length;
        if (index !== want) throw new RaftError('CORRUPT', `${path}: record index ${index}, expected ${want} at offset ${at}`);
        const type = pv.getUint8(16);
        if (type > 2) throw new RaftError('CORRUPT', `${path}: bad entry type ${type} at offset ${at}`);
        entries.push({ index, term: readU64(pv, 8), type: type as EntryType, data: payload.slice(FIXED) });
        offsets.push(at);
        at = end;
      }
      if (last && at < bytes.length) {
        const fh = await this.#fs.open(path);
        await fh.truncate(at);
        if (this.#opts.sync) await fh.sync();
        await fh.close();
      }
      this.#segments.push({ first, path, offsets, size: at });
    }
    this.#entries = entries;
    this.#first = entries.length > 0 ? entries[0]!.index : this.#segments.length > 0 ? this.#segments[0]!.first : emptyFirst;
    this.#nextFirst = this.#first + entries.length;
    this.#diskLast = this.#durable = this.lastIndex;
    const tail = this.#segments[this.#segments.length - 1];
    if (tail) this.#active = await this.#fs.open(tail.path);
  }

  /** Index of the first entry held (equals `lastIndex + 1` when empty). */
  get firstIndex(): number {
    return this.#first;
  }

  /** Index of the last entry, or `firstIndex - 1` when empty. */
  get lastIndex(): number {
    return this.#first + this.#entries.length - 1;
  }

  /** Term of the last entry, or `undefined` when empty. */
  get lastTerm(): number | undefined {
    return this.#entries[this.#entries.length - 1]?.term;
  }

  /** Highest index whose entry (as it is now in memory) is durable on disk. */
  get durableIndex(): number {
    return this.#durable;
  }

  /** The entry at `index`, or `undefined` outside [firstIndex, lastIndex]. */
  entry(index: number): LogEntry | undefined {
    return this.#entries[index - this.#first];
  }

  /** The term of the entry at `index`, or `undefined` when not held. */
  term(index: number): number | undefined {
    return this.#entries[index - this.#first]?.term;
  }

  /**
   * Entries from `from` to `to` (inclusive), at most `maxCount` of them and
   * about `maxBytes` of data (always at least one when any is in range).
   */
  slice(from: number, to: number, maxCount = Infinity, maxBytes = Infinity): LogEntry[] {
    const out: LogEntry[] = [];
    let bytes = 0;
    for (let i = Math.max(from, this.#first); i <= Math.min(to, this.lastIndex) && out.length < maxCount; i++) {
      const e = this.#entries[i - this.#first]!;
      bytes += e.data.length + 32;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Appends entries; their indexes must continue the log. */
  append(entries: readonly LogEntry[]): void {
    if (entries.length === 0) return;
    if (entries[0]!.index !== this.lastIndex + 1) throw new Error(`log: append at ${entries[0]!.index}, last is ${this.lastIndex}`);
    for (const e of entries) this.#entries.push(e);
    this.#enqueue({ kind: 'append', entries: [...entries] });
  }

  /** Drops every entry from `from` on (a conflict with the leader's log). */
  truncateFrom(from: number): void {
    if (from > this.lastIndex) return;
    if (from < this.#first) throw new Error(`log: truncate at ${from} below first ${this.#first}`);
    this.#entries.length = from - this.#first;
    this.#durable = Math.min(this.#durable, from - 1);
    this.#enqueue({ kind: 'truncate', from });
  }

  /** Forgets entries before `before` (covered by a snapshot); whole segments are deleted on disk. */
  compactBefore(before: number): void {
    const drop = Math.min(before, this.lastIndex + 1) - this.#first;
    if (drop <= 0) return;
    this.#entries.splice(0, drop);
    this.#first += drop;
    this.#enqueue({ kind: 'compact', before: this.#first });
  }

  /** Drops the whole log; the next entry appended has index `next` (after installing a snapshot). */
  reset(next: number): void {
    this.#entries = [];
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

  /** Waits for pending writes, then closes the segment file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.sync().catch(() => undefined);
    this.#closed = true;
    await this.#active?.close();
    this.#active = undefined;
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

  async #run(): Promise<void> {
    try {
      while (this.#queue.length > 0 && this.#failed === undefined) {
        const ops = this.#queue.splice(0);
        for (const op of coalesceAppends(ops)) await this.#write(op);
        if (this.#opts.sync) {
          await this.#active?.sync();
          if (this.#dirDirty) {
            this.#dirDirty = false;
            await this.#fs.syncDir(this.#dir);
          }
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
    } finally {
      this.#running = false;
    }
  }

  async #write(op: Op): Promise<void> {
    switch (op.kind) {
      case 'append': {
        let rest = op.entries;
        while (rest.length > 0) {
          let seg = this.#segments[this.#segments.length - 1];
          if (!seg || !this.#active || seg.size >= this.#opts.segmentBytes) {
            if (this.#active) {
              if (this.#opts.sync) await this.#active.sync();
              await this.#active.close();
            }
            seg = { first: this.#nextFirst, path: joinPath(this.#dir, segmentName(this.#nextFirst)), offsets: [], size: 0 };
            this.#active = await this.#fs.open(seg.path);
            this.#segments.push(seg);
            this.#dirDirty = true;
          }
          // Fill the segment up to its size limit (at least one entry).
          let n = 0;
          let bytes = seg.size;
          while (n < rest.length && (n === 0 || bytes < this.#opts.segmentBytes)) {
            bytes += HEADER + FIXED + rest[n]!.data.length;
            n++;
          }
          const part = rest.slice(0, n);
          rest = rest.slice(n);
          const { bytes: buf, sizes } = encodeRecords(part);
          await this.#active.append(buf);
          for (const size of sizes) {
            seg.offsets.push(seg.size);
            seg.size += size;
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
          const seg = this.#segments.pop()!;
          if (this.#active) {
            await this.#active.close();
            this.#active = undefined;
          }
          await this.#fs.remove(seg.path);
          removed = true;
        }
        if (removed && this.#opts.sync) await this.#fs.syncDir(this.#dir);
        const seg = this.#segments[this.#segments.length - 1];
        if (seg) {
          this.#active ??= await this.#fs.open(seg.path);
          const keep = from - seg.first;
          if (keep < seg.offsets.length) {
            seg.size = seg.offsets[keep]!;
            seg.offsets.length = keep;
            await this.#active.truncate(seg.size);
          }
        }
        this.#nextFirst = from;
        this.#diskLast = from - 1;
        return;
      }
      case 'compact': {
        while (this.#segments.length > 1) {
          const seg = this.#segments[0]!;
          const next = this.#segments[1]!;
          if (next.first > op.before) break;
          this.#segments.shift();
          await this.#fs.remove(seg.path);
          this.#dirDirty = true;
        }
        return;
      }
      case 'reset': {
        if (this.#active) {
          await this.#active.close();
          this.#active = undefined;
        }
        for (const seg of this.#segments) await this.#fs.remove(seg.path);
        this.#segments = [];
        if (this.#opts.sync) await this.#fs.syncDir(this.#dir);
        this.#nextFirst = op.next;
        this.#diskLast = op.next - 1;
        return;
      }
    }
  }
}
