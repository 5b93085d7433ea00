import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fromHex, loadMessageVectors, toHex, VECTORS_DIR } from '../test/vectors.js';
import { BrokerError } from './errors.js';
import { decodeMessages, DEFAULT_MAX_DATA_LENGTH, MessageDecoder } from './decoder.js';
import { encodeMessage, encodeMessages, type Message } from './message.js';

const stream20 = new Uint8Array(readFileSync(join(VECTORS_DIR, 'stream-topic20.bin')));

function feed(decoder: MessageDecoder, bytes: Uint8Array, cuts: number[]): Message[] {
  const out: Message[] = [];
  let start = 0;
  for (const cut of [...cuts, bytes.byteLength]) {
    out.push(...decoder.push(bytes.subarray(start, cut)));
    start = cut;
  }
  return out;
}

function plain(messages: Message[]) {
  return messages.map((m) => ({ type: m.type, topicID: m.topicID, index: m.index, data: toHex(m.data) }));
}

describe('MessageDecoder', () => {
  it('decodes the topic-20 stream fed one byte at a time', () => {
    const decoder = new MessageDecoder();
    const out: Message[] = [];
    for (let i = 0; i < stream20.byteLength; i++) out.push(...decoder.push(stream20.subarray(i, i + 1)));
    decoder.end();
    expect(out).toHaveLength(5);
    expect(toHex(encodeMessages(out))).toBe(toHex(stream20));
  });

  it('decodes every vector back to back under any chunking', () => {
    const vectors = loadMessageVectors();
    const bytes = new Uint8Array(Buffer.concat(vectors.map((v) => fromHex(v.encodedHex))));
    const expected = vectors.map((v) => ({ type: v.type, topicID: BigInt(v.topicID), index: BigInt(v.index), data: v.dataHex }));
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: bytes.byteLength - 1 }), { maxLength: 40 }), (cuts) => {
        const decoder = new MessageDecoder();
        const out = feed(decoder, bytes, cuts.sort((a, b) => a - b));
        decoder.end();
        expect(plain(out)).toEqual(expected);
      }),
      { numRuns: 200 },
    );
  });

  it('accepts a clean end between frames and an empty stream', () => {
    const decoder = new MessageDecoder();
    expect(decoder.push(new Uint8Array())).toEqual([]);
    expect(() => decoder.end()).not.toThrow();
  });

  it('reports a partial header or body at the end as TRUNCATED_FRAME', () => {
    const frame = encodeMessage({ type: 3, topicID: 4n, index: 5n, data: new Uint8Array(10) });
    for (const cut of [1, 21, 22, 31]) {
      const decoder = new MessageDecoder();
      decoder.push(frame.subarray(0, cut));
      expect(decoder.bufferedBytes).toBe(cut);
      expect(() => decoder.end()).toThrow(expect.objectContaining({ code: 'TRUNCATED_FRAME' }));
    }
  });

  it('rejects a length above the cap before allocating, and stays failed', () => {
    const header = encodeMessage({ type: 1, topicID: 1n, index: 1n, data: new Uint8Array() });
    new DataView(header.buffer).setUint32(18, 0xffff_ffff);
    const decoder = new MessageDecoder();
    expect(() => decoder.push(header)).toThrow(expect.objectContaining({ code: 'FRAME_TOO_LARGE' }));
    expect(() => decoder.push(new Uint8Array(1))).toThrow(BrokerError);
    expect(() => decoder.end()).toThrow(expect.objectContaining({ code: 'FRAME_TOO_LARGE' }));
  });

  it('applies a configured cap, also when the header arrives split', () => {
    const frame = encodeMessage({ type: 1, topicID: 1n, index: 1n, data: new Uint8Array(11) });
    const decoder = new MessageDecoder({ maxDataLength: 10 });
    decoder.push(frame.subarray(0, 5));
    expect(() => decoder.push(frame.subarray(5))).toThrow(expect.objectContaining({ code: 'FRAME_TOO_LARGE' }));
    expect(new MessageDecoder({ maxDataLength: 11 }).push(frame)).toHaveLength(1);
  });

  it('documents a 16 MiB default cap', () => {
    expect(DEFAULT_MAX_DATA_LENGTH).toBe(16 * 1024 * 1024);
    expect(() => new MessageDecoder({ maxDataLength: -1 })).toThrow(RangeError);
  });
});

describe('decodeMessages', () => {
  it('iterates messages of a Node readable stream', async () => {
    const chunks = [stream20.subarray(0, 7), stream20.subarray(7, 70), stream20.subarray(70)];
    const out: Message[] = [];
    for await (const message of decodeMessages(Readable.from(chunks.map((c) => Buffer.from(c))))) out.push(message);
    expect(out.map((m) => m.index)).toHaveLength(5);
    expect(toHex(encodeMessages(out))).toBe(toHex(stream20));
  });

  it('throws TRUNCATED_FRAME when the stream ends inside a frame', async () => {
    const iterate = async () => {
      for await (const _ of decodeMessages([stream20.subarray(0, stream20.byteLength - 1)])) {
        // drain
      }
    };
    await expect(iterate()).rejects.toMatchObject({ code: 'TRUNCATED_FRAME' });
  });
});
