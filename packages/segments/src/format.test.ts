import { describe, expect, it } from '@jest/globals';
import { encodeMessage, encodeMessages } from '@msg/wire';
import { msg } from '../test/helpers.js';
import {
  checksum,
  encodedRecordsLength,
  encodeFileHeader,
  encodeRecords,
  FILE_HEADER_SIZE,
  FILE_MAGIC,
  probeHeader,
  readRecordHeader,
  RECORD_HEADER_SIZE,
  RECORD_TARGET_PAYLOAD,
} from './format.js';

describe('file header', () => {
  const header = encodeFileHeader({ createdAt: 1_700_000_000_123, prevLastIndex: 41n });

  it('round-trips creation time and the previous segment\'s last index', () => {
    expect(header.byteLength).toBe(FILE_HEADER_SIZE);
    expect(header.subarray(0, 8)).toEqual(FILE_MAGIC);
    expect(probeHeader(header, 1000)).toEqual({ kind: 'v1', header: { createdAt: 1_700_000_000_123, prevLastIndex: 41n } });
  });

  it('reports a flipped bit anywhere in the header as damage, never as the original\'s format', () => {
    for (let bit = 0; bit < FILE_HEADER_SIZE * 8; bit++) {
      const bytes = header.slice();
      bytes[bit >> 3]! ^= 1 << (bit & 7);
      expect(probeHeader(bytes, 1000).kind).toBe('damaged');
    }
  });

  it('treats a header cut short, an empty file and zeros as a torn creation', () => {
    for (let size = 0; size < FILE_HEADER_SIZE; size++) expect(probeHeader(header.subarray(0, size), size).kind).toBe('partial');
    expect(probeHeader(new Uint8Array(FILE_HEADER_SIZE), FILE_HEADER_SIZE).kind).toBe('partial');
    const zeroed = header.slice();
    zeroed.fill(0, 8);
    expect(probeHeader(zeroed, 5000).kind).toBe('partial');
  });

  it('recognises raw frames of the original and refuses an unknown version', () => {
    const frame = encodeMessage(msg(2, 40));
    expect(probeHeader(frame.subarray(0, FILE_HEADER_SIZE), frame.byteLength).kind).toBe('legacy');
    expect(probeHeader(frame.subarray(0, 5), 5).kind).toBe('legacy');
    const future = header.slice();
    new DataView(future.buffer).setUint32(8, 2);
    new DataView(future.buffer).setUint32(28, checksum(future.subarray(0, 28)));
    expect(probeHeader(future, 100)).toEqual({ kind: 'damaged', reason: 'unsupported format version 2' });
  });
});

describe('encodeRecords', () => {
  it('wraps frames of the original encoding in one checksummed record', () => {
    const messages = [msg(3), msg(5, 0), msg(9, 100)];
    const bytes = encodeRecords(messages);
    expect(bytes.byteLength).toBe(encodedRecordsLength(messages));
    const header = readRecordHeader(bytes, 0)!;
    expect(header).toMatchObject({ firstIndex: 3n, lastIndex: 9n, payloadLength: bytes.byteLength - RECORD_HEADER_SIZE });
    const payload = bytes.subarray(RECORD_HEADER_SIZE);
    expect(payload).toEqual(encodeMessages(messages));
    expect(checksum(payload)).toBe(header.payloadCrc);
  });

  it('splits large batches into records of at most 64 KiB of frames, and gives a larger frame its own record', () => {
    const messages = [...Array.from({ length: 1000 }, (_, i) => msg(i + 1, 200)), msg(2000, RECORD_TARGET_PAYLOAD * 2), msg(2001, 5)];
    const bytes = encodeRecords(messages);
    expect(bytes.byteLength).toBe(encodedRecordsLength(messages));
    const records = [];
    for (let at = 0; at < bytes.byteLength; ) {
      const header = readRecordHeader(bytes, at)!;
      records.push(header);
      at += RECORD_HEADER_SIZE + header.payloadLength;
    }
    expect(records.length).toBeGreaterThan(3);
    expect(records.slice(0, -2).every((r) => r.payloadLength <= RECORD_TARGET_PAYLOAD)).toBe(true);
    expect(records.at(-2)).toMatchObject({ firstIndex: 2000n, lastIndex: 2000n });
    expect(records.at(-1)).toMatchObject({ firstIndex: 2001n, lastIndex: 2001n });
    expect(records[0]!.firstIndex).toBe(1n);
    expect(encodeRecords([])).toHaveLength(0);
  });

  it('detects any flipped bit of a record header', () => {
    const bytes = encodeRecords([msg(1)]);
    for (let bit = 0; bit < RECORD_HEADER_SIZE * 8; bit++) {
      const copy = bytes.slice();
      copy[bit >> 3]! ^= 1 << (bit & 7);
      expect(readRecordHeader(copy, 0)).toBeUndefined();
    }
  });
});
