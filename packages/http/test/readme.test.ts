import { describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { example } from './readme-example.js';

describe('the README example', () => {
  it('is the tested file, verbatim', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    const code = await readFile(new URL('./readme-example.ts', import.meta.url), 'utf8');
    expect(readme).toContain(code.trim());
  });

  it('publishes two messages, streams them back and answers a ping', async () => {
    const { indexes, messages, ping } = await example();
    expect(indexes).toEqual(['1', '2']);
    expect(messages.map((m) => [m.index, Buffer.from(m.data).toString()])).toEqual([
      [1n, 'hello'],
      [2n, 'world'],
    ]);
    expect(ping).toBe('{"urls":["http://127.0.0.1:8086"]}\n');
  });
});
