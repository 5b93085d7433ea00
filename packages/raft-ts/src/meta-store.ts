import { checksum, joinPath, readU64, viewOf, writeU64 } from './bytes.js';
import { RaftError } from './errors.js';
import type { FileSystem } from './file-system.js';

/** The small state a node persists apart from its log: Raft's `currentTerm` and `votedFor`, and its cluster. */
export interface Meta {
  /** The latest term this node has seen (0 on a fresh node). */
  term: number;
  /** The candidate URL this node voted for in `term`, or `''`. */
  votedFor: string;
  /** The id of the cluster this node belongs to, or `''` before `initialize()`/`join()`. */
  clusterId: string;
}

const FILE = 'meta';
const TMP = 'meta.tmp';
const MAGIC = 0x5246_544d; // "RFTM"

/**
 * Stores {@link Meta} atomically: the new state is written to a temp file,
 * fsynced, renamed over the old one and the directory fsynced, so a crash
 * leaves either the old or the new state, never a mix. Internal.
 */
export class MetaStore {
  readonly #fs: FileSystem;
  readonly #dir: string;
  readonly #sync: boolean;

  constructor(fs: FileSystem, dir: string, sync: boolean) {
    this.#fs = fs;
    this.#dir = dir;
    this.#sync = sync;
  }

  /** Reads the stored state (a fresh one when there is none); `CORRUPT` when the file is damaged. */
  async load(): Promise<Meta> {
    const path = joinPath(this.#dir, FILE);
    const bytes = await this.#fs.readFile(path);
    if (bytes === undefined) return { term: 0, votedFor: '', clusterId: '' };
    const view = viewOf(bytes);
    if (bytes.length < 12 || view.getUint32(0) !== MAGIC) {
      throw new RaftError('CORRUPT', `${path}: bad header at offset 0`);
    }
    const len = view.getUint32(4);
    const body = bytes.subarray(12, 12 + len);
    if (body.length !== len || checksum(body) !== view.getUint32(8)) {
      throw new RaftError('CORRUPT', `${path}: checksum mismatch at offset 12`);
    }
    const term = readU64(viewOf(body), 0);
    const text = new TextDecoder().decode(body.subarray(8));
    try {
      const parsed = JSON.parse(text) as { votedFor?: unknown; clusterId?: unknown };
      if (typeof parsed.votedFor !== 'string' || typeof parsed.clusterId !== 'string') throw new Error('fields');
      return { term, votedFor: parsed.votedFor, clusterId: parsed.clusterId };
    } catch (cause) {
      throw new RaftError('CORRUPT', `${path}: malformed state at offset 20`, { cause });
    }
  }

  /** Replaces the stored state; durable when the promise resolves (unless sync is off). */
  async save(meta: Meta): Promise<void> {
    const json = new TextEncoder().encode(JSON.stringify({ votedFor: meta.votedFor, clusterId: meta.clusterId }));
    const body = new Uint8Array(8 + json.length);
    writeU64(viewOf(body), 0, meta.term);
    body.set(json, 8);
    const out = new Uint8Array(12 + body.length);
    const view = viewOf(out);
    view.setUint32(0, MAGIC);
    view.setUint32(4, body.length);
    view.setUint32(8, checksum(body));
    out.set(body, 12);
    const tmp = joinPath(this.#dir, TMP);
    await this.#fs.remove(tmp);
    const fh = await this.#fs.open(tmp);
    try {
      await fh.append(out);
      if (this.#sync) await fh.sync();
    } finally {
      await fh.close();
    }
    await this.#fs.rename(tmp, joinPath(this.#dir, FILE));
    if (this.#sync) await this.#fs.syncDir(this.#dir);
  }
}
