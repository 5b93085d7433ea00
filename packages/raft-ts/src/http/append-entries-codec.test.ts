import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { crc32 } from 'node:zlib';
import { isRaftError } from '../errors.js';
import { EntryType, type AppendEntriesRequest, type LogEntry } from '../types.js';
import { decodeAppendEntriesRequest, encodeAppendEntriesRequest } from './append-entries-codec.js';

/** `payload` followed by its CRC-32, as a valid trailer makes it. */
function withCrc(payload: Uint8Array): Buffer {
  const out = Buffer.alloc(payload.byteLength + 4);
  out.set(payload);
  out.writeUInt32BE(crc32(payload), payload.byteLength);
  return out;
}

/** The bytes an encoding covers with its CRC (everything but the trailer). */
function payloadOf(body: Buffer): Buffer {
  return body.subarray(0, body.byteLength - 4);
}

function expectBadRequest(run: () => unknown): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(isRaftError(thrown, 'BAD_REQUEST')).toBe(true);
}

const sample: AppendEntriesRequest = {
  term: 7,
  from: 'http://127.0.0.1:8086',
  clusterId: 'c-1',
  prevLogIndex: 41,
  prevLogTerm: 6,
  leaderCommit: 40,
  entries: [
    { index: 42, term: 7, type: EntryType.Noop, data: new Uint8Array() },
    { index: 43, term: 7, type: EntryType.Command, data: new Uint8Array([1, 2, 3, 255]) },
    { index: 44, term: 7, type: EntryType.Config, data: new TextEncoder().encode('{"voters":[]}') },
  ],
};

const entryArb: fc.Arbitrary<LogEntry> = fc.record({
  index: fc.maxSafeNat(),
  term: fc.maxSafeNat(),
  type: fc.constantFrom(EntryType.Command, EntryType.Noop, EntryType.Config),
  data: fc.uint8Array({ maxLength: 64 }),
});

const requestArb: fc.Arbitrary<AppendEntriesRequest> = fc.record({
  term: fc.maxSafeNat(),
  from: fc.string({ unit: 'binary', maxLength: 40 }),
  clusterId: fc.string({ unit: 'binary', maxLength: 40 }),
  prevLogIndex: fc.maxSafeNat(),
  prevLogTerm: fc.maxSafeNat(),
  leaderCommit: fc.maxSafeNat(),
  entries: fc.array(entryArb, { maxLength: 20 }),
});

