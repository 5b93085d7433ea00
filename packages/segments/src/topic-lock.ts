import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BrokerError } from '@msg/wire';

/** Name of the lock file a writing `Topic` holds in its folder. */
export const LOCK_FILE = '.lock';

/**
 * The exclusive right to write a topic folder, held by one `Topic` of one
 * process: a lock file naming its owner (`<pid> <start time> <token>`), created
 * atomically (write a temporary file, then hard-link it into place, which fails
 * if the lock exists). A lock is stale, and taken over, when its PID is not
 * running, or when the PID was reused since: the process with that PID started
 * at another time (Linux: `/proc/<pid>/stat`), or it is this very process but
 * the token is not this process's (a broker restarted as PID 1 in a container
 * finds its own PID in the lock its previous life left behind).
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
      await fd.writeFile(`${ownLockLine()}\n`);
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
        if (owner !== undefined && isHeld(owner)) {
          throw new BrokerError('TOPIC_ALREADY_OPEN', { cause: new Error(`${topicDir} is locked by process ${owner.pid}`) });
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

/** What a lock file says of its owner. Older lock files hold only the PID. */
interface LockOwner {
  pid: number;
  /** The owner's start time in clock ticks since boot, when it was known. */
  startTime: string | undefined;
  /** A random token of the owning process, when recorded. */
  token: string | undefined;
}

let processToken: string | undefined;

/** The line this process writes into its lock files. */
function ownLockLine(): string {
  processToken ??= randomUUID();
  return `${process.pid} ${startTimeOf(process.pid) ?? '-'} ${processToken}`;
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
  const [pidText = '', startTime, token] = text.trim().split(' ');
  const pid = /^[0-9]+$/.test(pidText) ? Number(pidText) : Number.NaN;
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return { pid, startTime: startTime === '-' ? undefined : startTime, token };
}

/** Whether the owner named by a lock file is a live process (this one included) that still holds it. */
function isHeld(owner: LockOwner): boolean {
  if (owner.pid === process.pid) return owner.token === undefined || owner.token === processToken;
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (owner.startTime === undefined) return true;
  const now = startTimeOf(owner.pid);
  return now === undefined || now === owner.startTime;
}

/**
 * The start time of process `pid` in clock ticks since boot (field 22 of
 * `/proc/<pid>/stat`), or undefined where there is no such file (not Linux).
 */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const value = fields[19];
    return value !== undefined && /^[0-9]+$/.test(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
