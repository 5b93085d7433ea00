import { randomUUID } from 'node:crypto';
import { link, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BrokerError } from '@msg/wire';
import { isNotFound } from './segment.js';

/** Name of the lock file a writing `Topic` holds in its folder. */
export const LOCK_FILE = '.lock';

/**
 * The exclusive right to write a topic folder, held by one `Topic` of one
 * process: a lock file holding the owner's PID, created atomically (write a
 * temporary file, then hard-link it into place, which fails if the lock
 * exists). A lock whose PID is no longer running is stale and taken over.
 *
 * It guards against two writers on one machine by accident (a second broker
 * on the same data dir, a second `Topic` in the same process); it is not a
 * distributed lock (a PID means nothing on another host sharing the folder).
 */
export class TopicLock {
  readonly #path: string;
  #held = true;

  private constructor(path: string) {
    this.#path = path;
  }

  /**
   * Takes the lock of `topicDir` (which must exist). Throws `BrokerError`
   * `TOPIC_ALREADY_OPEN` when a live process (this one included) holds it.
   */
  static async acquire(topicDir: string): Promise<TopicLock> {
    const path = join(topicDir, LOCK_FILE);
    const temp = join(topicDir, `${LOCK_FILE}.${randomUUID()}.tmp`);
    const fd = await open(temp, 'wx');
    try {
      await fd.writeFile(`${process.pid}\n`);
    } finally {
      await fd.close();
    }
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await link(temp, path);
          return new TopicLock(path);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        }
        const owner = await readOwner(path);
        if (owner !== undefined && isRunning(owner)) {
          throw new BrokerError('TOPIC_ALREADY_OPEN', { cause: new Error(`${topicDir} is locked by process ${owner}`) });
        }
        await unlink(path).catch((error: unknown) => {
          if (!isNotFound(error)) throw error;
        });
      }
      throw new BrokerError('TOPIC_ALREADY_OPEN', { cause: new Error(`could not take the lock of ${topicDir}`) });
    } finally {
      await unlink(temp).catch(() => undefined);
    }
  }

  /** Releases the lock (only once; later calls do nothing). */
  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    await unlink(this.#path).catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
    });
  }
}

async function readOwner(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt(await readFile(path, 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
