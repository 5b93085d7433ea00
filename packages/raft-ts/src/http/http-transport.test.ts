import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { listen, waitFor } from '@msg/test-utils';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { RaftError, RaftErrorCodes, isRaftError, type RaftErrorCode } from '../errors.js';
import type { RpcHandler } from '../transport.js';
import {
  EntryType,
  type AppendEntriesRequest,
  type InstallSnapshotRequest,
  type JoinRequest,
  type LeaveRequest,
  type LogEntry,
  type RequestVoteRequest,
  type TimeoutNowRequest,
} from '../types.js';
import { createRaftHandler, type RaftHandlerOptions } from './handler.js';
import { HttpTransport, type HttpTransportOptions } from './http-transport.js';
import { PEER_URL_HEADER } from './paths.js';
import { PeerAuth } from './peer-auth.js';

/** The cluster secret of these tests; each handler and each transport has its own PeerAuth with it, as separate nodes do. */
const SECRET = Buffer.alloc(32, 3);

function auth(): PeerAuth {
  return new PeerAuth({ secret: SECRET });
}

/** A fake node: plain objects that record each request and answer from it. */
function fakeRpc(overrides: Partial<RpcHandler> = {}): RpcHandler & { received: unknown[] } {
  const received: unknown[] = [];
  return {
    received,
    handleRequestVote: async (r) => (received.push(r), { term: r.term + 1, voteGranted: r.preVote }),
    handleAppendEntries: async (r) => (received.push(r), { term: r.term, success: true, matchIndex: r.prevLogIndex + r.entries.length }),
    handleInstallSnapshot: async (r) => (received.push(r), { term: r.term, received: r.offset + r.data.byteLength }),
    handleTimeoutNow: async (r) => (received.push(r), { term: r.term }),
    handleJoin: async (r) => (received.push(r), { clusterId: r.clusterId ?? 'new', leader: 'http://l:1', config: { voters: ['http://l:1'], learners: [r.url] } }),
    handleLeave: async (r) => (received.push(r), { config: { voters: ['http://l:1'], learners: [] } }),
    ...overrides,
  };
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

interface TestServer {
  url: string;
  /** TCP connections accepted so far. */
  connections: () => number;
  /** TCP connections still open. */
  open: () => number;
  close: () => Promise<void>;
}

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const server = createServer(handler);
  let connections = 0;
  let open = 0;
  server.on('connection', (socket) => {
    connections++;
    open++;
    socket.on('close', () => open--);
  });
  const { url, close } = await listen(server);
  closers.push(close);
  return { url, connections: () => connections, open: () => open, close };
}

function serveRaft(rpc: RpcHandler, options: Partial<RaftHandlerOptions> = {}): Promise<TestServer> {
  return serve(createRaftHandler(rpc, { auth: auth(), ...options }));
}

function transport(options: Partial<HttpTransportOptions> = {}): HttpTransport {
  const t = new HttpTransport({ auth: auth(), ...options });
  closers.push(() => t.close());
  return t;
}

/** A port nothing listens on (a server bound it, then closed). */
async function freePort(): Promise<string> {
  const server = createServer();
  const { url, close } = await listen(server);
  await close();
  return url;
}

async function rejection(promise: Promise<unknown>): Promise<RaftError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof RaftError) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

const base = { term: 4, from: 'http://127.0.0.1:1', clusterId: 'cluster-1' };
const vote: RequestVoteRequest = { ...base, lastLogIndex: 12, lastLogTerm: 3, preVote: true, transfer: false };
const heartbeat: AppendEntriesRequest = { ...base, prevLogIndex: 12, prevLogTerm: 3, entries: [], leaderCommit: 11 };
const chunk: InstallSnapshotRequest = {
  ...base,
  lastIncludedIndex: 500,
  lastIncludedTerm: 3,
  config: { voters: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], learners: [] },
  offset: 4096,
  data: new Uint8Array([5, 6, 7]),
  done: false,
};

