import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';

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
 * fsyncs the file or directory at `path` (fsync covers the file, whichever
 * descriptor it goes through, so this also makes durable what another
 * descriptor wrote). A missing path is ignored when `missingOk`.
 */
export async function fsyncPath(path: string, stats?: FsyncStats, missingOk = false): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if (missingOk && (error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  try {
    const started = performance.now();
    await handle.sync();
    record(stats, started);
  } finally {
    await handle.close();
  }
}

/**
 * Replaces the file at `path` with `bytes` atomically and durably: write a
 * temporary file beside it, fsync it, rename it over `path`, fsync the folder.
 * After a crash, `path` holds either the old or the new content, never a mix.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array, stats?: FsyncStats): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.tmp`);
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(bytes);
    const started = performance.now();
    await handle.sync();
    record(stats, started);
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temp, path);
  await fsyncPath(dirname(path), stats);
}
