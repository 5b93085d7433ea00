import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { LOCK_FILE, TopicLock } from './topic-lock.js';

describe('TopicLock', () => {
  it('holds the folder for one owner at a time and records its PID', async () => {
    const dir = await makeTempDir('lock-');
    const lock = await TopicLock.acquire(dir);
    expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toMatch(new RegExp(`^${process.pid} [0-9]+ [0-9a-f-]{36}\n$`));
    await expect(TopicLock.acquire(dir)).rejects.toMatchObject({ name: 'BrokerError', code: 'TOPIC_ALREADY_OPEN' });
    await lock.release();
    await lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    const again = await TopicLock.acquire(dir);
    await again.release();
  });

  it('takes over a lock left by a process that is no longer running, or holding garbage', async () => {
    const dir = await makeTempDir('lock-');
    // PID 2^22 + 1 is above Linux's pid_max limit: never a running process.
    await writeFile(join(dir, LOCK_FILE), `${2 ** 22 + 1}\n`);
    const lock = await TopicLock.acquire(dir);
    await lock.release();
    await writeFile(join(dir, LOCK_FILE), 'not a pid');
    const second = await TopicLock.acquire(dir);
    expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toMatch(new RegExp(`^${process.pid} `));
    await second.release();
  });

  it('takes over a lock whose PID was reused: this process in an earlier life, or another process started later', async () => {
    const dir = await makeTempDir('lock-');
    // A broker restarted as PID 1 in a container finds its own PID in the lock of its previous life.
    await writeFile(join(dir, LOCK_FILE), `${process.pid} 1 3f1d5c1e-0000-4000-8000-000000000000\n`);
    const own = await TopicLock.acquire(dir);
    await own.release();
    // PID 1 runs, but not since the start time this lock recorded.
    const init = startTime(1);
    await writeFile(join(dir, LOCK_FILE), `1 ${String(BigInt(init) + 1n)} 3f1d5c1e-0000-4000-8000-000000000000\n`);
    const other = await TopicLock.acquire(dir);
    await other.release();
  });

  it('refuses a lock held by another live process (the same PID and start time), and one with only a live PID', async () => {
    const dir = await makeTempDir('lock-');
    await writeFile(join(dir, LOCK_FILE), `1 ${startTime(1)} 3f1d5c1e-0000-4000-8000-000000000000\n`);
    await expect(TopicLock.acquire(dir)).rejects.toMatchObject({ code: 'TOPIC_ALREADY_OPEN' });
    await writeFile(join(dir, LOCK_FILE), '1\n');
    await expect(TopicLock.acquire(dir)).rejects.toMatchObject({ code: 'TOPIC_ALREADY_OPEN' });
    expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toBe('1\n');
  });
});

/** Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot. */
function startTime(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}
