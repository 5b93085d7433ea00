import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromHex, loadMessageVectors, toHex, VECTORS_DIR } from '../test/vectors.js';
import { MessageDecoder } from './decoder.js';
import type { BrokerError } from './errors.js';
import { asFrame, encodeFrame, frameData, splitFrames } from './frame.js';
import { encodeMessage, encodeMessages } from './message.js';
import { MAX_U64 } from './u64.js';

const vectors = loadMessageVectors();

/** What a MessageDecoder fed `bytes` in one chunk and ended makes of them: the frames' bytes, or the error. */
function decoderOutcome(bytes: Uint8Array, maxDataLength?: number): string[] | { code: string; message: string } {
  try {
    const decoder = new MessageDecoder(maxDataLength === undefined ? {} : { maxDataLength });
    const messages = decoder.push(bytes);
    decoder.end();
    return messages.map((m) => toHex(encodeMessage(m)));
  } catch (error) {
    return { code: (error as BrokerError).code, message: (error as BrokerError).message };
  }
}

function splitOutcome(bytes: Uint8Array, maxDataLength?: number): string[] | { code: string; message: string } {
  try {
    return splitFrames(bytes, maxDataLength === undefined ? {} : { maxDataLength }).map((f) => toHex(f));
  } catch (error) {
    return { code: (error as BrokerError).code, message: (error as BrokerError).message };
  }
}

describe('encodeFrame', () => {
  it.each(vectors.map((v) => [`type ${v.type} topic ${v.topicID} index ${v.index}`, v] as const))('encodes the original\'s bytes for %s', (_name, v) => {
    const frame = encodeFrame({ type: v.type, topicID: BigInt(v.topicID), data: fromHex(v.dataHex) }, BigInt(v.index));
    expect(toHex(frame)).toBe(v.encodedHex);
    expect(toHex(frameData(frame))).toBe(v.dataHex);
  });

  it('writes index 0 unless told otherwise', () => {
    expect(toHex(encodeFrame({ type: 1, topicID: 7n, data: new TextEncoder().encode('hello-0') }))).toBe(
      '0001' + '0000000000000007' + '0000000000000000' + '00000007' + '68656c6c6f2d30',
    );
  });

  it.each([
    ['a type above u16', { type: 0x10000, topicID: 1n, data: new Uint8Array() }],
    ['a fractional type', { type: 1.5, topicID: 1n, data: new Uint8Array() }],
    ['a topic id above u64', { type: 1, topicID: MAX_U64 + 1n, data: new Uint8Array() }],
    ['a number topic id', { type: 1, topicID: 1 as unknown as bigint, data: new Uint8Array() }],
    ['data that is not bytes', { type: 1, topicID: 1n, data: 'x' as unknown as Uint8Array }],
  ])('refuses %s with INVALID_MESSAGE', (_name, message) => {
    expect(() => encodeFrame(message)).toThrow(expect.objectContaining({ code: 'INVALID_MESSAGE' }));
  });
});

describe('asFrame', () => {
  it('returns the very bytes of one whole frame', () => {
    const bytes = fromHex(vectors[0]!.encodedHex);
    expect(asFrame(bytes)).toBe(bytes);
  });

  it('rejects a short frame with TRUNCATED_FRAME, trailing bytes with INVALID_MESSAGE, a long one with FRAME_TOO_LARGE', () => {
    const frame = encodeMessage({ type: 1, topicID: 2n, index: 3n, data: new Uint8Array([1, 2, 3]) });
    for (let cut = 0; cut < frame.byteLength; cut++) expect(() => asFrame(frame.subarray(0, cut))).toThrow(expect.objectContaining({ code: 'TRUNCATED_FRAME', message: 'unexpected EOF' }));
    const long = new Uint8Array(frame.byteLength + 1);
    long.set(frame);
    expect(() => asFrame(long)).toThrow(expect.objectContaining({ code: 'INVALID_MESSAGE' }));
    expect(() => asFrame(frame, { maxDataLength: 2 })).toThrow(
      expect.objectContaining({ code: 'FRAME_TOO_LARGE', message: 'frame too large: data length 3 exceeds the limit of 2 bytes' }),
    );
  });
});

describe('splitFrames', () => {
  it('splits the original\'s stream body of topic 20 into views of its frames', () => {
    const stream = new Uint8Array(readFileSync(join(VECTORS_DIR, 'stream-topic20.bin')));
    const frames = splitFrames(stream);
    expect(frames).toHaveLength(5);
    expect(frames.every((f) => f.buffer === stream.buffer)).toBe(true);
    expect(frames.map((f) => toHex(f)).join('')).toBe(toHex(stream));
  });

  it('gives no frames for no bytes', () => {
    expect(splitFrames(new Uint8Array())).toEqual([]);
  });

  it('agrees with MessageDecoder on every cut of a body, errors and their text included', () => {
    const body = encodeMessages([
      { type: 1, topicID: 1n, index: 0n, data: new Uint8Array([9]) },
      { type: 2, topicID: 2n ** 40n, index: 5n, data: new Uint8Array() },
      { type: 3, topicID: 3n, index: 0n, data: new Uint8Array(40).fill(7) },
    ]);
    for (let cut = 0; cut <= body.byteLength; cut++) {
      expect(splitOutcome(body.subarray(0, cut))).toEqual(decoderOutcome(body.subarray(0, cut)));
      expect(splitOutcome(body.subarray(0, cut), 10)).toEqual(decoderOutcome(body.subarray(0, cut), 10));
    }
  });
});
