import { describe, expect, it } from '@jest/globals';
import { BrokerError, errorCodeForText, ErrorCodes, isBrokerError, isErrorCode, type ErrorCode } from './errors.js';
import { parseU16, parseU64 } from './u64.js';

const originalTexts = [
  'path required', 'broker already closed', 'client already open', 'client closed', 'connection already open',
  'connection closed', 'cannot reuse connection', 'message type required', 'topic required', 'no leader',
  'index required', 'topic already open', 'segment reclaimed', 'stale write', 'reader closed',
  'message data required', 'not leader',
];

describe('BrokerError', () => {
  it('keeps every text of the original, each under one stable code', () => {
    for (const text of originalTexts) {
      const code = errorCodeForText(text);
      expect(code).toBeDefined();
      expect(new BrokerError(code!).message).toBe(text);
    }
    const texts = Object.values(ErrorCodes).map((e) => e.text);
    expect(new Set(texts).size).toBe(texts.length);
  });

  it('carries code, status, retriable, cause and details', () => {
    const cause = new Error('disk');
    const error = new BrokerError('SEGMENT_RECLAIMED', { cause, details: { firstIndex: 42n } });
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ name: 'BrokerError', code: 'SEGMENT_RECLAIMED', status: 410, retriable: false, firstIndex: 42n });
    expect(error.cause).toBe(cause);
    expect(isBrokerError(error, 'SEGMENT_RECLAIMED')).toBe(true);
    expect(isBrokerError(error, 'NOT_LEADER')).toBe(false);
    expect(new BrokerError('NOT_LEADER', { details: { leaderURL: 'http://127.0.0.1:1' } })).toMatchObject({ retriable: true, status: 503, leaderURL: 'http://127.0.0.1:1' });
  });

  it('answers 4xx for every input error', () => {
    const inputErrors: ErrorCode[] = ['TOPIC_REQUIRED', 'INDEX_REQUIRED', 'MESSAGE_TYPE_REQUIRED', 'MESSAGE_DATA_REQUIRED', 'BODY_TOO_LARGE', 'INVALID_BATCH'];
    for (const code of inputErrors) expect(ErrorCodes[code].status).toBeGreaterThanOrEqual(400);
    for (const code of inputErrors) expect(ErrorCodes[code].status).toBeLessThan(500);
    expect(isErrorCode('TOPIC_REQUIRED')).toBe(true);
    expect(isErrorCode('toString')).toBe(false);
  });

  it('has UNAUTHENTICATED (401) and FORBIDDEN (403), neither retriable', () => {
    expect(new BrokerError('UNAUTHENTICATED')).toMatchObject({ status: 401, retriable: false, message: 'unauthenticated' });
    expect(new BrokerError('FORBIDDEN')).toMatchObject({ status: 403, retriable: false, message: 'forbidden' });
  });
});

describe('limit codes', () => {
  it('answers a request past a limit 503, retriable, under its own code and text', () => {
    for (const [code, text] of [
      ['TOO_MANY_CONNECTIONS', 'too many connections'],
      ['TOO_MANY_STREAMS', 'too many streams'],
    ] as const) {
      expect(isErrorCode(code)).toBe(true);
      expect(new BrokerError(code)).toMatchObject({ code, status: 503, retriable: true, message: text });
      expect(errorCodeForText(text)).toBe(code);
    }
  });
});

describe('parseU64 / parseU16', () => {
  it.each([
    ['0', 0n], ['007', 7n], ['18446744073709551615', 18446744073709551615n], ['9007199254740993', 9007199254740993n],
  ])('parses %s', (text, value) => expect(parseU64(text)).toBe(value));

  it.each([undefined, null, '', '-1', '+1', '1.0', '0x10', ' 1', '1 ', '18446744073709551616', '1e3', '１'])(
    'refuses %p',
    (text) => expect(parseU64(text)).toBeUndefined(),
  );

  it('bounds u16', () => {
    expect(parseU16('65535')).toBe(65535);
    expect(parseU16('65536')).toBeUndefined();
  });
});
