import { checksum, joinPath, readU64, viewOf, writeU64 } from './bytes.js';
import { RaftError } from './errors.js';
import type { FileHandle, FileSystem } from './file-system.js';
import type { ClusterConfig } from './types.js';

/** What a stored snapshot covers. */
export interface SnapshotMeta {
  /** Index of the last entry the snapshot includes. */
  index: number;
  /** Term of that entry. */
  term: number;
  /** The cluster configuration as of `index`. */
  config: ClusterConfig;
  /** Size of the state machine's bytes in the snapshot. */
  size: number;
  /**
   * A compaction marker: the file holds no state, the state machine keeps it durably itself (it checkpointed up
   * to `index` before the marker was written; see `StateMachine.checkpoint`). Absent on a full snapshot.
   */
  marker?: true;
}

const NAME = /^snapshot-(\d{20})\.snap$/;
const HEAD_MAGIC = 0x5246_5453; // "RFTS"
const MARKER_MAGIC = 0x5246_544d; // "RFTM": a compaction marker (an earlier version cannot read it, and refuses it as CORRUPT rather than restoring an empty state)
const TAIL_MAGIC = 0x5246_5445; // "RFTE"
const TRAILER = 16; // u64 size, u32 crc, u32 magic
const CHUNK = 1 << 20;

/** The file name of the snapshot (or compaction marker) at `index`. */
export function snapshotFileName(index: number): string {
  return `snapshot-${String(index).padStart(20, '0')}.snap`;
}

/** A snapshot being written; {@link SnapshotWriter.finish} makes it the current one. Internal. */
export interface SnapshotWriter {
  /** Bytes written so far. */
  readonly size: number;
  /** Appends state-machine bytes. */
  write(chunk: Uint8Array): Promise<void>;
  /** Seals, fsyncs and renames the snapshot into place, then deletes older ones. */
  finish(): Promise<SnapshotMeta>;
  /** Drops the partial snapshot. */
  abort(): Promise<void>;
}

/** Reads one stored snapshot. Internal. */
export interface SnapshotReader {
  readonly meta: SnapshotMeta;
  /** Up to `length` bytes of the state machine's data at `offset`. */
  readChunk(offset: number, length: number): Promise<Uint8Array>;
  /** The whole data as a stream of chunks; the last read verifies the checksum (`CORRUPT`). */
  stream(): AsyncIterable<Uint8Array>;
  close(): Promise<void>;
}

/**
 * Durable snapshots: `snapshot-<index>.snap` files with a JSON header
 * (index, term, configuration) and a trailer (size, CRC-32 of the data),
 * written to a temp file, fsynced and renamed into place. Internal.
 */
export class SnapshotStore {
  readonly #fs: FileSystem;
  readonly #dir: string;
  readonly #sync: boolean;
  #writers = 0;

  constructor(fs: FileSystem, dir: string, sync: boolean) {
    this.#fs = fs;
    this.#dir = dir;
    this.#sync = sync;
  }

  /** The newest snapshot (older ones and temp files are deleted), or `undefined`. */
  async load(): Promise<SnapshotMeta | undefined> {
    const names = await this.#fs.list(this.#dir);
    for (const n of names) if (n.endsWith('.tmp') && n.startsWith('snapshot-')) await this.#fs.remove(joinPath(this.#dir, n));
    const snaps = names.filter((n) => NAME.test(n)).sort();
    const newest = snaps.pop();
    for (const old of snaps) await this.#fs.remove(joinPath(this.#dir, old));
    if (newest === undefined) return undefined;
    const reader = await this.open(newest);
    await reader.close();
    return reader.meta;
  }

  /** Opens the snapshot with this meta for reading. */
  async reader(meta: SnapshotMeta): Promise<SnapshotReader> {
    return this.open(snapshotFileName(meta.index));
  }

