import { RaftError } from '../errors.js';
import { EntryType, type AppendEntriesRequest, type LogEntry } from '../types.js';
import { assertSafeU64, BinaryReader, BinaryWriter, CRC_SIZE, str16Length } from './binary.js';

/** First byte of an encoded AppendEntries request (`'A'`). */
const KIND = 0x41;
/** Second byte: the format version. */
const VERSION = 1;
/** Fixed bytes before the strings: kind, version, term, prevLogIndex, prevLogTerm, leaderCommit. */
const FIXED_HEAD = 2 + 4 * 8;
/** Fixed bytes of one entry before its data: index u64, term u64, type u8, data length u32. */
const ENTRY_HEAD = 8 + 8 + 1 + 4;

const WHAT = 'AppendEntries request';

/** True when `type` is one of {@link EntryType}'s values. */
function isEntryType(type: unknown): type is EntryType {
  return type === EntryType.Command || type === EntryType.Noop || type === EntryType.Config;
}

/**
 * Encodes an AppendEntries request (a whole batch of entries, or a heartbeat
 * when `entries` is empty) into one binary body:
 *
 * ```text
 * u8 'A' | u8 version=1 | u64 term | u64 prevLogIndex | u64 prevLogTerm | u64 leaderCommit
 * | u16 len + UTF-8 from | u16 len + UTF-8 clusterId | u32 entry count
 * | per entry: u64 index | u64 term | u8 type | u32 data length | data bytes
 * | u32 CRC-32 of all the bytes before it
 * ```
 *
 * All integers are big-endian; entry data is copied raw (no JSON, no base64):
 * the body is 46 bytes plus the two strings, plus 21 bytes per entry plus its
 * data.
 *
 * @throws RaftError `BAD_REQUEST` when a number is not a safe integer >= 0, an
 *   entry type is unknown, data is not a `Uint8Array`, or a string is longer
 *   than 65535 UTF-8 bytes.
 */
export function encodeAppendEntriesRequest(request: AppendEntriesRequest): Buffer {
  const { term, from, clusterId, prevLogIndex, prevLogTerm, entries, leaderCommit } = request;
  assertSafeU64(term, 'term', WHAT);
  assertSafeU64(prevLogIndex, 'prevLogIndex', WHAT);
  assertSafeU64(prevLogTerm, 'prevLogTerm', WHAT);
  assertSafeU64(leaderCommit, 'leaderCommit', WHAT);
  if (!Array.isArray(entries)) throw new RaftError('BAD_REQUEST', `invalid ${WHAT}: entries must be an array`);
  let size = FIXED_HEAD + str16Length(from, 'from', WHAT) + str16Length(clusterId, 'clusterId', WHAT) + 4 + CRC_SIZE;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as LogEntry;
    assertSafeU64(entry.index, `entries[${i}].index`, WHAT);
    assertSafeU64(entry.term, `entries[${i}].term`, WHAT);
    if (!isEntryType(entry.type)) {
      throw new RaftError('BAD_REQUEST', `invalid ${WHAT}: entries[${i}].type ${String(entry.type)} is not an EntryType`);
    }
    if (!(entry.data instanceof Uint8Array)) {
      throw new RaftError('BAD_REQUEST', `invalid ${WHAT}: entries[${i}].data must be a Uint8Array`);
    }
    size += ENTRY_HEAD + entry.data.byteLength;
  }
  const out = new BinaryWriter(size);
  out.header(KIND, VERSION);
  out.u64(term);
  out.u64(prevLogIndex);
  out.u64(prevLogTerm);
  out.u64(leaderCommit);
  out.str16(from);
  out.str16(clusterId);
  out.u32(entries.length);
  for (const entry of entries) {
    out.u64(entry.index);
    out.u64(entry.term);
    out.u8(entry.type);
    out.bytes32(entry.data);
  }
  return out.finish();
}

/**
 * Decodes a body made by {@link encodeAppendEntriesRequest}. Entry data are
 * views into `body` (no copy): keep `body` unchanged while they are in use.
 *
 * @throws RaftError `BAD_REQUEST` on any defect: wrong kind or version,
 *   checksum mismatch, truncation, a length past the end, an integer above
 *   2^53 - 1, an unknown entry type, invalid UTF-8 or trailing bytes. Never
 *   allocates more than the body's size.
 */
export function decodeAppendEntriesRequest(body: Uint8Array): AppendEntriesRequest {
  const input = new BinaryReader(body, WHAT);
  input.header(KIND, VERSION);
  const term = input.u64('term');
  const prevLogIndex = input.u64('prevLogIndex');
  const prevLogTerm = input.u64('prevLogTerm');
  const leaderCommit = input.u64('leaderCommit');
  const from = input.str16('from');
  const clusterId = input.str16('clusterId');
  const count = input.u32('entry count');
  if (count > input.remaining / ENTRY_HEAD) input.fail(`entry count ${count} does not fit in ${input.remaining} bytes`);
  const entries: LogEntry[] = new Array<LogEntry>(count);
  // Constant field names: this loop is the hot path (errors still give the offset).
  for (let i = 0; i < count; i++) {
    const index = input.u64('entry index');
    const entryTerm = input.u64('entry term');
    const type: number = input.u8('entry type');
    if (!isEntryType(type)) return input.fail(`entries[${i}].type ${type} is not an EntryType`);
    const data = input.bytes32('entry data');
    entries[i] = { index, term: entryTerm, type, data };
  }
  input.end();
  return { term, from, clusterId, prevLogIndex, prevLogTerm, entries, leaderCommit };
}
