import { RaftError } from '../errors.js';
import type { ClusterConfig, InstallSnapshotRequest } from '../types.js';
import { assertSafeU64, BinaryReader, BinaryWriter, CRC_SIZE, str16Length } from './binary.js';

/** First byte of an encoded InstallSnapshot request (`'S'`). */
const KIND = 0x53;
/** Second byte: the format version. */
const VERSION = 1;
/** Fixed bytes: kind, version, term, lastIncludedIndex, lastIncludedTerm, offset, done. */
const FIXED_HEAD = 2 + 4 * 8 + 1;
/** The most URLs a configuration list can hold on the wire (u16 count). */
const MAX_MEMBERS = 0xffff;

const WHAT = 'InstallSnapshot request';

function membersLength(list: unknown, field: string): number {
  if (!Array.isArray(list)) throw new RaftError('BAD_REQUEST', `invalid ${WHAT}: ${field} must be an array of strings`);
  if (list.length > MAX_MEMBERS) throw new RaftError('BAD_REQUEST', `invalid ${WHAT}: ${field} has more than ${MAX_MEMBERS} members`);
  let size = 2;
  for (let i = 0; i < list.length; i++) size += str16Length(list[i], `${field}[${i}]`, WHAT);
  return size;
}

/**
 * Encodes one InstallSnapshot chunk into one binary body; the chunk's bytes
 * travel raw:
 *
 * ```text
 * u8 'S' | u8 version=1 | u64 term | u64 lastIncludedIndex | u64 lastIncludedTerm
 * | u64 offset | u8 done (0/1) | u16 len + UTF-8 from | u16 len + UTF-8 clusterId
 * | u16 voter count, each u16 len + UTF-8 | u16 learner count, each u16 len + UTF-8
 * | u32 data length | data bytes | u32 CRC-32 of all the bytes before it
 * ```
 *
 * @throws RaftError `BAD_REQUEST` when a number is not a safe integer >= 0,
 *   `done` is not a boolean, `data` is not a `Uint8Array`, the config is not
 *   two arrays of strings, or a string is longer than 65535 UTF-8 bytes.
 */
export function encodeInstallSnapshotRequest(request: InstallSnapshotRequest): Buffer {
  const { term, from, clusterId, lastIncludedIndex, lastIncludedTerm, config, offset, data, done } = request;
  assertSafeU64(term, 'term', WHAT);
  assertSafeU64(lastIncludedIndex, 'lastIncludedIndex', WHAT);
  assertSafeU64(lastIncludedTerm, 'lastIncludedTerm', WHAT);
  assertSafeU64(offset, 'offset', WHAT);
  if (typeof done !== 'boolean') throw new RaftError('BAD_REQUEST', `invalid ${WHAT}: done must be a boolean`);
  if (!(data instanceof Uint8Array)) throw new RaftError('BAD_REQUEST', `invalid ${WHAT}: data must be a Uint8Array`);
  if (typeof config !== 'object' || config === null) throw new RaftError('BAD_REQUEST', `invalid ${WHAT}: config must be an object`);
  const size =
    FIXED_HEAD +
    str16Length(from, 'from', WHAT) +
    str16Length(clusterId, 'clusterId', WHAT) +
    membersLength(config.voters, 'config.voters') +
    membersLength(config.learners, 'config.learners') +
    4 +
    data.byteLength +
    CRC_SIZE;
  const out = new BinaryWriter(size);
  out.header(KIND, VERSION);
  out.u64(term);
  out.u64(lastIncludedIndex);
  out.u64(lastIncludedTerm);
  out.u64(offset);
  out.u8(done ? 1 : 0);
  out.str16(from);
  out.str16(clusterId);
  for (const list of [config.voters, config.learners]) {
    out.u16(list.length);
    for (const url of list) out.str16(url);
  }
  out.bytes32(data);
  return out.finish();
}

/**
 * Decodes a body made by {@link encodeInstallSnapshotRequest}. `data` is a
 * view into `body` (no copy).
 *
 * @throws RaftError `BAD_REQUEST` on any defect: wrong kind or version,
 *   checksum mismatch, truncation, a length past the end, an integer above
 *   2^53 - 1, `done` other than 0 or 1, invalid UTF-8 or trailing bytes.
 */
export function decodeInstallSnapshotRequest(body: Uint8Array): InstallSnapshotRequest {
  const input = new BinaryReader(body, WHAT);
  input.header(KIND, VERSION);
  const term = input.u64('term');
  const lastIncludedIndex = input.u64('lastIncludedIndex');
  const lastIncludedTerm = input.u64('lastIncludedTerm');
  const offset = input.u64('offset');
  const done = input.bool('done');
  const from = input.str16('from');
  const clusterId = input.str16('clusterId');
  const readMembers = (field: string): string[] => {
    const count = input.u16(`${field} count`);
    if (count > input.remaining / 2) input.fail(`${field} count ${count} does not fit in ${input.remaining} bytes`);
    const list: string[] = [];
    for (let i = 0; i < count; i++) list.push(input.str16(`${field}[${i}]`));
    return list;
  };
  const config: ClusterConfig = { voters: readMembers('config.voters'), learners: readMembers('config.learners') };
  const data = input.bytes32('data');
  input.end();
  return { term, from, clusterId, lastIncludedIndex, lastIncludedTerm, config, offset, data, done };
}
