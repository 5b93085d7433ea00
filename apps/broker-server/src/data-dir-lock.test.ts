import { describe, expect, it } from '@jest/globals';
import { makeTempDir } from '@msg/test-utils';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lockDataDir } from './data-dir-lock.js';
import { NodeDirError } from './node-dir-error.js';

/** The PID of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return child.pid!;
}

describe('lockDataDir', () => {
  it('refuses a second holder with DATA_DIR_LOCKED naming the dir and the holding PID; free again once released', async () => {
    const dir = await makeTempDir('msg-lock-');
    const lock = await lockDataDir(dir);
    const error = await lockDataDir(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NodeDirError);
    expect(error).toMatchObject({ code: 'DATA_DIR_LOCKED', dataDir: dir, retriable: true });
    expect((error as Error).message).toContain(dir);
    expect((error as Error).message).toContain(`process ${process.pid}`);
    await lock.release();
    const again = await lockDataDir(dir);
    await again.release();
  });

  it('takes over a lock left by a process that is gone', async () => {
    const dir = await makeTempDir('msg-lock-');
    await writeFile(join(dir, '.lock'), `${await deadPid()} 1 gone\n`);
    const lock = await lockDataDir(dir);
    expect((await readFile(join(dir, '.lock'), 'utf8')).split(' ')[0]).toBe(String(process.pid));
    await lock.release();
  });

  it('passes other errors through (a missing dir)', async () => {
    const error = await lockDataDir(join(await makeTempDir('msg-lock-'), 'missing')).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ENOENT' });
  });
});