/** Where two entry lists first differ (`-1` when equal), compared field by field and byte by byte. */
function firstDifference(a: LogEntry[], b: LogEntry[]): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.index !== y.index || x.term !== y.term || x.type !== y.type || Buffer.compare(x.data, y.data) !== 0) return i;
  }
  return -1;
}

function entries(count: number, size: number, first = 13): LogEntry[] {
  return Array.from({ length: count }, (_, i) => {
    const data = new Uint8Array(size);
    for (let j = 0; j < size; j += 997) data[j] = (i + j) & 0xff;
    if (size > 0) data[size - 1] = i & 0xff;
    return { index: first + i, term: 4, type: EntryType.Command, data };
  });
}

describe('HttpTransport', () => {
  it('round-trips every RPC through createRaftHandler', async () => {
    const rpc = fakeRpc();
    const { url } = await serveRaft(rpc);
    const t = transport();
    const append: AppendEntriesRequest = { ...heartbeat, entries: entries(3, 100) };
    append.entries[1]!.type = EntryType.Config;
    const timeoutNow: TimeoutNowRequest = { ...base };
    const join: JoinRequest = { url: 'http://127.0.0.1:3' };
    const joinWithId: JoinRequest = { url: 'http://127.0.0.1:3', clusterId: 'cluster-1' };
    const leave: LeaveRequest = { url: 'http://127.0.0.1:2', clusterId: 'cluster-1' };

    await expect(t.requestVote(url, vote)).resolves.toEqual({ term: 5, voteGranted: true });
    await expect(t.appendEntries(url, append)).resolves.toEqual({ term: 4, success: true, matchIndex: 15 });
    await expect(t.appendEntries(url, heartbeat)).resolves.toEqual({ term: 4, success: true, matchIndex: 12 });
    await expect(t.installSnapshot(url, chunk)).resolves.toEqual({ term: 4, received: 4099 });
    await expect(t.timeoutNow(url, timeoutNow)).resolves.toEqual({ term: 4 });
    await expect(t.join(url, join)).resolves.toEqual({ clusterId: 'new', leader: 'http://l:1', config: { voters: ['http://l:1'], learners: [join.url] } });
    await expect(t.join(url, joinWithId)).resolves.toMatchObject({ clusterId: 'cluster-1' });
    await expect(t.leave(url, leave)).resolves.toEqual({ config: { voters: ['http://l:1'], learners: [] } });
    expect(rpc.received).toEqual([vote, append, heartbeat, chunk, timeoutNow, join, joinWithId, leave]);
  });

  it('carries a batch of 10,000 entries in one request', async () => {
    const rpc = fakeRpc();
    const server = await serveRaft(rpc);
    const t = transport();
    const batch = { ...heartbeat, entries: entries(10_000, 100) };
    await expect(t.appendEntries(server.url, batch)).resolves.toEqual({ term: 4, success: true, matchIndex: 12 + 10_000 });
    expect(rpc.received).toHaveLength(1);
    const got = rpc.received[0] as AppendEntriesRequest;
    expect({ ...got, entries: [] }).toEqual({ ...batch, entries: [] });
    expect(firstDifference(got.entries, batch.entries)).toBe(-1);
  });

  it('carries 1 MiB entries and 1 MiB snapshot chunks byte for byte', async () => {
    const rpc = fakeRpc();
    const { url } = await serveRaft(rpc);
    const t = transport();
    const batch = { ...heartbeat, entries: entries(4, 1024 * 1024) };
    await expect(t.appendEntries(url, batch)).resolves.toMatchObject({ matchIndex: 16 });
    const big = { ...chunk, data: entries(1, 1024 * 1024)[0]!.data, done: true };
    await expect(t.installSnapshot(url, big)).resolves.toEqual({ term: 4, received: 4096 + 1024 * 1024 });
    const [gotBatch, gotChunk] = rpc.received as [AppendEntriesRequest, InstallSnapshotRequest];
    expect(firstDifference(gotBatch.entries, batch.entries)).toBe(-1);
    expect(Buffer.compare(gotChunk.data, big.data)).toBe(0);
  });

  it('carries back every RaftError code of the peer with its message, leaderURL and retriability', async () => {
    let next: RaftError = new RaftError('NO_LEADER', '');
    const server = await serveRaft(
      fakeRpc({
        handleAppendEntries: async () => {
          throw next;
        },
      }),
    );
    const t = transport();
    for (const code of Object.keys(RaftErrorCodes) as RaftErrorCode[]) {
      next = new RaftError(code, `the peer says ${code}`, code === 'NOT_LEADER' ? { leaderURL: 'http://127.0.0.1:9' } : {});
      const error = await rejection(t.appendEntries(server.url, heartbeat));
      expect({ code: error.code, message: error.message, leaderURL: error.leaderURL, retriable: error.retriable }).toEqual({
        code,
        // The handler names no cluster id in a mismatch.
        message: code === 'CLUSTER_MISMATCH' ? 'the request is for another cluster' : `the peer says ${code}`,
        leaderURL: code === 'NOT_LEADER' ? 'http://127.0.0.1:9' : undefined,
        retriable: RaftErrorCodes[code].retriable,
      });
    }
    // Error answers are complete answers: the connection stays open for the next call.
    expect(server.connections()).toBe(1);
  });

  it('reports BAD_REQUEST when a batch is over the peer\'s maxBodyBytes, and the next batch goes through', async () => {
    const rpc = fakeRpc();
    const { url } = await serveRaft(rpc, { maxBodyBytes: 64 * 1024 });
    const t = transport();
    const error = await rejection(t.appendEntries(url, { ...heartbeat, entries: entries(20, 64 * 1024) }));
    expect(error.code).toBe('BAD_REQUEST');
    expect(error.message).toMatch(/larger than 65536 bytes/);
    await expect(t.appendEntries(url, { ...heartbeat, entries: entries(2, 1000) })).resolves.toMatchObject({ success: true });
    expect(rpc.received).toHaveLength(1);
  });

  it('rejects with UNREACHABLE quickly when nothing listens at the target', async () => {
    const url = await freePort();
    const t = transport({ timeoutMs: 10_000 });
    const started = Date.now();
    const error = await rejection(t.requestVote(url, vote));
    expect(error.code).toBe('UNREACHABLE');
    expect(error.retriable).toBe(true);
    expect((error.cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('rejects with UNREACHABLE after timeoutMs when the peer never answers', async () => {
    const stalled: ServerResponse[] = [];
    const { url } = await serve((req, res) => {
      req.resume();
      stalled.push(res);
    });
    const t = transport({ timeoutMs: 200 });
    const started = Date.now();
    const error = await rejection(t.appendEntries(url, { ...heartbeat, entries: entries(10, 100) }));
    const elapsed = Date.now() - started;
    expect(error.code).toBe('UNREACHABLE');
    expect((error.cause as NodeJS.ErrnoException).code).toBe('ETIMEDOUT');
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(5000);
    expect(stalled).toHaveLength(1);
  });

  it('gives InstallSnapshot its own, longer timeout', async () => {
    const { url } = await serve((req, res) => {
      req.resume();
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"term":4,"received":3}'), 300);
    });
    const t = transport({ timeoutMs: 100, snapshotTimeoutMs: 10_000 });
    await expect(t.installSnapshot(url, chunk)).resolves.toEqual({ term: 4, received: 3 });
    expect((await rejection(t.timeoutNow(url, base))).code).toBe('UNREACHABLE');
  });

  it('rejects with ABORTED when the signal fires in flight, and sends nothing when it fired before', async () => {
    let requests = 0;
    const { url } = await serve((req) => {
      requests++;
      req.resume();
    });
    const t = transport();
    const controller = new AbortController();
    const call = t.requestVote(url, vote, controller.signal);
    await waitFor(() => requests === 1);
    controller.abort(new Error('stepped down'));
    const error = await rejection(call);
    expect(error.code).toBe('ABORTED');
    expect(error.cause).toEqual(new Error('stepped down'));
    const before = AbortSignal.abort();
    expect((await rejection(t.requestVote(url, vote, before))).code).toBe('ABORTED');
    expect(requests).toBe(1);
  });

  it('keeps many requests to one peer in flight at once over keep-alive connections', async () => {
    const parked: (() => void)[] = [];
    let park = true;
    const rpc = fakeRpc({
      handleAppendEntries: (r) =>
        new Promise((resolve) => {
          const release = (): void => resolve({ term: r.term, success: true, matchIndex: r.prevLogIndex + r.entries.length });
          if (park) parked.push(release);
          else release();
        }),
    });
    const server = await serveRaft(rpc);
    const t = transport();
    const calls = Array.from({ length: 16 }, (_, i) => t.appendEntries(server.url, { ...heartbeat, prevLogIndex: i, entries: entries(2, 10) }));
    // All 16 reach the peer before any is answered: they are in flight together.
    await waitFor(() => parked.length === 16, { message: 'all 16 requests in flight' });
    park = false;
    for (const release of parked.splice(0)) release();
    const answers = await Promise.all(calls);
    expect(answers.map((a) => a.matchIndex)).toEqual(Array.from({ length: 16 }, (_, i) => i + 2));
    expect(server.connections()).toBe(16);
    // Later calls reuse the idle connections instead of opening new ones.
    for (let i = 0; i < 20; i++) await t.appendEntries(server.url, heartbeat);
    expect(server.connections()).toBe(16);
  });

  it('holds at most maxConnectionsPerPeer requests in flight to one peer and queues the rest', async () => {
    let inFlight = 0;
    let most = 0;
    const rpc = fakeRpc({
      handleRequestVote: async (r) => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 20));
        inFlight--;
        return { term: r.term, voteGranted: false };
      },
    });
    const server = await serveRaft(rpc);
    const t = transport({ maxConnectionsPerPeer: 2 });
    await Promise.all(Array.from({ length: 8 }, () => t.requestVote(server.url, vote)));
    expect(most).toBe(2);
    expect(server.connections()).toBe(2);
  });

  it('retries once on a fresh connection when a reused keep-alive connection was dropped', async () => {
    let requests = 0;
    const handler = createRaftHandler(fakeRpc(), { auth: auth() });
    const server = await serve((req, res) => {
      requests++;
      // The second request arrives on the kept-alive connection: drop it unanswered, as a server
      // closing an idle connection at that instant would.
      if (requests === 2) req.socket.destroy();
      else handler(req, res);
    });
    const t = transport();
    await expect(t.requestVote(server.url, vote)).resolves.toMatchObject({ voteGranted: true });
    await expect(t.requestVote(server.url, vote)).resolves.toMatchObject({ voteGranted: true });
    expect(requests).toBe(3);
    expect(server.connections()).toBe(2);
  });

  it('does not retry when a fresh connection is dropped', async () => {
    let requests = 0;
    const { url } = await serve((req) => {
      requests++;
      req.socket.destroy();
    });
    const error = await rejection(transport().requestVote(url, vote));
    expect(error.code).toBe('UNREACHABLE');
    expect(requests).toBe(1);
  });

  it('reports UNREACHABLE for a non-2xx answer without a raft error body, and when the peer fails otherwise', async () => {
    const { url } = await serve((req, res) => {
      req.resume();
      res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad Gateway</h1>');
    });
    const t = transport();
    const error = await rejection(t.leave(url, { url: 'http://x', clusterId: 'c' }));
    expect(error.code).toBe('UNREACHABLE');
    expect((error.cause as { status?: number }).status).toBe(502);

    const failing = await serveRaft(
      fakeRpc({
        handleJoin: async () => {
          throw new Error('disk on fire');
        },
      }),
    );
    const internal = await rejection(t.join(failing.url, { url: 'http://x' }));
    expect(internal.code).toBe('UNREACHABLE');
    expect((internal.cause as Error).message).toMatch(/HTTP 500: .*disk on fire/);
  });

  it('reports BAD_REQUEST for a malformed or oversized 2xx answer', async () => {
    const answers = ['not json', '{"term":-1,"voteGranted":true}', '{"term":1}', '[]', `{"pad":"${'x'.repeat(2000)}"}`];
    let next = '';
    const { url } = await serve((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' }).end(next);
    });
    const t = transport({ maxResponseBytes: 1000 });
    for (const answer of answers) {
      next = answer;
      const error = await rejection(t.requestVote(url, vote));
      expect({ answer, code: error.code }).toEqual({ answer, code: 'BAD_REQUEST' });
    }
  });

  it('reports BAD_REQUEST without sending for invalid requests and target URLs', async () => {
    let requests = 0;
    const { url } = await serve((req, res) => {
      requests++;
      res.end();
    });
    const t = transport();
    const invalid: Promise<unknown>[] = [
      t.requestVote(url, { ...vote, term: -1 }),
      t.requestVote(url, { ...vote, lastLogIndex: 2 ** 53 }),
      t.appendEntries(url, { ...heartbeat, entries: [{ index: 1.5, term: 1, type: EntryType.Command, data: new Uint8Array() }] }),
      t.installSnapshot(url, { ...chunk, offset: Number.NaN }),
      t.join(url, { url: 5 } as unknown as JoinRequest),
      t.requestVote('not a url', vote),
      t.requestVote('ftp://127.0.0.1:1', vote),
    ];
    for (const call of invalid) expect((await rejection(call)).code).toBe('BAD_REQUEST');
    expect(requests).toBe(0);
  });

  it('posts under the target URL\'s own path and a custom prefix', async () => {
    const raft = createRaftHandler(fakeRpc(), { auth: auth(), pathPrefix: '/cluster/raft' });
    const paths: string[] = [];
    const { url } = await serve((req, res) => {
      paths.push(req.url ?? '');
      if (req.url?.startsWith('/node1/')) req.url = req.url.slice('/node1'.length);
      raft(req, res);
    });
    const t = transport({ pathPrefix: 'cluster/raft' });
    await expect(t.timeoutNow(`${url}/node1/`, base)).resolves.toEqual({ term: 4 });
    await expect(t.timeoutNow(`${url}/`, base)).resolves.toEqual({ term: 4 });
    expect(paths).toEqual(['/node1/cluster/raft/timeout-now', '/cluster/raft/timeout-now']);
  });

  it('fails calls in flight with CLOSED on close(), refuses later calls, and leaves no socket open', async () => {
    let requests = 0;
    const handler = createRaftHandler(fakeRpc(), { auth: auth() });
    const server = await serve((req, res) => {
      // The first two calls are answered (their connections stay open, idle); the third never is.
      if (++requests <= 2) handler(req, res);
      else req.resume();
    });
    const url = server.url;
    const t = new HttpTransport({ auth: auth() });
    await Promise.all([t.requestVote(url, vote), t.requestVote(url, vote)]);
    const call = rejection(t.requestVote(url, vote));
    await waitFor(() => requests === 3 && server.open() === 2);
    await t.close();
    await waitFor(() => server.open() === 0, { message: 'every connection closed' });
    expect(t.closed).toBe(true);
    expect((await call).code).toBe('CLOSED');
    expect((await rejection(t.requestVote(url, vote))).code).toBe('CLOSED');
    await expect(t.close()).resolves.toBeUndefined();
    expect(isRaftError(await rejection(t.appendEntries(url, heartbeat)), 'CLOSED')).toBe(true);
  });

  it('closes through Symbol.asyncDispose, for await using', async () => {
    const t = new HttpTransport({ auth: auth() });
    await t[Symbol.asyncDispose]();
    expect(t.closed).toBe(true);
  });

  it('refuses numeric options that are not positive safe integers', () => {
    for (const options of [{ timeoutMs: 0 }, { snapshotTimeoutMs: -1 }, { maxConnectionsPerPeer: 1.5 }, { maxResponseBytes: Number.NaN }]) {
      let thrown: unknown;
      try {
        new HttpTransport({ auth: auth(), ...options });
      } catch (error) {
        thrown = error;
      }
      expect(isRaftError(thrown, 'BAD_REQUEST')).toBe(true);
    }
  });

  it('refuses to be made without a PeerAuth: there is no unauthenticated mode', () => {
    expect(() => new HttpTransport({} as HttpTransportOptions)).toThrow(/needs options.auth/);
    expect(() => new HttpTransport(undefined as unknown as HttpTransportOptions)).toThrow(/needs options.auth/);
  });
});

