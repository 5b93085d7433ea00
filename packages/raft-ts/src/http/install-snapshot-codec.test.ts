import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { crc32 } from 'node:zlib';
import { isRaftError } from '../errors.js';
import type { InstallSnapshotRequest } from '../types.js';
import { decodeInstallSnapshotRequest, encodeInstallSnapshotRequest } from './install-snapshot-codec.js';

function withCrc(payload: Uint8Array): Buffer {
  const out = Buffer.alloc(payload.byteLength + 4);
  out.set(payload);
  out.writeUInt32BE(crc32(payload), payload.byteLength);
  return out;
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

const sample: InstallSnapshotRequest = {
  term: 3,
  from: 'http://127.0.0.1:1',
  clusterId: 'c',
  lastIncludedIndex: 1000,
  lastIncludedTerm: 2,
  config: { voters: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], learners: ['http://127.0.0.1:3'] },
  offset: 65_536,
  data: new Uint8Array([0, 1, 2, 3, 250]),
  done: true,
};

const urlArb = fc.string({ unit: 'binary', maxLength: 30 });
const requestArb: fc.Arbitrary<InstallSnapshotRequest> = fc.record({
  term: fc.maxSafeNat(),
  from: urlArb,
  clusterId: urlArb,
  lastIncludedIndex: fc.maxSafeNat(),
  lastIncludedTerm: fc.maxSafeNat(),
  config: fc.record({ voters: fc.array(urlArb, { maxLength: 5 }), learners: fc.array(urlArb, { maxLength: 5 }) }),
  offset: fc.maxSafeNat(),
  data: fc.uint8Array({ maxLength: 200 }),
  done: fc.boolean(),
});

describe('InstallSnapshot codec', () => {
  it('round-trips any valid chunk', () => {
    fc.assert(
      fc.property(requestArb, (request) => {
        expect(decodeInstallSnapshotRequest(encodeInstallSnapshotRequest(request))).toEqual(request);
      }),
      { numRuns: 300 },
    );
  });

  it('carries the chunk as raw bytes: the body is the data plus a small fixed overhead', () => {
    const data = new Uint8Array(1024 * 1024).fill(7);
    const body = encodeInstallSnapshotRequest({ ...sample, data });
    const small = encodeInstallSnapshotRequest({ ...sample, data: new Uint8Array() });
    expect(body.byteLength - small.byteLength).toBe(data.byteLength);
    expect(small.byteLength).toBeLessThan(150);
  });

  it('refuses every truncation and every single-byte corruption with BAD_REQUEST', () => {
    const body = encodeInstallSnapshotRequest(sample);
    for (let length = 0; length < body.byteLength; length++) {
      expectBadRequest(() => decodeInstallSnapshotRequest(body.subarray(0, length)));
      if (length < body.byteLength - 4) expectBadRequest(() => decodeInstallSnapshotRequest(withCrc(body.subarray(0, length))));
      const corrupt = Buffer.from(body);
      corrupt[length] = corrupt[length]! ^ 0x10;
      expectBadRequest(() => decodeInstallSnapshotRequest(corrupt));
    }
  });

  it('either decodes or throws BAD_REQUEST for arbitrary bytes with a valid checksum', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const payload = Buffer.from(bytes);
        if (payload.byteLength >= 2) {
          payload[0] = 0x53;
          payload[1] = 1;
        }
        try {
          decodeInstallSnapshotRequest(withCrc(payload));
        } catch (error) {
          expect(isRaftError(error, 'BAD_REQUEST')).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses a done byte other than 0 or 1 and a huge member count', () => {
    const payload = Buffer.from(encodeInstallSnapshotRequest(sample).subarray(0, -4));
    const doneAt = 2 + 4 * 8;
    payload[doneAt] = 2;
    expect(() => decodeInstallSnapshotRequest(withCrc(payload))).toThrow(/done must be 0 or 1/);
    payload[doneAt] = 1;
    const votersAt = doneAt + 1 + 2 + Buffer.byteLength(sample.from) + 2 + Buffer.byteLength(sample.clusterId);
    payload.writeUInt16BE(0xffff, votersAt);
    expect(() => decodeInstallSnapshotRequest(withCrc(payload))).toThrow(/config.voters count 65535 does not fit/);
  });

  it('refuses to encode invalid chunks', () => {
    const invalid: unknown[] = [
      { ...sample, offset: -1 },
      { ...sample, lastIncludedIndex: 2 ** 60 },
      { ...sample, done: 'yes' },
      { ...sample, data: 'bytes' },
      { ...sample, config: null },
      { ...sample, config: { voters: 'a', learners: [] } },
      { ...sample, config: { voters: [], learners: [1] } },
    ];
    for (const request of invalid) {
      expectBadRequest(() => encodeInstallSnapshotRequest(request as InstallSnapshotRequest));
    }
  });
});
