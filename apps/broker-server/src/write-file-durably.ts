import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Replaces the file at `path` with `text` so that a crash leaves the old
 * content or the new one, never a mix: written to `<path>.tmp` (with
 * `mode`, which the umask narrows unless `exactMode`: then the file gets
 * exactly `mode`, as a secret must), fsynced, renamed over `path`, and the
 * folder fsynced. Errors are the file system's; the caller names what failed.
 */
export async function writeFileDurably(path: string, text: string, mode: number, exactMode = false): Promise<void> {
  const temporary = `${path}.tmp`;
  const file = await open(temporary, 'w', mode);
  try {
    if (exactMode) await file.chmod(mode);
    await file.writeFile(text, 'utf8');
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temporary, path);
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
