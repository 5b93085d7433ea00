import { afterEach } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const pending = new Set<string>();

// Importing this module from a test file registers the cleanup for that file.
afterEach(removeTempDirs);

/**
 * Creates a fresh directory under the OS temp dir. It is removed, with
 * everything in it, after the current test (jest `afterEach`).
 */
export async function makeTempDir(prefix = 'msg-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  pending.add(dir);
  return dir;
}

/** Removes every directory made by {@link makeTempDir} so far. */
export async function removeTempDirs(): Promise<void> {
  const dirs = [...pending];
  pending.clear();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 3 })));
}
