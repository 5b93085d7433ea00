import { basename, dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { nodeFileSystem, type FileSystem } from '@msg/segments';

/** Accumulated fsync latencies, in milliseconds. */
export interface FsyncStats {
  /** fsync calls made. */
  count: number;
  /** Sum of their durations, ms. */
  totalMs: number;
  /** Longest one, ms. */
  maxMs: number;
  /** The latest one, ms. */
  lastMs: number;
  /** Per bound of {@link FSYNC_BUCKETS_SECONDS}, fsyncs that took at most that long but more than the previous bound. */
  bucketCounts: number[];
}

/** Upper bounds (seconds) of the fsync latency histogram, ascending. */
export const FSYNC_BUCKETS_SECONDS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** A fresh, zeroed {@link FsyncStats}. */
export function newFsyncStats(): FsyncStats {
  return { count: 0, totalMs: 0, maxMs: 0, lastMs: 0, bucketCounts: FSYNC_BUCKETS_SECONDS.map(() => 0) };
}

/** A Prometheus-style histogram of `stats`: cumulative counts per bound (seconds), count and sum (seconds). */
export function fsyncHistogram(stats: FsyncStats): { buckets: { le: number; count: number }[]; count: number; sumSeconds: number } {
  let cumulative = 0;
  const buckets = FSYNC_BUCKETS_SECONDS.map((le, i) => ({ le, count: (cumulative += stats.bucketCounts[i] ?? 0) }));
  return { buckets, count: stats.count, sumSeconds: stats.totalMs / 1000 };
}

function record(stats: FsyncStats | undefined, started: number): void {
  if (!stats) return;
  const ms = performance.now() - started;
  stats.count++;
  stats.totalMs += ms;
  stats.lastMs = ms;
  if (ms > stats.maxMs) stats.maxMs = ms;
  const bucket = FSYNC_BUCKETS_SECONDS.findIndex((le) => ms / 1000 <= le);
  if (bucket >= 0) stats.bucketCounts[bucket] = (stats.bucketCounts[bucket] ?? 0) + 1;
}

/**
 * Runs `fn` (an fsync) and records how long it took into `stats`.
 * A failure is not recorded, and is the caller's to handle.
 */
export async function timed<T>(stats: FsyncStats | undefined, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await fn();
  record(stats, started);
  return result;
}

/**
 * fsyncs the directory at `path` through `fs` (the entries created, renamed
 * or removed in it become durable). A missing directory is ignored when
 * `missingOk`. Files are never fsynced by path: their data is made durable
 * through the handle that wrote it (after a failed fsync, an fsync through
 * a fresh descriptor can succeed although the data is lost).
 */
export async function fsyncPath(path: string, stats?: FsyncStats, missingOk = false, fs: FileSystem = nodeFileSystem): Promise<void> {
  try {
    await timed(stats, () => fs.syncDir(path));
  } catch (error) {
    if (missingOk && (error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
}

/**
 * Replaces the file at `path` with `bytes` atomically and durably, through
 * `fs`: write a temporary file beside it, fsync it through the handle that
 * wrote it, rename it over `path`, fsync the folder. After a crash, `path`
 * holds either the old or the new content, never a mix.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array, stats?: FsyncStats, fs: FileSystem = nodeFileSystem): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.tmp`);
  await fs.remove(temp);
  const handle = await fs.open(temp);
  try {
    await handle.append(bytes);
    await timed(stats, () => handle.sync());
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.remove(temp).catch(() => undefined);
    throw error;
  }
  await handle.close();
  await fs.rename(temp, path);
  await fsyncPath(dirname(path), stats, false, fs);
}
