import { RaftError } from '../errors.js';
import { decodeUtf8Strict } from './binary.js';
import type {
  AppendEntriesResponse,
  ClusterConfig,
  InstallSnapshotResponse,
  JoinRequest,
  JoinResponse,
  LeaveRequest,
  LeaveResponse,
  RequestVoteRequest,
  RequestVoteResponse,
  TimeoutNowRequest,
  TimeoutNowResponse,
} from '../types.js';

/*
 * Strict validators for the JSON bodies of the transport (the small RPCs and
 * every response). Each takes a parsed JSON value and returns a fresh object
 * holding exactly the fields of its type, or throws `RaftError('BAD_REQUEST')`
 * naming the first bad field. Integers must be safe integers >= 0 (a JSON
 * number above 2^53 parses imprecisely and is refused). Unknown fields are
 * ignored, so a newer peer may add optional fields.
 */

type Fields = Record<string, unknown>;

function bad(what: string, reason: string): never {
  throw new RaftError('BAD_REQUEST', `invalid ${what}: ${reason}`);
}

function object(value: unknown, what: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad(what, 'not a JSON object');
  return value as Fields;
}

function u64(fields: Fields, key: string, what: string): number {
  const value = fields[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    bad(what, `${key} must be a safe integer >= 0, got ${JSON.stringify(value) ?? 'nothing'}`);
  }
  return value;
}

function string(fields: Fields, key: string, what: string): string {
  const value = fields[key];
  if (typeof value !== 'string') bad(what, `${key} must be a string`);
  return value;
}

function boolean(fields: Fields, key: string, what: string): boolean {
  const value = fields[key];
  if (typeof value !== 'boolean') bad(what, `${key} must be a boolean`);
  return value;
}

function strings(value: unknown, key: string, what: string): string[] {
  if (!Array.isArray(value)) bad(what, `${key} must be an array of strings`);
  const list: string[] = [];
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (typeof item !== 'string') bad(what, `${key}[${i}] must be a string`);
    list.push(item);
  }
  return list;
}

function config(fields: Fields, key: string, what: string): ClusterConfig {
  const value = object(fields[key], `${what} (${key})`);
  return { voters: strings(value.voters, `${key}.voters`, what), learners: strings(value.learners, `${key}.learners`, what) };
}

/**
 * Parses a JSON body (strict UTF-8). Throws `BAD_REQUEST` when it is not
 * valid UTF-8 or not valid JSON.
 */
export function parseJson(body: Uint8Array, what: string): unknown {
  let text: string;
  try {
    text = decodeUtf8Strict(body);
  } catch (cause) {
    throw new RaftError('BAD_REQUEST', `invalid ${what}: body is not valid UTF-8`, { cause });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new RaftError('BAD_REQUEST', `invalid ${what}: body is not valid JSON`, { cause });
  }
}

/** Validates a RequestVote (or PreVote) request. */
export function checkRequestVoteRequest(value: unknown): RequestVoteRequest {
  const what = 'RequestVote request';
  const f = object(value, what);
  return {
    term: u64(f, 'term', what),
    from: string(f, 'from', what),
    clusterId: string(f, 'clusterId', what),
    lastLogIndex: u64(f, 'lastLogIndex', what),
    lastLogTerm: u64(f, 'lastLogTerm', what),
    preVote: boolean(f, 'preVote', what),
    transfer: boolean(f, 'transfer', what),
  };
}

/** Validates a RequestVote response. */
export function checkRequestVoteResponse(value: unknown): RequestVoteResponse {
  const what = 'RequestVote response';
  const f = object(value, what);
  return { term: u64(f, 'term', what), voteGranted: boolean(f, 'voteGranted', what) };
}

/** Validates an AppendEntries response. */
export function checkAppendEntriesResponse(value: unknown): AppendEntriesResponse {
  const what = 'AppendEntries response';
  const f = object(value, what);
  return { term: u64(f, 'term', what), success: boolean(f, 'success', what), matchIndex: u64(f, 'matchIndex', what) };
}

/** Validates an InstallSnapshot response. */
export function checkInstallSnapshotResponse(value: unknown): InstallSnapshotResponse {
  const what = 'InstallSnapshot response';
  const f = object(value, what);
  return { term: u64(f, 'term', what), received: u64(f, 'received', what) };
}

/** Validates a TimeoutNow request. */
export function checkTimeoutNowRequest(value: unknown): TimeoutNowRequest {
  const what = 'TimeoutNow request';
  const f = object(value, what);
  return { term: u64(f, 'term', what), from: string(f, 'from', what), clusterId: string(f, 'clusterId', what) };
}

/** Validates a TimeoutNow response. */
export function checkTimeoutNowResponse(value: unknown): TimeoutNowResponse {
  const what = 'TimeoutNow response';
  return { term: u64(object(value, what), 'term', what) };
}

/** Validates a Join request (`clusterId` optional). */
export function checkJoinRequest(value: unknown): JoinRequest {
  const what = 'Join request';
  const f = object(value, what);
  const request: JoinRequest = { url: string(f, 'url', what) };
  if (f.clusterId !== undefined) request.clusterId = string(f, 'clusterId', what);
  return request;
}

/** Validates a Join response. */
export function checkJoinResponse(value: unknown): JoinResponse {
  const what = 'Join response';
  const f = object(value, what);
  return { clusterId: string(f, 'clusterId', what), leader: string(f, 'leader', what), config: config(f, 'config', what) };
}

/** Validates a Leave request. */
export function checkLeaveRequest(value: unknown): LeaveRequest {
  const what = 'Leave request';
  const f = object(value, what);
  return { url: string(f, 'url', what), clusterId: string(f, 'clusterId', what) };
}

/** Validates a Leave response. */
export function checkLeaveResponse(value: unknown): LeaveResponse {
  const what = 'Leave response';
  return { config: config(object(value, what), 'config', what) };
}
