import { describe, expect, it } from '@jest/globals';
import { MessageType, decodeMessage, encodeMessage, encodeSetTopicMaxIndex, isBrokerError } from '@msg/wire';
import { MAX_READER_ID_LENGTH, decodeReaderReport, encodeReaderReport, readerReportMessage, readerReportTime } from './reader-report.js';

describe('ReaderReport', () => {
  it('decodes the original 16-byte payload as the anonymous reader', () => {
    const data = encodeSetTopicMaxIndex({ topicID: 7n, index: 2n ** 63n + 5n });
    expect(decodeReaderReport(data)).toEqual({ topicID: 7n, index: 2n ** 63n + 5n, readerId: '' });
  });

  it('encodes the anonymous reader as exactly the original payload', () => {
    expect(encodeReaderReport({ topicID: 20n, index: 31n, readerId: '' })).toEqual(encodeSetTopicMaxIndex({ topicID: 20n, index: 31n }));
  });

  it('round-trips a reader id after the first 16 bytes', () => {
    const bytes = encodeReaderReport({ topicID: 1n, index: 9n, readerId: 'node-b/é' });
    expect(bytes.byteLength).toBe(16 + new TextEncoder().encode('node-b/é').byteLength);
    expect(decodeReaderReport(bytes)).toEqual({ topicID: 1n, index: 9n, readerId: 'node-b/é' });
  });

  it('rejects payloads shorter than 16 bytes as INVALID_MESSAGE', () => {
    for (const n of [0, 1, 8, 15]) {
      let caught: unknown;
      try {
        decodeReaderReport(new Uint8Array(n));
      } catch (error) {
        caught = error;
      }
      expect(isBrokerError(caught, 'INVALID_MESSAGE')).toBe(true);
    }
  });

  it('rejects a reader id that is too long or not UTF-8', () => {
    expect(() => encodeReaderReport({ topicID: 1n, index: 1n, readerId: 'x'.repeat(MAX_READER_ID_LENGTH + 1) })).toThrow('reader id');
    expect(() => decodeReaderReport(new Uint8Array(16 + MAX_READER_ID_LENGTH + 1))).toThrow('SetTopicMaxIndex data must be');
    const bad = new Uint8Array(18);
    bad.set([0xff, 0xfe], 16);
    expect(() => decodeReaderReport(bad)).toThrow('not UTF-8');
  });

  it('carries the leader time of a report entry in its header index, and reads 0 as unknown', () => {
    const message = decodeMessage(encodeMessage(readerReportMessage({ topicID: 3n, index: 8n, readerId: 'r' }, 1_700_000_000_123)));
    expect(message).toMatchObject({ type: MessageType.SetTopicMaxIndex, topicID: 0n, index: 1_700_000_000_123n });
    expect(decodeReaderReport(message.data)).toEqual({ topicID: 3n, index: 8n, readerId: 'r' });
    expect(readerReportTime(message)).toBe(1_700_000_000_123);
    expect(readerReportTime({ ...message, index: 0n })).toBeUndefined();
    expect(readerReportTime({ ...message, index: 2n ** 60n })).toBeUndefined();
    expect(readerReportMessage({ topicID: 3n, index: 8n, readerId: '' }, -5).index).toBe(0n);
    expect(readerReportMessage({ topicID: 3n, index: 8n, readerId: '' }, 1.5).index).toBe(0n);
  });
});
