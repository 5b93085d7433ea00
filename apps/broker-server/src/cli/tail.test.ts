import { describe, expect, it } from '@jest/globals';
import type { Message } from '@msg/client';
import { escapeLine, formatMessage, hexDump } from './tail.js';

const message = (data: Uint8Array | string, index = 5n): Message => ({
  type: 1,
  topicID: 7n,
  index,
  data: typeof data === 'string' ? new TextEncoder().encode(data) : data,
});

describe('formatMessage', () => {
  it('text: index, type and the data as UTF-8 on one line', () => {
    expect(formatMessage(message('hello world'), 'text')).toBe('5 1 hello world\n');
    expect(formatMessage(message('two\nlines\tand \\ \x1b'), 'text')).toBe('5 1 two\\nlines\\tand \\\\ \\x1b\n');
    expect(formatMessage(message(new Uint8Array([0xff, 0xfe])), 'text')).toBe('5 1 <2 bytes, not UTF-8: use --format hex>\n');
  });

  it('hex: a header line, then a dump of 16 bytes a line', () => {
    const data = new TextEncoder().encode('0123456789abcdefXYZ');
    expect(formatMessage(message(data, 9n), 'hex')).toBe(
      'index 9 type 1 19 bytes\n' +
        '00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|\n' +
        '00000010  58 59 5a                                          |XYZ|\n',
    );
    expect(hexDump(new Uint8Array([0, 0x7f, 0x41]))).toBe('00000000  00 7f 41                                          |..A|');
  });

  it('json: u64 fields as strings, the data in base64, and text only when it is UTF-8', () => {
    expect(JSON.parse(formatMessage(message('hi', 18446744073709551615n), 'json'))).toEqual({
      index: '18446744073709551615',
      topicID: '7',
      type: 1,
      size: 2,
      data: 'aGk=',
      text: 'hi',
    });
    const binary = JSON.parse(formatMessage(message(new Uint8Array([0xff])), 'json')) as Record<string, unknown>;
    expect(binary).toEqual({ index: '5', topicID: '7', type: 1, size: 1, data: '/w==' });
  });
});

describe('escapeLine', () => {
  it('leaves printable text alone', () => {
    expect(escapeLine('plain ✓ text')).toBe('plain ✓ text');
  });
});
