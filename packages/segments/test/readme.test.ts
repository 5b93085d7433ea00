import { describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { journal } from './readme-example.js';

const PACKAGE_DIR = join(import.meta.dirname, '..');

describe('README', () => {
  it('embeds test/readme-example.ts verbatim (importing the package by name)', async () => {
    const readme = await readFile(join(PACKAGE_DIR, 'README.md'), 'utf8');
    const example = await readFile(join(import.meta.dirname, 'readme-example.ts'), 'utf8');
    const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBe(example.replace("from '../src/index.js'", "from '@msg/segments'"));
  });

  it('runs its example: appends, tails, replays, and continues after a reopen', async () => {
    const dir = await makeTempDir('readme-');
    const first = await journal(dir);
    expect(first.replay).toEqual(['1:created', '2:paid', '3:packed', '4:shipped', '5:delivered']);
    expect(first.tailed).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect(first.recovered).toEqual([]);
    const second = await journal(dir);
    expect(second.replay.slice(5)).toEqual(['6:created', '7:paid', '8:packed', '9:shipped', '10:delivered']);
    expect(second.tailed).toEqual([6n, 7n, 8n, 9n, 10n]);
  });
});
