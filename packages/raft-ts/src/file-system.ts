import { writeSync } from 'node:fs';
import { open as fsOpen, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import type { FileHandle as NodeFileHandle } from 'node:fs/promises';

/** Appends up to this size are written with a blocking write; larger ones through the thread pool. */
const BLOCKING_WRITE_BYTES = 64 * 1024;

/**
 * An open file as raft-ts uses it: read anywhere, append at the end,
 * truncate, and make durable. Positions and lengths are in bytes.
 */
export interface FileHandle {
  /** The current size of the file in bytes. */
  size(): Promise<number>;
  /** Reads up to `length` bytes at `position`; fewer at the end of the file. */
  read(position: number, length: number): Promise<Uint8Array>;
  /** Writes `data` at the end of the file (not durable until {@link FileHandle.sync}). */
  append(data: Uint8Array): Promise<void>;
  /** Cuts the file to `length` bytes (not durable until {@link FileHandle.sync}). */
  truncate(length: number): Promise<void>;
  /** Makes every earlier write and truncation of this file durable (fdatasync). */
  sync(): Promise<void>;
  /** Releases the handle. */
  close(): Promise<void>;
}

/**
 * The file-system operations raft-ts needs, injected so a simulation can use a
 * disk that loses unsynced writes on a crash. Paths are joined with `/`.
 * Production default: {@link NodeFileSystem}.
 */
export interface FileSystem {
  /** Creates `dir` and its parents; no error when it exists. */
  mkdir(dir: string): Promise<void>;
  /** Names (not paths) of the entries of `dir`, in no particular order. */
  list(dir: string): Promise<string[]>;
  /** The whole content of a file, or `undefined` when it does not exist. */
  readFile(path: string): Promise<Uint8Array | undefined>;
  /** Opens a file for reading and appending, creating it (empty) when missing. */
  open(path: string): Promise<FileHandle>;
  /** Renames atomically, replacing `to` (durable once the directory is synced). */
  rename(from: string, to: string): Promise<void>;
  /** Deletes a file; no error when it does not exist. */
  remove(path: string): Promise<void>;
  /** Makes creations, renames and removals in `dir` durable (fsync of the directory). */
  syncDir(dir: string): Promise<void>;
}

class NodeHandle implements FileHandle {
  readonly #fh: NodeFileHandle;
  constructor(fh: NodeFileHandle) {
    this.#fh = fh;
  }
  async size(): Promise<number> {
    return (await this.#fh.stat()).size;
  }
  async read(position: number, length: number): Promise<Uint8Array> {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.#fh.read(buf, got, length - got, position + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  }
  async append(data: Uint8Array): Promise<void> {
    // A small write blocks (into the page cache: no device wait; the fsync stays asynchronous). Here a write
    // through the thread pool cost about 24 µs of CPU against 3 µs for writeSync: the hand-off between threads is
    // the cost. A large one (a snapshot's, a big batch's) goes to the thread pool, not to hold the event loop.
    const fd = this.#fh.fd;
    let done = 0;
    while (done < data.length) {
      const left = data.length - done;
      const bytesWritten = left <= BLOCKING_WRITE_BYTES ? writeSync(fd, data, done, left) : (await this.#fh.write(data, done, left, null)).bytesWritten;
      if (bytesWritten === 0) throw new Error('write made no progress');
      done += bytesWritten;
    }
  }
  async truncate(length: number): Promise<void> {
    await this.#fh.truncate(length);
  }
  async sync(): Promise<void> {
    await this.#fh.datasync();
  }
  async close(): Promise<void> {
    await this.#fh.close();
  }
}

/** The real file system (`node:fs/promises`), with fdatasync and directory fsync. */
export class NodeFileSystem implements FileSystem {
  async mkdir(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
  }
  async list(dir: string): Promise<string[]> {
    return readdir(dir);
  }
  async readFile(path: string): Promise<Uint8Array | undefined> {
    try {
      return await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }
  async open(path: string): Promise<FileHandle> {
    return new NodeHandle(await fsOpen(path, 'a+'));
  }
  async rename(from: string, to: string): Promise<void> {
    await rename(from, to);
  }
  async remove(path: string): Promise<void> {
    await rm(path, { force: true });
  }
  async syncDir(dir: string): Promise<void> {
    const fh = await fsOpen(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}
