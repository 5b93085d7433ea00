import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { isRaftError } from '../errors.js';
import {
  checkAppendEntriesResponse,
  checkInstallSnapshotResponse,
  checkJoinRequest,
  checkJoinResponse,
  checkLeaveRequest,
  checkLeaveResponse,
  checkRequestVoteRequest,
  checkRequestVoteResponse,
  checkTimeoutNowRequest,
  checkTimeoutNowResponse,
  parseJson,
} from './json-codec.js';

const nat = fc.maxSafeNat();
const str = fc.string({ maxLength: 20 });
const config = fc.record({ voters: fc.array(str, { maxLength: 4 }), learners: fc.array(str, { maxLength: 4 }) });

/** Each checker with an arbitrary of its valid values and the kind of each field. */
const schemas: [string, (value: unknown) => unknown, fc.Arbitrary<Record<string, unknown>>, Record<string, 'u64' | 'string' | 'boolean' | 'config'>][] = [
  [
    'RequestVote request',
    checkRequestVoteRequest,
    fc.record({ term: nat, from: str, clusterId: str, lastLogIndex: nat, lastLogTerm: nat, preVote: fc.boolean(), transfer: fc.boolean() }),
    { term: 'u64', from: 'string', clusterId: 'string', lastLogIndex: 'u64', lastLogTerm: 'u64', preVote: 'boolean', transfer: 'boolean' },
  ],
  ['RequestVote response', checkRequestVoteResponse, fc.record({ term: nat, voteGranted: fc.boolean() }), { term: 'u64', voteGranted: 'boolean' }],
  [
    'AppendEntries response',
    checkAppendEntriesResponse,
    fc.record({ term: nat, success: fc.boolean(), matchIndex: nat }),
    { term: 'u64', success: 'boolean', matchIndex: 'u64' },
  ],
  ['InstallSnapshot response', checkInstallSnapshotResponse, fc.record({ term: nat, received: nat }), { term: 'u64', received: 'u64' }],
  ['TimeoutNow request', checkTimeoutNowRequest, fc.record({ term: nat, from: str, clusterId: str }), { term: 'u64', from: 'string', clusterId: 'string' }],
  ['TimeoutNow response', checkTimeoutNowResponse, fc.record({ term: nat }), { term: 'u64' }],
  ['Join request', checkJoinRequest, fc.record({ url: str, clusterId: str }, { requiredKeys: ['url'] }), { url: 'string' }],
  ['Join response', checkJoinResponse, fc.record({ clusterId: str, leader: str, config }), { clusterId: 'string', leader: 'string', config: 'config' }],
  ['Leave request', checkLeaveRequest, fc.record({ url: str, clusterId: str }), { url: 'string', clusterId: 'string' }],
  ['Leave response', checkLeaveResponse, fc.record({ config }), { config: 'config' }],
];

/** Values of the wrong kind for a field: each must be refused. */
const wrong: Record<'u64' | 'string' | 'boolean' | 'config', unknown[]> = {
  u64: [undefined, null, -1, 1.5, 2 ** 53, '1', true, [], {}],
  string: [undefined, null, 1, true, [], {}],
  boolean: [undefined, null, 0, 1, 'true', []],
  config: [undefined, null, [], 'c', { voters: [] }, { voters: [], learners: [1] }, { voters: 'a', learners: [] }],
};

function expectBadRequest(run: () => unknown): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(isRaftError(thrown, 'BAD_REQUEST')).toBe(true);
}

describe('JSON validators', () => {
  it.each(schemas)('accepts every valid %s after a JSON round trip', (_, check, arbitrary) => {
    fc.assert(
      fc.property(arbitrary, (value) => {
        expect(check(JSON.parse(JSON.stringify(value)))).toEqual(value);
      }),
      { numRuns: 100 },
    );
  });

  it.each(schemas)('refuses each %s missing a field or holding one of the wrong kind', (_, check, arbitrary, fields) => {
    const [valid] = fc.sample(arbitrary, { numRuns: 1, seed: 1 });
    for (const [field, kind] of Object.entries(fields)) {
      for (const value of wrong[kind]) expectBadRequest(() => check({ ...valid, [field]: value }));
    }
    for (const notObject of [null, [], 'x', 3]) expectBadRequest(() => check(notObject));
  });

  it('keeps only the known fields', () => {
    expect(checkTimeoutNowResponse({ term: 3, extra: 'ignored' })).toEqual({ term: 3 });
    expect(checkJoinRequest({ url: 'u' })).toEqual({ url: 'u' });
    expectBadRequest(() => checkJoinRequest({ url: 'u', clusterId: null }));
  });

  it('refuses bodies that are not UTF-8 JSON', () => {
    expectBadRequest(() => parseJson(new Uint8Array([0xc3, 0x28]), 'x'));
    expectBadRequest(() => parseJson(new TextEncoder().encode('{"a":'), 'x'));
    expect(parseJson(new TextEncoder().encode('{"a":"é"}'), 'x')).toEqual({ a: 'é' });
  });
});
