import { describe, expect, it } from '@jest/globals';
import { fromHex, loadMessageVectors, toHex } from '../test/vectors.js';
import { decodeSetTopicMaxIndex, encodeSetTopicMaxIndex, isBrokerMessageType, MessageType } from './types.js';

describe('SetTopicMaxIndex', () => {
  it('matches the original\'s internal message vector', () => {
    const vector = loadMessageVectors().find((v) => v.type === MessageType.SetTopicMaxIndex);
    expect(vector).toBeDefined();
    const payload = decodeSetTopicMaxIndex(fromHex(vector!.dataHex));
    expect(payload).toEqual({ topicID: 20n, index: 5n });
    expect(toHex(encodeSetTopicMaxIndex(payload))).toBe(vector!.dataHex);
  });

  it.each([0, 1, 15, 17])('rejects %i-byte data with INVALID_MESSAGE instead of crashing', (size) => {
    expect(() => decodeSetTopicMaxIndex(new Uint8Array(size))).toThrow(
      expect.objectContaining({ code: 'INVALID_MESSAGE' }),
    );
  });

  it('flags broker types by the 0x8000 bit', () => {
    expect(isBrokerMessageType(0x8000)).toBe(true);
    expect(isBrokerMessageType(0x8123)).toBe(true);
    expect(isBrokerMessageType(0x7fff)).toBe(false);
  });
});
