import { RaftError } from './errors.js';
import { EntryType } from './types.js';
import type {
  AppendEntriesRequest,
  ClusterConfig,
  InstallSnapshotRequest,
  JoinRequest,
  LeaveRequest,
  LogEntry,
  RequestVoteRequest,
  TimeoutNowRequest,
} from './types.js';

type Obj = Record<string, unknown>;

function bad(what: string): never {
  throw new RaftError('BAD_REQUEST', `malformed request: ${what}`);
}

function obj(v: unknown, what: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`${what} is not an object`);
  return v as Obj;
}

function int(o: Obj, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`${key} is not a non-negative safe integer`);
  return v;
}

function str(o: Obj, key: string, nonEmpty = true): string {
  const v = o[key];
  if (typeof v !== 'string' || (nonEmpty && v.length === 0)) bad(`${key} is not a string`);
  return v;
}

function bool(o: Obj, key: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') bad(`${key} is not a boolean`);
  return v;
}

function bytes(o: Obj, key: string): Uint8Array {
  const v = o[key];
  if (!(v instanceof Uint8Array)) bad(`${key} is not bytes`);
  return v;
}

function strings(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s.length === 0)) bad(`${what} is not a list of URLs`);
  return v as string[];
}

/** Checks a cluster configuration; `BAD_REQUEST` otherwise. Internal. */
export function checkConfig(v: unknown): ClusterConfig {
  const o = obj(v, 'config');
  return { voters: strings(o.voters, 'voters'), learners: strings(o.learners, 'learners') };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes the data of a configuration entry (UTF-8 JSON of a {@link ClusterConfig}); `BAD_REQUEST` when it does not. Internal. */
export function decodeConfigData(data: Uint8Array): ClusterConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(data));
  } catch {
    bad('a configuration entry does not hold JSON');
  }
  return checkConfig(parsed);
}

function base(v: unknown): Obj & { term: number; from: string; clusterId: string } {
  const o = obj(v, 'request');
  int(o, 'term');
  str(o, 'from');
  str(o, 'clusterId');
  return o as Obj & { term: number; from: string; clusterId: string };
}

/** Validation of incoming RPCs (they may come from anywhere); each throws `BAD_REQUEST`. Internal. */
export const check = {
  requestVote(v: unknown): RequestVoteRequest {
    const o = base(v);
    int(o, 'lastLogIndex');
    int(o, 'lastLogTerm');
    bool(o, 'preVote');
    bool(o, 'transfer');
    return o as unknown as RequestVoteRequest;
  },
  appendEntries(v: unknown): AppendEntriesRequest {
    const o = base(v);
    const prev = int(o, 'prevLogIndex');
    int(o, 'prevLogTerm');
    int(o, 'leaderCommit');
    if (!Array.isArray(o.entries)) bad('entries is not a list');
    (o.entries as unknown[]).forEach((e, i) => {
      const eo = obj(e, 'entry');
      if (int(eo, 'index') !== prev + 1 + i) bad('entry indexes are not consecutive after prevLogIndex');
      if (int(eo, 'term') < 1) bad('entry term is 0');
      const type = int(eo, 'type');
      if (type > 2) bad('entry type is unknown');
      const data = bytes(eo, 'data');
      // A configuration is decoded now, before the entry can enter the log (a stored one that fails to decode is CORRUPT).
      if (type === EntryType.Config) decodeConfigData(data);
      if (i > 0 && (eo.term as number) < ((o.entries as LogEntry[])[i - 1]!.term)) bad('entry terms decrease');
    });
    return o as unknown as AppendEntriesRequest;
  },
  installSnapshot(v: unknown): InstallSnapshotRequest {
    const o = base(v);
    int(o, 'lastIncludedIndex');
    int(o, 'lastIncludedTerm');
    checkConfig(o.config);
    int(o, 'offset');
    bytes(o, 'data');
    bool(o, 'done');
    return o as unknown as InstallSnapshotRequest;
  },
  timeoutNow(v: unknown): TimeoutNowRequest {
    return base(v);
  },
  join(v: unknown): JoinRequest {
    const o = obj(v, 'request');
    str(o, 'url');
    if (o.clusterId !== undefined) str(o, 'clusterId');
    return o as unknown as JoinRequest;
  },
  leave(v: unknown): LeaveRequest {
    const o = obj(v, 'request');
    str(o, 'url');
    str(o, 'clusterId');
    return o as unknown as LeaveRequest;
  },
};
