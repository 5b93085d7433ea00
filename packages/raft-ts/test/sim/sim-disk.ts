import type { FileHandle, FileSystem } from '../../src/file-system.js';

interface SimFile {
  data: Uint8Array;
  synced: Uint8Array;
  /** Bumped by every change of `data`. */
  version: number;
  /** The version `synced` holds: durability only moves forward. */
  syncedVersion: number;
}

interface SimDir {
  names: Map<string, SimFile>;
  durable: Map<string, SimFile>;
  /** Bumped by every change of `names`. */
  version: number;
  /** The version `durable` holds. */
  durableVersion: number;
}

function split(path: string): [string, string] {
  const at = path.lastIndexOf('/');
  return [path.slice(0, at), path.slice(at + 1)];
}

function startsWith(data: Uint8Array, prefix: Uint8Array): boolean {
  if (data.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (data[i] !== prefix[i]) return false;
  return true;
}

const never = new Promise<never>(() => undefined);

/**
 * A simulated disk: files hold written and synced content separately and
 * directories hold current and synced names. {@link SimDisk.crash} keeps only
 * what was synced (plus, for files that only grew, a random prefix of the
 * unsynced tail: a torn write) and kills every mounted view: their pending
 * and later operations never complete, like the dead process they served.
 */
export class SimDisk {
  readonly #dirs = new Map<string, SimDir>();
  readonly #random: () => number;
  #epoch = 0;
  /** Bytes written, for statistics. */
  written = 0;
  /** fsync calls, for statistics. */
  syncs = 0;

  readonly #syncDelay: (() => Promise<void>) | undefined;

  /**
   * @param random source of randomness for torn writes.
   * @param syncDelay when given, every fsync first waits for it (virtual disk latency), so crashes can
   *   hit writes that are not yet durable.
   */
  constructor(random: () => number, syncDelay?: () => Promise<void>) {
    this.#random = random;
    this.#syncDelay = syncDelay;
  }

  /** A file-system view for one incarnation of a process. */
  mount(): FileSystem {
    const epoch = this.#epoch;
    const alive = (): boolean => epoch === this.#epoch;
    const run = <T>(fn: () => T): Promise<T> => (alive() ? Promise.resolve().then(() => (alive() ? fn() : never)) : never);
    const dir = (path: string): SimDir => {
      const d = this.#dirs.get(path);
      if (!d) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      return d;
    };
    const file = (path: string): SimFile | undefined => {
      const [d, n] = split(path);
      return this.#dirs.get(d)?.names.get(n);
    };
    const handle = (f: SimFile): FileHandle => ({
      size: () => run(() => f.data.length),
      read: (position, length) => run(() => f.data.slice(position, position + length)),
      append: (data) =>
        run(() => {
          const next = new Uint8Array(f.data.length + data.length);
          next.set(f.data);
          next.set(data, f.data.length);
          f.data = next;
          f.version++;
          this.written += data.length;
        }),
      truncate: (length) =>
        run(() => {
          f.data = f.data.slice(0, length);
          f.version++;
        }),
      sync: async () => {
        // What is durable is the content as of the call; a sync that completes after a later one
        // (concurrent fsyncs) does not move durability backwards.
        const [data, version] = await run(() => [f.data, f.version] as const);
        if (this.#syncDelay) await this.#syncDelay();
        return run(() => {
          if (version > f.syncedVersion) {
            f.synced = data;
            f.syncedVersion = version;
          }
          this.syncs++;
        });
      },
      close: () => run(() => undefined),
    });
    return {
      mkdir: (path) =>
        run(() => {
          if (!this.#dirs.has(path)) this.#dirs.set(path, { names: new Map(), durable: new Map(), version: 0, durableVersion: 0 });
        }),
      list: (path) => run(() => [...dir(path).names.keys()]),
      readFile: (path) => run(() => file(path)?.data.slice()),
      open: (path) =>
        run(() => {
          const [d, n] = split(path);
          const sd = dir(d);
          let f = sd.names.get(n);
          if (!f) {
            f = { data: new Uint8Array(0), synced: new Uint8Array(0), version: 0, syncedVersion: 0 };
            sd.names.set(n, f);
            sd.version++;
          }
          return handle(f);
        }),
      rename: (from, to) =>
        run(() => {
          const [fd, fnm] = split(from);
          const [td, tnm] = split(to);
          const f = dir(fd).names.get(fnm);
          if (!f) throw Object.assign(new Error(`ENOENT: ${from}`), { code: 'ENOENT' });
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
    };
  }

  /** Loses everything not synced and kills the mounted views. */
  crash(): void {
    this.#epoch++;
    const files = new Set<SimFile>();
    for (const d of this.#dirs.values()) {
      d.names = new Map(d.durable);
      d.version = d.durableVersion;
      for (const f of d.names.values()) files.add(f);
    }
    for (const f of files) {
      if (f.data.length > f.synced.length && startsWith(f.data, f.synced)) {
        const keep = f.synced.length + Math.floor(this.#random() * (f.data.length - f.synced.length + 1));
        f.data = f.data.slice(0, keep);
      } else {
        f.data = f.synced;
      }
      f.synced = f.data;
      f.version = f.syncedVersion;
    }
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
}
