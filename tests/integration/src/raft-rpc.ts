import { createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { request, type HttpAnswer } from './http-request.js';

// What an outsider can send to a broker's raft routes, written from the documented wire formats
// (packages/raft-ts/src/http/*-codec.ts) and the documented peer signature (docs/security.md),
// independently of raft-ts: these helpers forge requests and sign them the way a peer would.

/** One log entry as AppendEntries carries it: `type` 0 command, 1 no-op, 2 configuration. */
export interface ForgedEntry {
  index: number;
  term: number;
  type: 0 | 1 | 2;
  data: Uint8Array;
}

class Writer {
  readonly #parts: Buffer[] = [];
  u8(value: number): this {
    this.#parts.push(Buffer.from([value]));
    return this;
  }
  u16(value: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(value);
    this.#parts.push(b);
    return this;
  }
  u32(value: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value);
    this.#parts.push(b);
    return this;
  }
  u64(value: number): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(value));
    this.#parts.push(b);
    return this;
  }
  str16(text: string): this {
    const bytes = Buffer.from(text, 'utf8');
    return this.u16(bytes.byteLength).raw(bytes);
  }
  raw(bytes: Uint8Array): this {
    this.#parts.push(Buffer.from(bytes));
    return this;
  }
  /** The bytes so far followed by their CRC-32. */
  finish(): Buffer {
    const body = Buffer.concat(this.#parts);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([body, crc]);
  }
}

/** A binary AppendEntries body (raft-ts's format 1). */
export function encodeAppendEntries(request: {
  term: number;
  from: string;
  clusterId: string;
  prevLogIndex: number;
  prevLogTerm: number;
  leaderCommit: number;
  entries: readonly ForgedEntry[];
}): Buffer {
  const w = new Writer().u8(0x41).u8(1).u64(request.term).u64(request.prevLogIndex).u64(request.prevLogTerm).u64(request.leaderCommit);
  w.str16(request.from).str16(request.clusterId).u32(request.entries.length);
  for (const e of request.entries) w.u64(e.index).u64(e.term).u8(e.type).u32(e.data.byteLength).raw(e.data);
  return w.finish();
}

/** A binary InstallSnapshot chunk body (raft-ts's format 1). */
export function encodeInstallSnapshot(request: {
  term: number;
  from: string;
  clusterId: string;
  lastIncludedIndex: number;
  lastIncludedTerm: number;
  offset: number;
  done: boolean;
  voters: readonly string[];
  learners: readonly string[];
  data: Uint8Array;
}): Buffer {
  const w = new Writer().u8(0x53).u8(1).u64(request.term).u64(request.lastIncludedIndex).u64(request.lastIncludedTerm).u64(request.offset);
  w.u8(request.done ? 1 : 0).str16(request.from).str16(request.clusterId);
  w.u16(request.voters.length);
  for (const v of request.voters) w.str16(v);
  w.u16(request.learners.length);
  for (const l of request.learners) w.str16(l);
  return w.u32(request.data.byteLength).raw(request.data).finish();
}

/** A raft RPC's last path segment. */
export type RaftRpcName = 'vote' | 'append' | 'snapshot' | 'timeout-now' | 'join' | 'leave';

/** What a join token holds (docs/security.md: `msgjt1.<cluster id>.<secret, base64url>.<check>`). */
export interface JoinTokenParts {
  clusterId: string;
  secret: Buffer;
}

/** Splits a join token; throws when it does not have the documented shape. */
export function parseJoinToken(token: string): JoinTokenParts {
  const parts = token.trim().split('.');
  if (parts.length !== 4 || parts[0] !== 'msgjt1') throw new Error(`not a join token: ${token.slice(0, 8)}...`);
  return { clusterId: parts[1]!, secret: Buffer.from(parts[2]!, 'base64url') };
}

/** Options of {@link signRaftRequest}. */
export interface SignOptions {
  /** The target node's URL (its identity), e.g. `http://127.0.0.1:8086`. */
  target: string;
  /** Milliseconds since the epoch. Default now. */
  timestampMs?: number;
  /** Default a fresh random sender id with sequence 1. */
  nonce?: string;
}

/** The signature headers a peer holding `secret` sends with `body` to `rpc` (docs/security.md). */
export function signRaftRequest(secret: Uint8Array, rpc: RaftRpcName, body: Uint8Array, options: SignOptions): Record<string, string> {
  const key = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), 'raft-ts peer-auth v1', 32));
  const timestamp = String(options.timestampMs ?? Date.now());
  const nonce = options.nonce ?? `${randomBytes(16).toString('base64url')}.1`;
  const digest = createHash('sha256').update(body).digest('hex');
  const canonical = ['raft-ts-peer-auth-v1', 'POST', rpc, options.target, timestamp, nonce, digest].join('\n');
  const signature = createHmac('sha256', key).update(canonical).digest('base64url');
  return { 'x-raft-timestamp': timestamp, 'x-raft-nonce': nonce, 'x-raft-target': options.target, 'x-raft-signature': signature };
}

/** POSTs `body` to `<url>/raft/<rpc>` on a fresh connection, with `headers` (e.g. from {@link signRaftRequest}). */
export function postRaft(url: string, rpc: RaftRpcName, body: Uint8Array, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const binary = rpc === 'append' || rpc === 'snapshot';
  return request(`${url}/raft/${rpc}`, {
    method: 'POST',
    body,
    headers: { 'content-type': binary ? 'application/octet-stream' : 'application/json', ...headers },
    timeoutMs: 10_000,
  });
}

/** The JSON body of one RPC. */
export function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}
