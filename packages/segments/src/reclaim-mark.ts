import { join } from 'node:path';
import { parseU64 } from '@msg/wire';
import { corruptSegment } from './errors.js';
import { writeFileDurable } from './durable.js';
import { nodeFileSystem, type FileSystem } from './file-system.js';

/**
 * Name of the file (inside a topic folder) recording the first index kept by
 * the last reclamation: readers asking for anything below it get
 * `SEGMENT_RECLAIMED`. It is written (durably) before any segment is
 * deleted, so a crash midway leaves segments that `open()` finishes deleting.
 */
export const RECLAIM_MARK_FILE = '.first-index';

/** Reads the reclaim mark of a topic folder; 0n when there is none. */
export async function readReclaimMark(topicDir: string, fs: FileSystem = nodeFileSystem): Promise<bigint> {
  const path = join(topicDir, RECLAIM_MARK_FILE);
  const bytes = await fs.readFile(path);
  if (bytes === undefined) return 0n;
  const value = parseU64(new TextDecoder().decode(bytes).trim());
  if (value === undefined) throw corruptSegment(path, 0, 'reclaim mark is not a decimal u64');
  return value;
}

/** Records `index` as the reclaim mark, atomically and durably. */
export async function writeReclaimMark(topicDir: string, index: bigint, fs: FileSystem = nodeFileSystem): Promise<void> {
  await writeFileDurable(topicDir, join(topicDir, RECLAIM_MARK_FILE), `${index}\n`, fs);
}

/** Removes a temporary mark file left by a crash during {@link writeReclaimMark}. */
export async function removeStaleMarkTemp(topicDir: string, fs: FileSystem = nodeFileSystem): Promise<void> {
  await fs.remove(join(topicDir, `${RECLAIM_MARK_FILE}.tmp`));
}
