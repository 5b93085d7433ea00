import { readFile, rm } from 'node:fs/promises';
import { describe, expect, it } from '@jest/globals';
import { example } from './readme-example.js';

describe('the README example', () => {
  it('is the tested file, verbatim', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    const code = await readFile(new URL('./readme-example.ts', import.meta.url), 'utf8');
    expect(readme).toContain(code.trim());
  });

  it('replicates two commands from the leader to the node that joined', async () => {
    const { index, leader, maps, dir } = await example();
    await rm(dir, { recursive: true, force: true });
    expect(index).toBeGreaterThan(2);
    expect(leader).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    for (const map of maps) expect([...map]).toEqual([['color', 'blue'], ['shape', 'round']]);
  });
});
