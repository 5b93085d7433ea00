import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LOCK_FILE, NodeFileSystem, type FileLock } from '@msg/segments';
import { NodeDirError } from './node-dir-error.js';

/** What {@link lockDataDir} needs of a file system: @msg/segments' cross-process folder lock. */
export interface DirLocker {
  lock(dir: string): Promise<FileLock>;
}

const defaultLocker: DirLocker = new NodeFileSystem();

/**
 * Takes the exclusive lock of a node's data dir (raft and broker alike), which
 * must exist: `<dataDir>/.lock`, the same lock @msg/segments takes on a topic
 * folder (it names its owner by PID and process start time, so a lock left by
 * a process that is gone, or whose PID another process now has, is taken over).
 * Call it before anything in the dir is read or written; release it last.
 * @throws NodeDirError `DATA_DIR_LOCKED` when a live process (this one
 *   included) holds it; the message names the dir and that process's PID.
 */
export async function lockDataDir(dataDir: string, locker: DirLocker = defaultLocker): Promise<FileLock> {
  try {
    return await locker.lock(dataDir);
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'TOPIC_ALREADY_OPEN') throw error;
    const holder = await holderOf(dataDir);
    throw new NodeDirError(
      'DATA_DIR_LOCKED',
      dataDir,
      `data dir ${dataDir} is in use by ${holder === undefined ? 'another broker process' : `process ${holder}`} (lock file ${join(dataDir, LOCK_FILE)}): ` +
        'one node dir serves one process; stop that process first, or give this one its own --data-dir',
      { cause: error },
    );
  }
}

/** The PID the lock file names (its first word), or undefined when it is gone or unreadable. */
async function holderOf(dataDir: string): Promise<number | undefined> {
  const text = await readFile(join(dataDir, LOCK_FILE), 'utf8').catch(() => '');
  const word = text.trim().split(' ')[0] ?? '';
  return /^[0-9]+$/.test(word) ? Number(word) : undefined;
}
