/** One file's content: what the process sees, and what the disk holds. */
interface SimFile {
  data: Uint8Array;
  /** What survives a crash so far. */
  synced: Uint8Array;
  /** Bumped by every change of `data`. */
  version: number;
  /** The version `synced` holds: durability only moves forward. */
  syncedVersion: number;
  /**
   * Set by a failed fsync: as on Linux, the pages that failed are then marked
   * clean, so no later fsync (through any descriptor) makes them durable. The
   * file's durable content stays what it was before the failure.
   */
  lost: boolean;
  /** Length of the prefix known fsynced by a completed fsync (not by a crash's luck): corruption there must be detected. */
  trusted: number;
  mtimeMs: number;
}

interface SimDir {
  names: Map<string, SimFile>;
  durable: Map<string, SimFile>;
  /** Bumped by every change of `names`. */
  version: number;
  /** The version `durable` holds. */
  durableVersion: number;
}

/** An I/O error as node:fs raises it. */
export type IoErrorCode = 'EIO' | 'ENOSPC';

/** A fault armed on a disk: the next matching operation fails with `code`. */
export interface ArmedFault {
  op: 'append' | 'sync';
  code: IoErrorCode;
  /** Only files whose path matches (default: any file). */
  path?: RegExp;
}

/** What a disk did that a checker needs to know. */
export interface DiskEvent {
  kind: 'io-error' | 'bit-flip' | 'torn-write' | 'hole' | 'lost-dir-entry';
  path: string;
  offset?: number;
  code?: IoErrorCode;
}

/** Size of the unit a crash keeps or loses on its own. */
export const SECTOR = 512;

function split(path: string): [string, string] {
  const at = path.lastIndexOf('/');
  return [path.slice(0, at), path.slice(at + 1)];
}

