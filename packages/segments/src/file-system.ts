import { writeSync } from 'node:fs';
import { open as fsOpen, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle as NodeFileHandle } from 'node:fs/promises';
import { TopicLock } from './topic-lock.js';

/** Appends up to this size are written with a blocking write; larger ones through the thread pool. */
const BLOCKING_WRITE_BYTES = 64 * 1024;

/**
 * An open file as `@msg/segments` uses it: read anywhere, append at the end,
 * truncate, and make durable, always through this handle (never by path: after
 * a failed fsync, Linux marks the failed pages clean, so an fsync through a
 * fresh descriptor would succeed although the data never reached the disk).
 * Positions and lengths are in bytes. The same shape as raft-ts's `FileHandle`,
 * so one simulated disk can serve both.
 */
export interface FileHandle {
  /** The current size of the file in bytes. */
  size(): Promise<number>;
  /**
   * Reads up to `length` bytes at `position`; fewer at the end of the file.
   * The result is a fresh buffer the caller may keep and modify.
   */
  read(position: number, length: number): Promise<Uint8Array>;
  /**
   * Optional: reads up to `target.byteLength` bytes at `position` into
   * `target` (a buffer the caller reuses: no allocation per read); resolves
   * with the count, fewer at the end of the file. Readers use it when there.
   */
  readInto?(target: Uint8Array, position: number): Promise<number>;
  /** Writes `data` at the end of the file (not durable until {@link FileHandle.sync}). */
  append(data: Uint8Array): Promise<void>;
  /** Cuts the file to `length` bytes (not durable until {@link FileHandle.sync}). */
  truncate(length: number): Promise<void>;
  /** Makes every earlier write and truncation of this file durable (fdatasync); a failure must not be retried. */
  sync(): Promise<void>;
  /** Releases the handle. */
  close(): Promise<void>;
}

/** Options of {@link FileSystem.open}. */
export interface OpenOptions {
  /**
   * Open an existing file for reading only: a missing file rejects with an
   * error whose `code` is `'ENOENT'`, and the handle's `append`/`truncate`
   * fail. Default `false`: read and append, creating the file (empty) when missing.
   */
  readOnly?: boolean;
}

/** What {@link FileSystem.stat} says of an entry. */
export interface FileStat {
  /** Size in bytes (of a file). */
  size: number;
  /** Last modification, ms since the epoch (wall clock). */
  mtimeMs: number;
  /** Whether the entry is a directory. */
  isDirectory: boolean;
}

/** A lock held by {@link FileSystem.lock}. */
export interface FileLock {
  /** Releases the lock (later calls do nothing). */
  release(): Promise<void>;
}

/**
 * The file-system operations `@msg/segments` needs, injected (option `fs` of
 * `Topic` and of the functions that read folders) so that a simulation can
 * run a topic on a disk that loses unsynced writes or fails on demand. Every
 * file access of the package goes through it. Paths are joined with `/`.
 * Errors for a missing entry carry `code: 'ENOENT'` (as Node's do).
 *
 * The first eight operations and the {@link FileHandle} are shaped like
 * raft-ts's `FileSystem` (`mkdir, list, readFile, open, rename, remove,
 * syncDir`); `open` takes an extra optional {@link OpenOptions}. Production
 * default: {@link NodeFileSystem}.
 */
export interface FileSystem {
  /** Creates `dir` and its parents; no error when it exists. */
  mkdir(dir: string): Promise<void>;
  /** Names (not paths) of the entries of `dir`, in no particular order; `ENOENT` when it is missing. */
  list(dir: string): Promise<string[]>;
  /** The whole content of a file, or `undefined` when it does not exist. */
  readFile(path: string): Promise<Uint8Array | undefined>;
  /** Opens a file (see {@link OpenOptions}). */
  open(path: string, options?: OpenOptions): Promise<FileHandle>;
  /** Renames atomically, replacing `to` (durable once the directory is synced). */
  rename(from: string, to: string): Promise<void>;
  /** Deletes a file; no error when it does not exist. */
  remove(path: string): Promise<void>;
  /** Makes creations, renames and removals in `dir` durable (fsync of the directory). */
  syncDir(dir: string): Promise<void>;
  /** Size, modification time and kind of an entry; `undefined` when it does not exist. */
  stat(path: string): Promise<FileStat | undefined>;
  /** Deletes a file or a directory with everything in it; no error when it does not exist. */
  removeTree(path: string): Promise<void>;
  /**
   * Takes the exclusive right to write the folder `dir` (which exists),
   * across processes. Rejects with `BrokerError` `TOPIC_ALREADY_OPEN` when
   * another live holder has it. Optional: a file system without it (an
   * in-memory one) gets no lock, and its user must make sure that one `Topic`
   * at a time writes a folder.
   */
  lock?(dir: string): Promise<FileLock>;
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
    const buffer = Buffer.allocUnsafe(length);
    return buffer.subarray(0, await this.readInto(buffer, position));
  }
  async readInto(target: Uint8Array, position: number): Promise<number> {
    const length = target.byteLength;
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.#fh.read(target, got, length - got, position + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got;
  }
  async append(data: Uint8Array): Promise<void> {
    // A small write blocks (into the page cache: no device wait; the fsync stays asynchronous). Here a write
    // through the thread pool cost about 24 µs of CPU against 3 µs for writeSync: the hand-off between threads is
    // the cost. A large one (a snapshot's, a big batch's) goes to the thread pool, not to hold the event loop.
    const fd = this.#fh.fd;
    let done = 0;
    while (done < data.byteLength) {
      // Opened with O_APPEND: every write goes to the end of the file.
      const left = data.byteLength - done;
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

/**
 * The real file system (`node:fs/promises`): fdatasync through the handle,
 * fsync of directories, and a cross-process lock file (see {@link FileSystem.lock})
 * whose owner is checked by PID and process start time (Linux `/proc`).
 */
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
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }
  async open(path: string, options: OpenOptions = {}): Promise<FileHandle> {
    return new NodeHandle(await fsOpen(path, options.readOnly ? 'r' : 'a+'));
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
  async stat(path: string): Promise<FileStat | undefined> {
    try {
      const stats = await stat(path);
      return { size: stats.size, mtimeMs: stats.mtimeMs, isDirectory: stats.isDirectory() };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }
  async removeTree(path: string): Promise<void> {
    await rm(path, { recursive: true, force: true });
  }
  async lock(dir: string): Promise<FileLock> {
    return TopicLock.acquire(dir);
  }
}

/** The shared default {@link NodeFileSystem}. */
export const nodeFileSystem: FileSystem = new NodeFileSystem();
