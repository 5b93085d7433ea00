import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { makeTempDir } from './temp-dir.js';
import { waitFor } from './wait-for.js';

describe('waitFor', () => {
  it('returns the first truthy value', async () => {
    let n = 0;
    await expect(waitFor(() => (++n >= 3 ? n : undefined), { intervalMs: 1 })).resolves.toBe(3);
  });

  it('fails with the last error as cause once time runs out', async () => {
    const failing = waitFor(
      () => {
        throw new Error('nope');
      },
      { timeoutMs: 30, intervalMs: 5, message: 'never' },
    );
    await expect(failing).rejects.toThrow('waitFor: never after 30 ms');
  });
});

describe('makeTempDir', () => {
  let previous: string | undefined;
  it('makes a directory that exists during the test', async () => {
    previous = await makeTempDir();
    expect(existsSync(previous)).toBe(true);
  });
  it('removed the previous test\'s directory', () => {
    expect(previous && existsSync(previous)).toBe(false);
  });
});
