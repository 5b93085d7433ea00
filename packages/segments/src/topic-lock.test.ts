import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { LOCK_FILE, TopicLock } from './topic-lock.js';

describe('TopicLock', () => {
  it('holds the folder for one owner at a time and records its PID', async () => {
    const dir = await makeTempDir('lock-');
    const lock = await TopicLock.acquire(dir);
    expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
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
    expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
    await second.release();
  });
});
