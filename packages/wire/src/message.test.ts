import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromHex, loadMessageVectors, toHex, VECTORS_DIR } from '../test/vectors.js';
import { BrokerError } from './errors.js';
import { MESSAGE_HEADER_SIZE } from './header.js';
import { decodeMessage, encodeMessage, encodeMessages, type Message } from './message.js';
import { MAX_U64 } from './u64.js';

const vectors = loadMessageVectors();

describe('encodeMessage / decodeMessage', () => {
  it('has vectors to check against', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(6);
  });

  it.each(vectors.map((v) => [`type ${v.type} topic ${v.topicID} index ${v.index} (${v.dataHex.length / 2} bytes)`, v] as const))(
    'encodes and decodes the original\'s bytes for %s',
    (_name, v) => {
      const message: Message = { type: v.type, topicID: BigInt(v.topicID), index: BigInt(v.index), data: fromHex(v.dataHex) };
      expect(toHex(encodeMessage(message))).toBe(v.encodedHex);
      const decoded = decodeMessage(fromHex(v.encodedHex));
      expect(decoded.type).toBe(v.type);
      expect(decoded.topicID).toBe(BigInt(v.topicID));
      expect(decoded.index).toBe(BigInt(v.index));
      expect(toHex(decoded.data)).toBe(v.dataHex);
    },
  );

  it('matches the worked example of the spec', () => {
    const bytes = encodeMessage({ type: 1, topicID: 7n, index: 2n, data: new TextEncoder().encode('hello-0') });
    expect(toHex(bytes)).toBe('0001' + '0000000000000007' + '0000000000000002' + '00000007' + '68656c6c6f2d30');
  });

  it('encodes empty data as exactly the 22-byte header', () => {
    expect(encodeMessage({ type: 0, topicID: 0n, index: 0n, data: new Uint8Array() }).byteLength).toBe(MESSAGE_HEADER_SIZE);
  });

  it('reproduces the stream body of topic 20 byte for byte', () => {
    const stream = new Uint8Array(readFileSync(join(VECTORS_DIR, 'stream-topic20.bin')));
    const messages: Message[] = [];
    let offset = 0;
    while (offset < stream.byteLength) {
      const length = MESSAGE_HEADER_SIZE + new DataView(stream.buffer, stream.byteOffset).getUint32(offset + 18);
      messages.push(decodeMessage(stream.subarray(offset, offset + length)));
      offset += length;
    }
    expect(messages).toHaveLength(5);
    expect(messages.every((m) => m.topicID === 20n)).toBe(true);
    expect(toHex(encodeMessages(messages))).toBe(toHex(stream));
  });

  it.each([
    ['a type above u16', { type: 0x10000, topicID: 1n, index: 1n, data: new Uint8Array() }],
    ['a negative type', { type: -1, topicID: 1n, index: 1n, data: new Uint8Array() }],
    ['a fractional type', { type: 1.5, topicID: 1n, index: 1n, data: new Uint8Array() }],
    ['a topic id above u64', { type: 1, topicID: MAX_U64 + 1n, index: 1n, data: new Uint8Array() }],
    ['a negative index', { type: 1, topicID: 1n, index: -1n, data: new Uint8Array() }],
    ['a number topic id', { type: 1, topicID: 1 as unknown as bigint, index: 1n, data: new Uint8Array() }],
  ])('refuses to encode %s with INVALID_MESSAGE', (_name, message) => {
    expect(() => encodeMessage(message)).toThrow(expect.objectContaining({ code: 'INVALID_MESSAGE' }));
  });

  it('rejects a short frame with TRUNCATED_FRAME and trailing bytes with INVALID_MESSAGE', () => {
    const frame = encodeMessage({ type: 1, topicID: 2n, index: 3n, data: new Uint8Array([1, 2, 3]) });
    for (let cut = 0; cut < frame.byteLength; cut++) {
      expect(() => decodeMessage(frame.subarray(0, cut))).toThrow(BrokerError);
      try {
        decodeMessage(frame.subarray(0, cut));
      } catch (error) {
        expect((error as BrokerError).code).toBe('TRUNCATED_FRAME');
        expect((error as BrokerError).message).toBe('unexpected EOF');
      }
    }
    const long = new Uint8Array(frame.byteLength + 1);
    long.set(frame);
    expect(() => decodeMessage(long)).toThrow(expect.objectContaining({ code: 'INVALID_MESSAGE' }));
  });
});