  private async open(name: string): Promise<SnapshotReader> {
    const path = joinPath(this.#dir, name);
    const fh = await this.#fs.open(path);
    try {
      const size = await fh.size();
      const head = await fh.read(0, 8);
      const hv = viewOf(head);
      const magic = head.length < 8 ? 0 : hv.getUint32(0);
      if (magic !== HEAD_MAGIC && magic !== MARKER_MAGIC) throw new RaftError('CORRUPT', `${path}: bad header at offset 0`);
      const metaLen = hv.getUint32(4);
      const metaBytes = await fh.read(8, metaLen);
      const dataOffset = 8 + metaLen;
      const tail = await fh.read(Math.max(0, size - TRAILER), TRAILER);
      const tv = viewOf(tail);
      if (tail.length < TRAILER || tv.getUint32(12) !== TAIL_MAGIC || readU64(tv, 0) !== size - TRAILER - dataOffset) {
        throw new RaftError('CORRUPT', `${path}: bad trailer at offset ${size - TRAILER}`);
      }
      let parsed: { index: number; term: number; config: ClusterConfig };
      try {
        parsed = JSON.parse(new TextDecoder().decode(metaBytes)) as typeof parsed;
      } catch (cause) {
        throw new RaftError('CORRUPT', `${path}: malformed header at offset 8`, { cause });
      }
      const meta: SnapshotMeta = { index: parsed.index, term: parsed.term, config: parsed.config, size: readU64(tv, 0) };
      if (magic === MARKER_MAGIC) {
        if (meta.size !== 0) throw new RaftError('CORRUPT', `${path}: a compaction marker with ${meta.size} bytes of data, at offset ${dataOffset}`);
        meta.marker = true;
      }
      const crc = tv.getUint32(8);
      return {
        meta,
        readChunk: (offset, length) => fh.read(dataOffset + offset, Math.max(0, Math.min(length, meta.size - offset))),
        async *stream() {
          let sum = 0;
          for (let at = 0; at < meta.size; ) {
            const chunk = await fh.read(dataOffset + at, Math.min(CHUNK, meta.size - at));
            if (chunk.length === 0) throw new RaftError('CORRUPT', `${path}: short read at offset ${dataOffset + at}`);
            sum = checksum(chunk, sum);
            at += chunk.length;
            if (at === meta.size && sum !== crc) throw new RaftError('CORRUPT', `${path}: checksum mismatch at offset ${dataOffset}`);
            yield chunk;
          }
          if (meta.size === 0 && crc !== 0) throw new RaftError('CORRUPT', `${path}: checksum mismatch at offset ${dataOffset}`);
        },
        close: () => fh.close(),
      };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /**
   * Durably records a compaction marker at `index` (of `term`, `config` as of then): the state machine holds the
   * state itself. Replaces older snapshots and markers like a snapshot does.
   */
  async mark(index: number, term: number, config: ClusterConfig): Promise<SnapshotMeta> {
    const meta = await (await this.create(index, term, config, true)).finish();
    return { ...meta, marker: true };
  }

  /** Starts writing a snapshot covering the log up to `index` (of `term`), with `config` as of then. */
  async create(index: number, term: number, config: ClusterConfig, marker = false): Promise<SnapshotWriter> {
    const tmp = joinPath(this.#dir, `snapshot-${String(index).padStart(20, '0')}.${++this.#writers}.tmp`);
    await this.#fs.remove(tmp);
    const fh: FileHandle = await this.#fs.open(tmp);
    const metaBytes = new TextEncoder().encode(JSON.stringify({ index, term, config }));
    const head = new Uint8Array(8 + metaBytes.length);
    viewOf(head).setUint32(0, marker ? MARKER_MAGIC : HEAD_MAGIC);
    viewOf(head).setUint32(4, metaBytes.length);
    head.set(metaBytes, 8);
    await fh.append(head);
    let size = 0;
    let sum = 0;
    let closed = false;
    const store = { fs: this.#fs, dir: this.#dir, sync: this.#sync };
    return {
      get size() {
        return size;
      },
      async write(chunk) {
        if (chunk.length === 0) return;
        await fh.append(chunk);
        sum = checksum(chunk, sum);
        size += chunk.length;
      },
      async finish() {
        const tail = new Uint8Array(TRAILER);
        const tv = viewOf(tail);
        writeU64(tv, 0, size);
        tv.setUint32(8, sum);
        tv.setUint32(12, TAIL_MAGIC);
        await fh.append(tail);
        if (store.sync) await fh.sync();
        closed = true;
        await fh.close();
        await store.fs.rename(tmp, joinPath(store.dir, snapshotFileName(index)));
        if (store.sync) await store.fs.syncDir(store.dir);
        for (const name of await store.fs.list(store.dir)) {
          const m = NAME.exec(name);
          if (m && Number(m[1]) < index) await store.fs.remove(joinPath(store.dir, name));
        }
        return { index, term, config, size };
      },
      async abort() {
        if (!closed) {
          closed = true;
          await fh.close();
        }
        await store.fs.remove(tmp);
      },
    };
  }
}