describe('HttpTransport peer authentication', () => {
  it('signs every request: a peer with the same secret serves it, one with another secret refuses it with UNAUTHENTICATED (not retriable)', async () => {
    const rpc = fakeRpc();
    const ours = await serveRaft(rpc);
    const theirs = await serveRaft(rpc, { auth: new PeerAuth({ secret: Buffer.alloc(32, 4) }) });
    const t = transport();
    await expect(t.requestVote(ours.url, vote)).resolves.toMatchObject({ voteGranted: true });
    const refused = await rejection(t.join(theirs.url, { url: 'http://127.0.0.1:3' }));
    expect({ code: refused.code, retriable: refused.retriable, message: refused.message }).toEqual({
      code: 'UNAUTHENTICATED',
      retriable: false,
      message: 'join: the signature does not match',
    });
    expect(rpc.received).toEqual([vote]);
  });

  it('binds each signature to its target: a handler that knows its URL serves requests sent to it', async () => {
    let self = '';
    const rpc = fakeRpc();
    const server = await serveRaft(rpc, { url: () => self });
    self = server.url;
    const t = transport();
    await expect(t.appendEntries(`${server.url}/`, heartbeat)).resolves.toMatchObject({ success: true });
    self = 'http://elsewhere:1';
    expect((await rejection(t.appendEntries(server.url, heartbeat))).code).toBe('UNAUTHENTICATED');
  });

  it('fails with UNAUTHENTICATED, sending nothing, while its PeerAuth has no secret', async () => {
    let requests = 0;
    const { url } = await serve((req, res) => {
      requests++;
      res.end();
    });
    const t = transport({ auth: new PeerAuth() });
    expect((await rejection(t.requestVote(url, vote))).code).toBe('UNAUTHENTICATED');
    expect(requests).toBe(0);
  });

  it('sends to the peer listener a 404 names, directly from then on, and asks again once nothing listens there', async () => {
    const rpc = fakeRpc();
    let clientAddress = '';
    // Closed by the test itself (not by afterEach).
    const peerListener = await listen(createServer(createRaftHandler(rpc, { auth: auth(), url: () => clientAddress })));
    let asked = 0;
    const client = await serve((req, res) => {
      asked++;
      req.resume();
      res.writeHead(404, { [PEER_URL_HEADER]: peerListener.url, 'content-type': 'application/json' }).end('{"error":{"message":"not here"}}');
    });
    clientAddress = client.url;
    const t = transport();
    await expect(t.requestVote(client.url, vote)).resolves.toMatchObject({ voteGranted: true });
    await expect(t.appendEntries(client.url, heartbeat)).resolves.toMatchObject({ success: true });
    expect(asked).toBe(1);
    expect(rpc.received).toEqual([vote, heartbeat]);
    await peerListener.close();
    expect((await rejection(t.requestVote(client.url, vote))).code).toBe('UNREACHABLE');
    // Forgotten: the next call asks the client address again (and follows it once only: a loop is an error).
    const error = await rejection(t.requestVote(client.url, vote));
    expect(asked).toBe(2);
    expect(error.code).toBe('UNREACHABLE');
  });

  it('does not follow a second 404 with a peer URL within one call', async () => {
    let asked = 0;
    const loop = await serve((req, res) => {
      asked++;
      req.resume();
      res.writeHead(404, { [PEER_URL_HEADER]: `http://127.0.0.1:${new URL(loopURL).port}` }).end();
    });
    const loopURL = loop.url;
    const error = await rejection(transport().requestVote(loop.url, vote));
    expect(error.code).toBe('UNREACHABLE');
    expect(asked).toBe(2);
  });
});

