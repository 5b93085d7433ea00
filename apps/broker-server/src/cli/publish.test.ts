import { describe, expect, it } from '@jest/globals';
import { lineGroups } from './publish.js';

async function* chunks(...parts: (string | Uint8Array)[]): AsyncGenerator<string | Uint8Array> {
  for (const part of parts) yield part;
}

async function groups(...parts: (string | Uint8Array)[]): Promise<string[][]> {
  const out: string[][] = [];
  for await (const group of lineGroups(chunks(...parts))) out.push(group.map((line) => Buffer.from(line).toString('utf8')));
  return out;
}

describe('lineGroups', () => {
  it('yields the lines each chunk completes, joining lines split across chunks', async () => {
    expect(await groups('one\ntw', 'o\nthree\n', 'four')).toEqual([['one'], ['two', 'three'], ['four']]);
  });

  it('drops \\r before \\n and skips empty lines (the protocol has no empty message)', async () => {
    expect(await groups('a\r\n\r\n\nb\n\n', '\r')).toEqual([['a', 'b']]);
  });

  it('keeps bytes that are not UTF-8 as they are', async () => {
    const out: Uint8Array[] = [];
    for await (const group of lineGroups(chunks(new Uint8Array([0xff, 0x00, 0x0a, 0x80])))) out.push(...group);
    expect(out.map((l) => [...l])).toEqual([[0xff, 0x00], [0x80]]);
  });

  it('yields nothing for empty input', async () => {
    expect(await groups()).toEqual([]);
    expect(await groups('\n\n')).toEqual([]);
  });
});
