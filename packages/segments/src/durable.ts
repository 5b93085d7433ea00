import { open, rename, unlink } from 'node:fs/promises';

/**
 * Makes the entries of `dir` (files created, renamed or removed in it)
 * durable: fsync of the directory itself.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await open(dir, 'r');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

/**
 * Replaces `path` with `data` atomically and durably: write a temporary file
 * beside it, fsync it, rename it over `path`, fsync the directory. A crash
 * leaves either the old content or the new, never a mix.
 */
export async function writeFileDurable(dir: string, path: string, data: string | Uint8Array): Promise<void> {
  const temp = `${path}.tmp`;
  const fd = await open(temp, 'w');
  try {
    await fd.writeFile(data);
    await fd.sync();
  } finally {
    await fd.close();
  }
  try {
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await fsyncDir(dir);
}