function startsWith(data: Uint8Array, prefix: Uint8Array): boolean {
  if (data.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (data[i] !== prefix[i]) return false;
  return true;
}

function ioError(code: IoErrorCode, op: string, path: string): Error {
  const text = code === 'EIO' ? 'i/o error' : 'no space left on device';
  return Object.assign(new Error(`${code}: ${text}, ${op} '${path}'`), { code, errno: code === 'EIO' ? -5 : -28, syscall: op, path });
}

const never = new Promise<never>(() => undefined);

/** The file-handle operations of both raft-ts's and @msg/segments' `FileHandle`. */
export interface SimFileHandle {
  size(): Promise<number>;
  read(position: number, length: number): Promise<Uint8Array>;
  append(data: Uint8Array): Promise<void>;
  truncate(length: number): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** The file-system operations of both raft-ts's and @msg/segments' `FileSystem` (structurally). */
export interface SimFileSystem {
  mkdir(dir: string): Promise<void>;
  list(dir: string): Promise<string[]>;
  readFile(path: string): Promise<Uint8Array | undefined>;
  open(path: string, options?: { readOnly?: boolean }): Promise<SimFileHandle>;
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
  syncDir(dir: string): Promise<void>;
  stat(path: string): Promise<{ size: number; mtimeMs: number; isDirectory: boolean } | undefined>;
  removeTree(path: string): Promise<void>;
}

/**
 * A simulated disk with the faults of a real one:
 * - files hold written and synced content separately, directories their
 *   current and synced names; {@link SimDisk.crash} keeps only what was
 *   synced, plus, for files that only grew, each unsynced sector kept or lost
 *   on its own (a torn write that is not a prefix; a lost sector inside the
 *   file reads as zeros: a hole), and entries of directories not fsynced are lost;
 * - an armed fault ({@link SimDisk.arm}) makes a write or an fsync fail with
 *   EIO or ENOSPC; a failed fsync is sticky per descriptor and, as on Linux,
 *   the data it failed to write never becomes durable through any descriptor
 *   (a truncation below it drops it: what is written after that can be);
 * - {@link SimDisk.flip} flips bits in durable data (bit rot).
 * A crash also kills every mounted view: their pending and later operations
 * never complete, like the dead process they served.
 * Directories are durable as soon as they are made or removed (a simplification).
 */
export class SimDisk {
  readonly #dirs = new Map<string, SimDir>();
  readonly #random: () => number;
  readonly #now: () => number;
  #epoch = 0;
  #armed: ArmedFault[] = [];
  /** Bytes written, for statistics. */
  written = 0;
  /** fsync calls, for statistics. */
  syncs = 0;
  /** Called with every fault the disk injects. */
  onEvent: (event: DiskEvent) => void = () => undefined;

  readonly #syncDelay: (() => Promise<void>) | undefined;

  /**
   * @param random source of randomness for torn writes and bit flips.
   * @param syncDelay when given, every fsync first waits for it (virtual disk latency), so crashes can
   *   hit writes that are not yet durable.
   * @param now virtual time for modification times.
   */
  constructor(random: () => number, syncDelay?: () => Promise<void>, now: () => number = () => 0) {
    this.#random = random;
    this.#syncDelay = syncDelay;
    this.#now = now;
  }

  /** Makes the next operation matching `fault` fail. */
  arm(fault: ArmedFault): void {
    this.#armed.push(fault);
  }

  /** Removes armed faults that did not fire yet. */
  disarm(): void {
    this.#armed = [];
  }

  #fire(op: ArmedFault['op'], path: string): IoErrorCode | undefined {
    const i = this.#armed.findIndex((f) => f.op === op && (f.path === undefined || f.path.test(path)));
    if (i < 0) return undefined;
    const [fault] = this.#armed.splice(i, 1);
    this.onEvent({ kind: 'io-error', path, code: fault!.code });
    return fault!.code;
  }

  /** A file-system view for one incarnation of a process. */
  mount(): SimFileSystem {
    const epoch = this.#epoch;
    const alive = (): boolean => epoch === this.#epoch;
    const run = <T>(fn: () => T): Promise<T> => (alive() ? Promise.resolve().then(() => (alive() ? fn() : never)) : never);
    const dir = (path: string): SimDir => {
      const d = this.#dirs.get(path);
      if (!d) throw Object.assign(new Error(`ENOENT: no such file or directory, '${path}'`), { code: 'ENOENT' });
      return d;
    };
    const file = (path: string): SimFile | undefined => {
      const [d, n] = split(path);
      return this.#dirs.get(d)?.names.get(n);
    };
    const handle = (f: SimFile, path: string): SimFileHandle => {
      let failed: Error | undefined; // sticky: a descriptor whose fsync failed fails every later fsync
      return {
        size: () => run(() => f.data.length),
        read: (position, length) => run(() => f.data.slice(position, position + length)),
        append: (data) =>
          run(() => {
            const code = this.#fire('append', path);
            // ENOSPC may leave part of the write behind; EIO writes nothing.
            const keep = code === undefined ? data.length : code === 'ENOSPC' ? Math.floor(this.#random() * data.length) : 0;
            if (keep > 0) {
              const next = new Uint8Array(f.data.length + keep);
              next.set(f.data);
              next.set(data.subarray(0, keep), f.data.length);
              f.data = next;
              f.version++;
              f.mtimeMs = this.#now();
              this.written += keep;
            }
            if (code !== undefined) throw ioError(code, 'write', path);
          }),
        truncate: (length) =>
          run(() => {
            // The data a failed fsync lost lies beyond what was synced: cut below it, it is gone (as its pages are
            // on Linux), and what is written from there on becomes durable again at the next fsync.
            if (f.lost && length <= f.synced.length) f.lost = false;
            f.data = f.data.slice(0, length);
            f.version++;
            f.mtimeMs = this.#now();
          }),
        sync: async () => {
          // What is durable is the content as of the call; a sync that completes after a later one
          // (concurrent fsyncs) does not move durability backwards.
          const [data, version] = await run(() => [f.data, f.version] as const);
          if (this.#syncDelay) await this.#syncDelay();
          return run(() => {
            this.syncs++;
            if (failed) throw failed;
            const code = this.#fire('sync', path);
            if (code !== undefined) {
              failed = ioError(code, 'fdatasync', path);
              f.lost = true;
              throw failed;
            }
            if (!f.lost && version > f.syncedVersion) {
              f.synced = data;
              f.syncedVersion = version;
              f.trusted = data.length;
            }
          });
        },
        close: () => run(() => undefined),
      };
    };
    const newFile = (): SimFile => ({ data: new Uint8Array(0), synced: new Uint8Array(0), version: 0, syncedVersion: 0, lost: false, trusted: 0, mtimeMs: this.#now() });
    return {
      mkdir: (path) =>
        run(() => {
          // Every ancestor too (mkdir -p).
          for (let p = path; p.length > 0 && !this.#dirs.has(p); p = split(p)[0]) {
            this.#dirs.set(p, { names: new Map(), durable: new Map(), version: 0, durableVersion: 0 });
          }
        }),
      list: (path) =>
        run(() => {
          const names = [...dir(path).names.keys()];
          for (const d of this.#dirs.keys()) if (split(d)[0] === path) names.push(split(d)[1]);
          return names;
        }),
      readFile: (path) => run(() => file(path)?.data.slice()),
      open: (path, options = {}) =>
        run(() => {
          const [d, n] = split(path);
          const sd = dir(d);
          let f = sd.names.get(n);
          if (!f) {
            if (options.readOnly) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
            f = newFile();
            sd.names.set(n, f);
            sd.version++;
          }
          return handle(f, path);
        }),
      rename: (from, to) =>
        run(() => {
          const [fd, fnm] = split(from);
          const [td, tnm] = split(to);
          const f = dir(fd).names.get(fnm);
          if (!f) throw Object.assign(new Error(`ENOENT: no such file or directory, rename '${from}'`), { code: 'ENOENT' });
          dir(fd).names.delete(fnm);
          dir(td).names.set(tnm, f);
          dir(fd).version++;
          dir(td).version++;
        }),
      remove: (path) =>
        run(() => {
          const [d, n] = split(path);
          const sd = this.#dirs.get(d);
          if (sd?.names.delete(n)) sd.version++;
        }),
      syncDir: async (path) => {
        // As for files: the names as of the call become durable, unless a later syncDir already completed.
        const [names, version] = await run(() => [new Map(dir(path).names), dir(path).version] as const);
        if (this.#syncDelay) await this.#syncDelay();
        return run(() => {
          const d = dir(path);
          if (version > d.durableVersion) {
            d.durable = names;
            d.durableVersion = version;
          }
          this.syncs++;
        });
      },
      stat: (path) =>
        run(() => {
          if (this.#dirs.has(path)) return { size: 0, mtimeMs: 0, isDirectory: true };
          const f = file(path);
          return f ? { size: f.data.length, mtimeMs: f.mtimeMs, isDirectory: false } : undefined;
        }),
      removeTree: (path) =>
        run(() => {
          for (const d of [...this.#dirs.keys()]) if (d === path || d.startsWith(`${path}/`)) this.#dirs.delete(d);
          const [parent, n] = split(path);
          const pd = this.#dirs.get(parent);
          if (pd?.names.delete(n)) pd.version++;
        }),
    };
  }

  /** Loses everything not synced and kills the mounted views. */
  crash(): void {
    this.#epoch++;
    this.#armed = [];
    const files = new Map<SimFile, string>();
    for (const [path, d] of this.#dirs) {
      for (const [name, f] of d.names) {
        if (d.durable.get(name) !== f) this.onEvent({ kind: 'lost-dir-entry', path: `${path}/${name}` });
      }
      d.names = new Map(d.durable);
      d.version = d.durableVersion;
      for (const [name, f] of d.names) files.set(f, `${path}/${name}`);
    }
    for (const [f, path] of files) {
      if (f.data.length > f.synced.length && startsWith(f.data, f.synced) && !f.lost) {
        this.#tear(f, path);
      } else {
        f.data = f.synced;
      }
      f.synced = f.data;
      f.version = f.syncedVersion;
      f.lost = false;
    }
  }

  /**
   * A crash in the middle of writing a file's unsynced tail: the file keeps a
   * random length between its synced and its written size, and within it each
   * sector of the unsynced part is written or not on its own (one not written
   * reads as zeros: delayed allocation leaves such holes).
   */
  #tear(f: SimFile, path: string): void {
    const from = f.synced.length;
    const end = from + Math.floor(this.#random() * (f.data.length - from + 1));
    const next = f.data.slice(0, end);
    let holes = 0;
    if (this.#random() < 0.5) {
      for (let at = from; at < end; at = (Math.floor(at / SECTOR) + 1) * SECTOR) {
        const stop = Math.min(end, (Math.floor(at / SECTOR) + 1) * SECTOR);
        if (this.#random() < 0.3) {
          next.fill(0, at, stop);
          holes++;
        }
      }
    }
    if (end > from) this.onEvent({ kind: holes > 0 ? 'hole' : 'torn-write', path, offset: from });
    f.data = next;
  }

  /**
   * Flips bits of one byte in the durable part (the prefix a completed fsync
   * made durable) of one file whose name matches `pattern`, in data and
   * disk alike. Returns where, or `undefined` when no such file has durable data.
   */
  flip(pattern: RegExp): { path: string; offset: number } | undefined {
    const candidates: [string, SimFile][] = [];
    for (const [dirPath, d] of this.#dirs) {
      for (const [name, f] of d.names) if (pattern.test(name) && f.trusted > 0 && f.data === f.synced) candidates.push([`${dirPath}/${name}`, f]);
    }
    if (candidates.length === 0) return undefined;
    const [path, f] = candidates[Math.floor(this.#random() * candidates.length)]!;
    const offset = Math.floor(this.#random() * Math.min(f.trusted, f.data.length));
    const data = f.data.slice();
    data[offset] = (data[offset] ?? 0) ^ (1 + Math.floor(this.#random() * 255));
    f.data = data;
    f.synced = data;
    this.onEvent({ kind: 'bit-flip', path, offset });
    return { path, offset };
  }

  /** Flips one byte of a file (for corruption tests). */
  corrupt(path: string, offset: number): void {
    const [d, n] = split(path);
    const f = this.#dirs.get(d)?.names.get(n);
    if (!f) throw new Error(`no file ${path}`);
    const data = f.data.slice();
    data[offset] = (data[offset] ?? 0) ^ 0xff;
    f.data = data;
    f.synced = data;
  }

  /** Whether `path` is a file on this disk now. */
  exists(path: string): boolean {
    const [d, n] = split(path);
    return this.#dirs.get(d)?.names.has(n) ?? false;
  }

  /** Current size of the file at `path` (0 when missing). */
  size(path: string): number {
    const [d, n] = split(path);
    return this.#dirs.get(d)?.names.get(n)?.data.length ?? 0;
  }
}
