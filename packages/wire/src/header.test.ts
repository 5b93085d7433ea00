import { describe, expect, it } from '@jest/globals';
import { fromHex, loadMessageVectors, toHex } from '../test/vectors.js';
import { frameDataLength, frameIndex, frameTopicID, frameType, MESSAGE_HEADER_SIZE, readHeader, writeFrameIndex, writeHeader } from './header.js';
import { MAX_U64 } from './u64.js';

const vectors = loadMessageVectors();

describe('the frame header reader and writer', () => {
  it.each(vectors.map((v) => [`type ${v.type} topic ${v.topicID} index ${v.index}`, v] as const))('reads the original\'s header of %s', (_name, v) => {
    const bytes = fromHex(v.encodedHex);
    expect(readHeader(bytes)).toEqual({ type: v.type, topicID: BigInt(v.topicID), index: BigInt(v.index), dataLength: v.dataHex.length / 2 });
    expect([frameType(bytes), frameTopicID(bytes), frameIndex(bytes), frameDataLength(bytes)]).toEqual([v.type, BigInt(v.topicID), BigInt(v.index), v.dataHex.length / 2]);
  });

  it.each(vectors.map((v) => [`type ${v.type} topic ${v.topicID} index ${v.index}`, v] as const))('writes the original\'s header of %s', (_name, v) => {
    const bytes = new Uint8Array(MESSAGE_HEADER_SIZE);
    writeHeader(bytes, 0, v.type, BigInt(v.topicID), BigInt(v.index), v.dataHex.length / 2);
    expect(toHex(bytes)).toBe(v.encodedHex.slice(0, 2 * MESSAGE_HEADER_SIZE));
  });

  it.each([0n, 1n, 0xffff_ffffn, 0x1_0000_0000n, 0x8000_0000_0000_0001n, MAX_U64])('round-trips the u64 %s at an offset inside a larger buffer', (value) => {
    const buffer = new Uint8Array(3 + MESSAGE_HEADER_SIZE + 5).fill(0xaa);
    const bytes = buffer.subarray(3);
    writeHeader(bytes, 0, 0xffff, value, MAX_U64 - value, 0xffff_ffff);
    expect(readHeader(bytes, 0)).toEqual({ type: 0xffff, topicID: value, index: MAX_U64 - value, dataLength: 0xffff_ffff });
    writeFrameIndex(bytes, 0, value);
    expect(frameIndex(bytes, 0)).toBe(value);
    expect(frameTopicID(bytes, 0)).toBe(value);
    expect([...buffer.subarray(0, 3), ...buffer.subarray(3 + MESSAGE_HEADER_SIZE)]).toEqual(new Array<number>(8).fill(0xaa));
  });

  it('overwrites only the index field', () => {
    const v = vectors[0]!;
    const bytes = fromHex(v.encodedHex);
    writeFrameIndex(bytes, 0, 0x0102_0304_0506_0708n);
    const expected = v.encodedHex.slice(0, 20) + '0102030405060708' + v.encodedHex.slice(36);
    expect(toHex(bytes)).toBe(expected);
  });
});
