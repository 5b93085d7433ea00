import { nodeFileSystem, type FileSystem } from './file-system.js';

/**
 * Makes the entries of `dir` (files created, renamed or removed in it)
 * durable: fsync of the directory itself.
 */
export async function fsyncDir(dir: string, fs: FileSystem = nodeFileSystem): Promise<void> {
  await fs.syncDir(dir);
}

/**
 * Replaces `path` with `data` atomically and durably: write a temporary file
 * beside it, fsync it (through the handle that wrote it), rename it over
 * `path`, fsync the directory. A crash leaves either the old content or the
 * new, never a mix.
 */
export async function writeFileDurable(dir: string, path: string, data: string | Uint8Array, fs: FileSystem = nodeFileSystem): Promise<void> {
  const temp = `${path}.tmp`;
  await fs.remove(temp);
  const handle = await fs.open(temp);
  try {
    await handle.append(typeof data === 'string' ? new TextEncoder().encode(data) : data);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.remove(temp).catch(() => undefined);
    throw error;
  }
  await handle.close();
  try {
    await fs.rename(temp, path);
  } catch (error) {
    await fs.remove(temp).catch(() => undefined);
    throw error;
  }
  await fs.syncDir(dir);
}