/** PEM files of a throwaway CA and certificates it signed, made with the `openssl` command line. */
interface TestPki {
  ca: string;
  issue(name: string): { cert: string; key: string; serial: string };
}

function makePki(dir: string, name: string): TestPki {
  const run = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', `${name}-ca.key`, '-out', `${name}-ca.crt`, '-days', '2', '-subj', `/CN=${name} CA`]);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  return {
    ca: readFileSync(join(dir, `${name}-ca.crt`), 'utf8'),
    issue(cn) {
      const serial = randomBytes(8).toString('hex').toUpperCase().replace(/^0/, '1');
      run(['req', ...ec, '-keyout', `${cn}.key`, '-out', `${cn}.csr`, '-subj', `/CN=${cn}`]);
      run(['x509', '-req', '-in', `${cn}.csr`, '-CA', `${name}-ca.crt`, '-CAkey', `${name}-ca.key`, '-set_serial', `0x${serial}`, '-days', '2', '-extfile', 'ext.cnf', '-out', `${cn}.crt`]);
      return { cert: readFileSync(join(dir, `${cn}.crt`), 'utf8'), key: readFileSync(join(dir, `${cn}.key`), 'utf8'), serial };
    },
  };
}

describe('HttpTransport over TLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'raft-tls-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const pki = makePki(dir, 'cluster');
  const other = makePki(dir, 'other');
  const server = pki.issue('server');

  /** A raft handler on https, requiring client certificates signed by `ca`; records the serial of each client certificate. */
  async function serveTls(ca: string): Promise<{ url: string; clients: string[] }> {
    const clients: string[] = [];
    const raft = createRaftHandler(fakeRpc(), { auth: auth() });
    const https = createHttpsServer({ cert: server.cert, key: server.key, ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      clients.push((req.socket as TLSSocket).getPeerCertificate().serialNumber);
      raft(req, res);
    });
    const { url, close } = await listen(https);
    closers.push(close);
    return { url: url.replace(/^http:/, 'https:'), clients };
  }


  it('sends to https: targets verified with tls.ca, presenting tls.cert and tls.key', async () => {
    const peer = await serveTls(pki.ca);
    const client = pki.issue('client-a');
    const t = transport({ tls: { ca: pki.ca, cert: client.cert, key: client.key } });
    await expect(t.requestVote(peer.url, vote)).resolves.toEqual({ term: 5, voteGranted: true });
    expect(peer.clients).toEqual([client.serial]);
  });

  it('is UNREACHABLE when the peer refuses its certificate (another CA) or its own certificate is not signed by tls.ca', async () => {
    const peer = await serveTls(pki.ca);
    const stranger = other.issue('stranger');
    const refused = transport({ tls: { ca: pki.ca, cert: stranger.cert, key: stranger.key } });
    await expect(refused.requestVote(peer.url, vote)).rejects.toMatchObject({ code: 'UNREACHABLE' });
    const client = pki.issue('client-b');
    const distrusting = transport({ tls: { ca: other.ca, cert: client.cert, key: client.key } });
    await expect(distrusting.requestVote(peer.url, vote)).rejects.toMatchObject({ code: 'UNREACHABLE' });
    expect(peer.clients).toEqual([]);
  });

  it('setTls() presents the new certificate on later requests', async () => {
    const peer = await serveTls(pki.ca);
    const before = pki.issue('client-c');
    const after = pki.issue('client-d');
    const t = transport({ tls: { ca: pki.ca, cert: before.cert, key: before.key } });
    await t.requestVote(peer.url, vote);
    t.setTls({ ca: pki.ca, cert: after.cert, key: after.key });
    await t.requestVote(peer.url, vote);
    expect(peer.clients).toEqual([before.serial, after.serial]);
  });
});
