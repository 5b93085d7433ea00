import { describe, expect, it } from '@jest/globals';
import { corruptSegment, isSegmentError, SegmentError, SegmentErrorCodes, type SegmentErrorCode } from './errors.js';

describe('SegmentError', () => {
  it('carries a stable code, its text, retriable, cause and location', () => {
    const cause = new Error('disk');
    const error = new SegmentError('WRITE_FAILED', { cause });
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ name: 'SegmentError', code: 'WRITE_FAILED', message: 'write failed', retriable: false });
    expect(error.cause).toBe(cause);
    expect(error.segment).toBeUndefined();
  });

  it('names the segment and byte offset of a corrupt record', () => {
    const error = corruptSegment('/data/7/12', 4096, 'record checksum mismatch');
    expect(error).toMatchObject({ code: 'CORRUPT_SEGMENT', segment: '/data/7/12', offset: 4096 });
    expect(error.message).toBe('corrupt segment: record checksum mismatch at byte 4096 of /data/7/12');
  });

  it('tells its codes apart and has a distinct text for each', () => {
    expect(isSegmentError(new SegmentError('TOPIC_CLOSED'), 'TOPIC_CLOSED')).toBe(true);
    expect(isSegmentError(new SegmentError('TOPIC_CLOSED'), 'NOT_OPEN')).toBe(false);
    expect(isSegmentError(new Error('TOPIC_CLOSED'))).toBe(false);
    const texts = (Object.keys(SegmentErrorCodes) as SegmentErrorCode[]).map((code) => new SegmentError(code).message);
    expect(new Set(texts).size).toBe(texts.length);
  });
});