describe('AppendEntries codec', () => {
  it('round-trips any valid request', () => {
    fc.assert(
      fc.property(requestArb, (request) => {
        expect(decodeAppendEntriesRequest(encodeAppendEntriesRequest(request))).toEqual(request);
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips the largest safe integers', () => {
    const max = Number.MAX_SAFE_INTEGER;
    const request = { ...sample, term: max, prevLogIndex: max, prevLogTerm: max, leaderCommit: max };
    request.entries = [{ index: max, term: max, type: EntryType.Command, data: new Uint8Array([9]) }];
    expect(decodeAppendEntriesRequest(encodeAppendEntriesRequest(request))).toEqual(request);
  });

  it('encodes a heartbeat in 46 bytes plus its two strings and each entry in 21 bytes plus its data', () => {
    const heartbeat = { ...sample, entries: [] };
    const strings = Buffer.byteLength(sample.from) + Buffer.byteLength(sample.clusterId);
    expect(encodeAppendEntriesRequest(heartbeat).byteLength).toBe(46 + strings);
    expect(encodeAppendEntriesRequest(sample).byteLength).toBe(46 + strings + 3 * 21 + 0 + 4 + 13);
  });

  it('decodes entry data as views of the body, without copying', () => {
    const body = encodeAppendEntriesRequest(sample);
    const decoded = decodeAppendEntriesRequest(body);
    expect(decoded.entries[1]!.data.buffer).toBe(body.buffer);
    expect(decoded.entries[1]!.data).toBeInstanceOf(Uint8Array);
  });

  it('refuses every truncation of a valid body with BAD_REQUEST', () => {
    const body = encodeAppendEntriesRequest(sample);
    for (let length = 0; length < body.byteLength; length++) {
      expectBadRequest(() => decodeAppendEntriesRequest(body.subarray(0, length)));
    }
  });

  it('refuses every truncation with BAD_REQUEST even when its checksum is made valid', () => {
    const payload = payloadOf(encodeAppendEntriesRequest(sample));
    for (let length = 0; length < payload.byteLength; length++) {
      expectBadRequest(() => decodeAppendEntriesRequest(withCrc(payload.subarray(0, length))));
    }
  });

  it('refuses every single-byte corruption with BAD_REQUEST (the checksum catches data changes too)', () => {
    const body = encodeAppendEntriesRequest(sample);
    for (let at = 0; at < body.byteLength; at++) {
      for (const flip of [0x01, 0x80, 0xff]) {
        const copy = Buffer.from(body);
        copy[at] = copy[at]! ^ flip;
        expectBadRequest(() => decodeAppendEntriesRequest(copy));
      }
    }
  });

  it('either decodes or throws BAD_REQUEST for arbitrary bytes with a valid checksum', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, asAppend) => {
        const payload = Buffer.from(bytes);
        if (asAppend && payload.byteLength >= 2) {
          payload[0] = 0x41;
          payload[1] = 1;
        }
        try {
          decodeAppendEntriesRequest(withCrc(payload));
        } catch (error) {
          expect(isRaftError(error, 'BAD_REQUEST')).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses a huge entry count without allocating for it', () => {
    const payload = payloadOf(encodeAppendEntriesRequest({ ...sample, entries: [] }));
    payload.writeUInt32BE(0xffff_ffff, payload.byteLength - 4);
    expect(() => decodeAppendEntriesRequest(withCrc(payload))).toThrow(/entry count 4294967295 does not fit/);
  });

  it('refuses a data length past the end of the body', () => {
    const payload = payloadOf(encodeAppendEntriesRequest({ ...sample, entries: [sample.entries[1]!] }));
    payload.writeUInt32BE(0x7fff_ffff, payload.byteLength - 4 - 4);
    expect(() => decodeAppendEntriesRequest(withCrc(payload))).toThrow(/truncated at entry data/);
  });

  it('refuses integers above 2^53 - 1, unknown entry types, invalid UTF-8, other kinds and versions, and trailing bytes', () => {
    const base = payloadOf(encodeAppendEntriesRequest({ ...sample, entries: [sample.entries[1]!] }));
    const cases: [string, (p: Buffer) => void, RegExp][] = [
      ['term above 2^53', (p) => p.writeUInt32BE(0x0020_0000, 2), /term is above 2\^53 - 1/],
      ['entry type 3', (p) => (p[2 + 32 + 2 + 21 + 2 + 3 + 4 + 16] = 3), /type 3 is not an EntryType/],
      ['invalid UTF-8 in from', (p) => (p[2 + 32 + 2] = 0xff), /from is not valid UTF-8/],
      ['another kind', (p) => (p[0] = 0x53), /kind byte is 83/],
      ['another version', (p) => (p[1] = 2), /unsupported version 2/],
    ];
    for (const [, mutate, message] of cases) {
      const payload = Buffer.from(base);
      mutate(payload);
      expect(() => decodeAppendEntriesRequest(withCrc(payload))).toThrow(message);
    }
    expect(() => decodeAppendEntriesRequest(withCrc(Buffer.concat([base, Buffer.from([0])])))).toThrow(/1 unexpected bytes/);
  });

  it('refuses to encode numbers that are not safe integers >= 0, unknown types, non-byte data and strings over 65535 bytes', () => {
    const entry = sample.entries[1]!;
    const invalid: unknown[] = [
      { ...sample, term: -1 },
      { ...sample, prevLogIndex: 2 ** 53 },
      { ...sample, prevLogTerm: 1.5 },
      { ...sample, leaderCommit: Number.NaN },
      { ...sample, term: '1' },
      { ...sample, from: 7 },
      { ...sample, clusterId: 'x'.repeat(65_536) },
      { ...sample, entries: 'none' },
      { ...sample, entries: [{ ...entry, index: -3 }] },
      { ...sample, entries: [{ ...entry, type: 9 }] },
      { ...sample, entries: [{ ...entry, data: [1, 2] }] },
    ];
    for (const request of invalid) {
      expectBadRequest(() => encodeAppendEntriesRequest(request as AppendEntriesRequest));
    }
  });
});
