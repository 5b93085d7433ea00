import type { FileHandle, FileSystem, OpenOptions } from '@msg/segments';
import { timed, type FsyncStats } from './durable-file.js';

/**
 * `fs` with at most `slots` file fsyncs running at once (the others wait
 * their turn, first come first served). A checkpoint fsyncs every topic
 * written since the last one, all at once: a hundred of them fill Node's
 * thread pool (4 threads), and the raft log's fsync, which every publish
 * waits for, queues behind them. Directory fsyncs and every other operation
 * pass through unchanged. Each fsync's own duration (its wait for a slot
 * left out) goes into `stats`. Internal.
 */
export function limitSyncs(fs: FileSystem, slots: number, stats?: FsyncStats): FileSystem {
  let running = 0;
  const waiting: (() => void)[] = [];
  const limited = async (sync: () => Promise<void>): Promise<void> => {
    if (running >= slots) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      await sync();
    } finally {
      // Hand the slot to the next in line, or give it back.
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
  const wrapped: FileSystem = {
    mkdir: (dir) => fs.mkdir(dir),
    list: (dir) => fs.list(dir),
    readFile: (path) => fs.readFile(path),
    async open(path: string, options?: OpenOptions): Promise<FileHandle> {
      const handle = await fs.open(path, options);
      return {
        size: () => handle.size(),
        read: (position, length) => handle.read(position, length),
        ...(handle.readInto ? { readInto: (target: Uint8Array, position: number) => handle.readInto!(target, position) } : {}),
        append: (data) => handle.append(data),
        truncate: (length) => handle.truncate(length),
        sync: () => limited(() => timed(stats, () => handle.sync())),
        close: () => handle.close(),
      };
    },
    rename: (from, to) => fs.rename(from, to),
    remove: (path) => fs.remove(path),
    syncDir: (dir) => fs.syncDir(dir),
    stat: (path) => fs.stat(path),
    removeTree: (path) => fs.removeTree(path),
  };
  if (fs.lock) wrapped.lock = (dir) => fs.lock!(dir);
  return wrapped;
}
