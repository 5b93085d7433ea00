import { describe, expect, it } from '@jest/globals';
import { SimDisk } from './sim-disk.js';

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString();

/** A disk whose first file holds "durable" synced, and "-lost" written after it by an fsync that failed. */
async function afterFailedSync(): Promise<SimDisk> {
  const disk = new SimDisk(() => 0.5);
  const fs = disk.mount();
  await fs.mkdir('/d');
  const handle = await fs.open('/d/f');
  await handle.append(Buffer.from('durable'));
  await handle.sync();
  await handle.append(Buffer.from('-lost'));
  disk.arm({ op: 'sync', code: 'EIO' });
  await expect(handle.sync()).rejects.toMatchObject({ code: 'EIO' });
  await fs.syncDir('/d');
  return disk;
}

describe('SimDisk after a failed fsync', () => {
  it('never makes the data that fsync failed to write durable, through any descriptor', async () => {
    const disk = await afterFailedSync();
    const handle = await disk.mount().open('/d/f');
    await handle.append(Buffer.from('-more'));
    await handle.sync();
    disk.crash();
    expect(text(await (await disk.mount().open('/d/f')).read(0, 100))).toBe('durable');
  });

  it('makes what is written after a truncation below that data durable again (its pages are gone, as on Linux)', async () => {
    const disk = await afterFailedSync();
    const handle = await disk.mount().open('/d/f');
    await handle.truncate('durable'.length);
    await handle.append(Buffer.from('-again'));
    await handle.sync();
    disk.crash();
    expect(text(await (await disk.mount().open('/d/f')).read(0, 100))).toBe('durable-again');
  });
});
