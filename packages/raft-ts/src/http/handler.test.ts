import { afterEach, describe, expect, it } from '@jest/globals';
import { listen, waitFor } from '@msg/test-utils';
import fc from 'fast-check';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { RaftError, isRaftError } from '../errors.js';
import type { RpcHandler } from '../transport.js';
import { EntryType, type AppendEntriesRequest } from '../types.js';
import { encodeAppendEntriesRequest } from './append-entries-codec.js';
import { createRaftHandler, type RaftHandlerOptions, type RaftRefusal } from './handler.js';
import { RaftPaths, type RaftRpc } from './paths.js';
import { PeerAuth } from './peer-auth.js';

/** The cluster secret of these tests. */
const SECRET = Buffer.alloc(32, 7);
/** The peer that sends the test requests: its own PeerAuth with the same secret, as another node has. */
const peer = new PeerAuth({ secret: SECRET });

/** The RPC whose path segment ends `path` (the vote RPC for paths that name none: those are refused before the signature counts). */
function rpcOf(path: string): RaftRpc {
  const segment = path.split('?')[0]!.split('/').at(-1);
  const found = (Object.keys(RaftPaths) as RaftRpc[]).find((rpc) => RaftPaths[rpc] === segment);
  return found ?? 'requestVote';
}

/** A fake node: plain objects answering every RPC and recording what it was asked. */
function fakeRpc(overrides: Partial<RpcHandler> = {}): RpcHandler & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    handleRequestVote: async (r) => (calls.push('vote'), { term: r.term, voteGranted: true }),
    handleAppendEntries: async (r) => (calls.push('append'), { term: r.term, success: true, matchIndex: r.prevLogIndex + r.entries.length }),
    handleInstallSnapshot: async (r) => (calls.push('snapshot'), { term: r.term, received: r.offset + r.data.byteLength }),
    handleTimeoutNow: async (r) => (calls.push('timeout-now'), { term: r.term }),
    handleJoin: async () => (calls.push('join'), { clusterId: 'c', leader: 'http://l', config: { voters: ['http://l'], learners: [] } }),
    handleLeave: async () => (calls.push('leave'), { config: { voters: ['http://l'], learners: [] } }),
    ...overrides,
  };
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

async function serve(handler: NodeHandler): Promise<string> {
  const server = createServer(handler);
  const { url, close } = await listen(server);
  closers.push(close);
  return url;
}

async function serveRaft(rpc: RpcHandler, options: Partial<RaftHandlerOptions> = {}): Promise<string> {
  return serve(createRaftHandler(rpc, { auth: new PeerAuth({ secret: SECRET }), ...options }));
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: { error?: { code?: string; message: string; leaderURL?: string } } & Record<string, unknown>;
}

/**
 * Sends one request, signed by {@link peer} for `url` unless `unsigned`, and
 * reads the whole JSON answer.
 */
function send(
  url: string,
  path: string,
  body?: Uint8Array | string,
  options: { method?: string; headers?: Record<string, string>; unsigned?: boolean } = {},
): Promise<Answer> {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : (body ?? new Uint8Array());
  const signature = options.unsigned ? {} : peer.sign(rpcOf(path), url, bytes);
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method: options.method ?? 'POST', headers: { ...signature, ...options.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) as Answer['body'] });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const vote = { term: 3, from: 'http://a', clusterId: 'c', lastLogIndex: 10, lastLogTerm: 2, preVote: false, transfer: false };
const append: AppendEntriesRequest = {
  term: 3,
  from: 'http://a',
  clusterId: 'c',
  prevLogIndex: 5,
  prevLogTerm: 2,
  leaderCommit: 4,
  entries: [{ index: 6, term: 3, type: EntryType.Command, data: new Uint8Array([1, 2, 3]) }],
};

describe('createRaftHandler', () => {
  it('answers an RPC under the prefix with the node\'s JSON answer', async () => {
    const rpc = fakeRpc();
    const url = await serveRaft(rpc);
    const answer = await send(url, '/raft/vote', JSON.stringify(vote));
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(answer.body).toEqual({ term: 3, voteGranted: true });
    const appended = await send(url, '/raft/append?ignored=1', encodeAppendEntriesRequest(append));
    expect(appended.body).toEqual({ term: 3, success: true, matchIndex: 6 });
    expect(rpc.calls).toEqual(['vote', 'append']);
  });

  it('serves paths whose prefix a router already stripped, as express does for app.use(\'/raft\', handler)', async () => {
    const raft = createRaftHandler(fakeRpc(), { auth: new PeerAuth({ secret: SECRET }) });
    // What express 5 does for a mounted middleware: strip the mount path from req.url.
    const url = await serve((req, res) => {
      if (req.url?.startsWith('/cluster/raft/')) {
        req.url = req.url.slice('/cluster/raft'.length);
        raft(req, res);
      } else {
        res.writeHead(418).end();
      }
    });
    const answer = await send(url, '/cluster/raft/timeout-now', JSON.stringify({ term: 9, from: 'x', clusterId: 'c' }));
    expect(answer).toMatchObject({ status: 200, body: { term: 9 } });
  });

  it('honours a custom path prefix, with or without slashes', async () => {
    const url = await serveRaft(fakeRpc(), { pathPrefix: 'internal/raft/' });
    expect((await send(url, '/internal/raft/vote', JSON.stringify(vote))).status).toBe(200);
    expect((await send(url, '/raft/vote', JSON.stringify(vote))).status).toBe(404);
  });

  it('answers 404 with a BAD_REQUEST body for unknown RPCs and paths', async () => {
    const rpc = fakeRpc();
    const url = await serveRaft(rpc);
    for (const path of ['/raft/nope', '/raft/vote/', '/raft/vote/x', '/raft', '/raft/', '/', '/other/vote', '/raftvote']) {
      const answer = await send(url, path, JSON.stringify(vote));
      expect({ path, status: answer.status, code: answer.body.error?.code }).toEqual({ path, status: 404, code: 'BAD_REQUEST' });
    }
    expect(rpc.calls).toEqual([]);
  });

  it('answers 405 with Allow: POST to other methods', async () => {
    const url = await serveRaft(fakeRpc());
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const answer = await send(url, '/raft/append', undefined, { method });
      expect(answer.status).toBe(405);
      expect(answer.headers.allow).toBe('POST');
      expect(answer.body.error?.code).toBe('BAD_REQUEST');
    }
  });

  it('answers 413 to a declared body over the limit before reading it, and closes the connection', async () => {
    const rpc = fakeRpc();
    const url = await serveRaft(rpc, { maxBodyBytes: 1000 });
    const { port } = new URL(url);
    // A raw client announces 1 GiB and sends only the headers: the answer must not wait for the body.
    const socket = connect(Number(port), '127.0.0.1');
    const signed = Object.entries(peer.sign('appendEntries', url, new Uint8Array()))
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('');
    socket.write(`POST /raft/append HTTP/1.1\r\nhost: x\r\n${signed}content-length: 1073741824\r\n\r\n`);
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    await waitFor(() => text.includes('request body is larger than 1000 bytes'), { timeoutMs: 5000 });
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text.toLowerCase()).toContain('connection: close');
    socket.destroy();
    expect(rpc.calls).toEqual([]);
    expect((await send(url, '/raft/append', encodeAppendEntriesRequest(append))).status).toBe(200);
  });

  it('answers 413 to a chunked body once it grows over the limit', async () => {
    const rpc = fakeRpc();
    const url = await serveRaft(rpc, { maxBodyBytes: 10_000 });
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${url}/raft/append`, { method: 'POST', headers: peer.sign('appendEntries', url, new Uint8Array()) }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EPIPE' && error.code !== 'ECONNRESET') reject(error);
      });
      // Up to 1 MiB in 1 KiB chunks, far over the limit; the answer comes long before the end.
      let sent = 0;
      const pump = (): void => {
        while (sent < 1024 && !req.destroyed) {
          sent++;
          if (!req.write(Buffer.alloc(1024))) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    expect(status).toBe(413);
    expect(rpc.calls).toEqual([]);
    expect((await send(url, '/raft/vote', JSON.stringify(vote))).status).toBe(200);
  });

  it('answers 400 BAD_REQUEST to malformed JSON bodies without calling the node', async () => {
    const rpc = fakeRpc();
    const url = await serveRaft(rpc);
    const bodies: [string, string][] = [
      ['/raft/vote', ''],
      ['/raft/vote', 'not json'],
      ['/raft/vote', '[1,2]'],
      ['/raft/vote', 'null'],
      ['/raft/vote', JSON.stringify({ ...vote, term: -1 })],
      ['/raft/vote', JSON.stringify({ ...vote, term: 1.5 })],
      ['/raft/vote', JSON.stringify({ ...vote, term: '3' })],
      ['/raft/vote', JSON.stringify({ ...vote, preVote: 1 })],
      ['/raft/vote', JSON.stringify({ ...vote, lastLogIndex: undefined })],
      ['/raft/vote', JSON.stringify(vote).replace('"term":3', '"term":9007199254740993')],
      ['/raft/timeout-now', JSON.stringify({ term: 1, from: 5, clusterId: 'c' })],
      ['/raft/join', JSON.stringify({ url: 'http://x', clusterId: null })],
      ['/raft/join', JSON.stringify({})],
      ['/raft/leave', JSON.stringify({ url: 'http://x' })],
    ];
    for (const [path, body] of bodies) {
      const answer = await send(url, path, body);
      expect({ body, status: answer.status, code: answer.body.error?.code }).toEqual({ body, status: 400, code: 'BAD_REQUEST' });
    }
    const invalidUtf8 = await send(url, '/raft/join', Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]));
    expect(invalidUtf8.body.error?.message).toMatch(/not valid UTF-8/);
    expect(rpc.calls).toEqual([]);
  });

  it('answers 4xx to random, truncated and oversized-length binary bodies and keeps serving', async () => {
    const rpc = fakeRpc();
    const url = await serveRaft(rpc, { maxBodyBytes: 4096 });
    const valid = encodeAppendEntriesRequest(append);
    const huge = Buffer.from(valid);
    huge.writeUInt32BE(0xffff_ffff, valid.byteLength - 4 - 3 - 4);
    const bodies: Uint8Array[] = [new Uint8Array(), valid.subarray(0, 10), valid.subarray(0, valid.byteLength - 1), huge];
    for (const body of bodies) {
      const answer = await send(url, '/raft/append', body);
      expect(answer.status).toBe(400);
      expect(answer.body.error?.code).toBe('BAD_REQUEST');
    }
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 6000 }), fc.constantFrom('/raft/append', '/raft/snapshot', '/raft/vote', '/raft/join'), async (body, path) => {
        const answer = await send(url, path, body);
        expect([400, 413]).toContain(answer.status);
        expect(answer.body.error?.code).toBe('BAD_REQUEST');
      }),
      { numRuns: 60 },
    );
    expect(rpc.calls).toEqual([]);
    expect((await send(url, '/raft/append', valid)).status).toBe(200);
  });

  it('answers a RaftError of the node with its status, code, message and leaderURL', async () => {
    const cases: [RaftError, number][] = [
      [new RaftError('NOT_LEADER', 'not leader', { leaderURL: 'http://leader:1' }), 503],
      [new RaftError('BAD_REQUEST', 'entries do not follow prevLogIndex'), 400],
      [new RaftError('CLOSED', 'closed'), 503],
      [new RaftError('CORRUPT', 'log segment 3 offset 9'), 500],
    ];
    for (const [error, status] of cases) {
      const url = await serveRaft(
        fakeRpc({
          handleAppendEntries: async () => {
            throw error;
          },
        }),
      );
      const answer = await send(url, '/raft/append', encodeAppendEntriesRequest(append));
      const expected: Record<string, string> = { code: error.code, message: error.message };
      if (error.leaderURL !== undefined) expected.leaderURL = error.leaderURL;
      expect({ status: answer.status, error: answer.body.error }).toEqual({ status, error: expected });
      expect(answer.headers['x-raft-error-code']).toBe(error.code);
    }
  });

  it('answers CLUSTER_MISMATCH without naming either cluster id', async () => {
    const url = await serveRaft(
      fakeRpc({
        handleRequestVote: async () => {
          throw new RaftError('CLUSTER_MISMATCH', 'request for cluster aaaa, this node is in bbbb');
        },
      }),
    );
    const answer = await send(url, '/raft/vote', JSON.stringify(vote));
    expect({ status: answer.status, code: answer.body.error?.code }).toEqual({ status: 409, code: 'CLUSTER_MISMATCH' });
    expect(JSON.stringify(answer.body)).not.toMatch(/aaaa|bbbb/);
  });

  it('answers 500 without a code when the node fails otherwise or answers something invalid', async () => {
    const url = await serveRaft(
      fakeRpc({
        handleRequestVote: async () => {
          throw new TypeError('boom');
        },
        handleTimeoutNow: async () => ({ term: -5 }),
      }),
    );
    const thrown = await send(url, '/raft/vote', JSON.stringify(vote));
    expect(thrown).toMatchObject({ status: 500, body: { error: { message: 'boom' } } });
    expect(thrown.body.error?.code).toBeUndefined();
    const invalid = await send(url, '/raft/timeout-now', JSON.stringify({ term: 1, from: 'a', clusterId: 'c' }));
    expect(invalid.status).toBe(500);
    expect(invalid.body.error?.message).toMatch(/invalid response: invalid TimeoutNow response: term must be/);
  });

  it('does not call the node when the client goes away before its body ends, and keeps serving', async () => {
    const rpc = fakeRpc();
    const url = await serveRaft(rpc);
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write('POST /raft/vote HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{"term":');
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(rpc.calls).toEqual([]);
    expect((await send(url, '/raft/vote', JSON.stringify(vote))).status).toBe(200);
  });

  it('uses raw bytes a middleware already read, and refuses a parsed body (its bytes cannot be verified) or one consumed without a trace', async () => {
    const raft = createRaftHandler(fakeRpc(), { auth: new PeerAuth({ secret: SECRET }) });
    const url = await serve((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const bytes = Buffer.concat(chunks);
        if (req.headers['x-parse'] === 'json') (req as { body?: unknown }).body = JSON.parse(bytes.toString('utf8'));
        if (req.headers['x-parse'] === 'raw') (req as { body?: unknown }).body = bytes;
        raft(req, res);
      });
    });
    const parsed = await send(url, '/raft/vote', JSON.stringify(vote), { headers: { 'x-parse': 'json' } });
    expect(parsed).toMatchObject({ status: 401, body: { error: { code: 'UNAUTHENTICATED' } } });
    expect(parsed.body.error?.message).toMatch(/consumed before it could be verified/);
    const raw = await send(url, '/raft/append', encodeAppendEntriesRequest(append), { headers: { 'x-parse': 'raw' } });
    expect(raw).toMatchObject({ status: 200, body: { success: true } });
    const lost = await send(url, '/raft/vote', JSON.stringify(vote));
    expect(lost.status).toBe(500);
    expect(lost.body.error?.message).toMatch(/consumed before the raft handler/);
  });

  it('refuses a maxBodyBytes that is not a positive safe integer', () => {
    for (const maxBodyBytes of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      let thrown: unknown;
      try {
        createRaftHandler(fakeRpc(), { auth: peer, maxBodyBytes });
      } catch (error) {
        thrown = error;
      }
      expect(isRaftError(thrown, 'BAD_REQUEST')).toBe(true);
    }
  });

  it('refuses to be made without a PeerAuth: there is no unauthenticated mode', () => {
    expect(() => createRaftHandler(fakeRpc(), {} as RaftHandlerOptions)).toThrow(/needs options.auth/);
    expect(() => createRaftHandler(fakeRpc(), undefined as unknown as RaftHandlerOptions)).toThrow(/needs options.auth/);
  });
});

describe('createRaftHandler peer authentication', () => {
  it('answers 401 UNAUTHENTICATED to every RPC that is unsigned, forged, altered, replayed, stale or for another node, without calling the node', async () => {
    const rpc = fakeRpc();
    const refusals: RaftRefusal[] = [];
    const self = 'http://self:1';
    const url = await serveRaft(rpc, { url: () => self, errorCodeHeader: 'X-Broker-Error-Code', onRefused: (r) => refusals.push(r) });
    const body = Buffer.from(JSON.stringify(vote));
    const cases: [string, string, Record<string, string>][] = [];
    for (const segment of Object.values(RaftPaths)) cases.push([`unsigned ${segment}`, segment, {}]);
    cases.push(['another secret', 'vote', new PeerAuth({ secret: Buffer.alloc(32, 8) }).sign('requestVote', self, body)]);
    cases.push(['signed for another rpc', 'vote', peer.sign('appendEntries', self, body)]);
    cases.push(['signed for another node', 'vote', peer.sign('requestVote', 'http://other:1', body)]);
    cases.push(['altered signature', 'vote', { ...peer.sign('requestVote', self, body), 'x-raft-signature': 'A'.repeat(43) }]);
    cases.push(['malformed nonce', 'vote', { ...peer.sign('requestVote', self, body), 'x-raft-nonce': 'nope' }]);
    const old = new PeerAuth({ secret: SECRET, now: () => Date.now() - 31_000 });
    cases.push(['stale', 'vote', old.sign('requestVote', self, body)]);
    const early = new PeerAuth({ secret: SECRET, now: () => Date.now() + 31_000 });
    cases.push(['from the future', 'vote', early.sign('requestVote', self, body)]);
    for (const [what, segment, headers] of cases) {
      const answer = await send(url, `/raft/${segment}`, body, { unsigned: true, headers });
      expect({ what, status: answer.status, code: answer.body.error?.code, header: answer.headers['x-broker-error-code'] }).toEqual({
        what,
        status: 401,
        code: 'UNAUTHENTICATED',
        header: 'UNAUTHENTICATED',
      });
    }
    // An altered body.
    const signed = peer.sign('requestVote', self, body);
    const altered = await send(url, '/raft/vote', JSON.stringify({ ...vote, term: 99 }), { unsigned: true, headers: signed });
    expect(altered.status).toBe(401);
    // A genuine request is served once; the same request again is a replay.
    const genuine = peer.sign('requestVote', self, body);
    expect((await send(url, '/raft/vote', body, { unsigned: true, headers: genuine })).status).toBe(200);
    const replayed = await send(url, '/raft/vote', body, { unsigned: true, headers: genuine });
    expect({ status: replayed.status, message: replayed.body.error?.message }).toEqual({ status: 401, message: 'vote: the request was already received (replay)' });
    expect(rpc.calls).toEqual(['vote']);
    expect(refusals.map((r) => r.reason)).toEqual([
      ...Object.values(RaftPaths).map(() => 'missing'),
      'bad-signature',
      'bad-signature',
      'wrong-target',
      'bad-signature',
      'malformed',
      'stale',
      'stale',
      'bad-signature',
      'replay',
    ]);
    expect(refusals[0]).toMatchObject({ rpc: 'vote', remoteAddress: '127.0.0.1' });
  });

  it('lets join and leave through whatever node they were signed for (an operator may name any address of a member)', async () => {
    const rpc = fakeRpc();
    const url = await serveRaft(rpc, { url: 'http://self:1' });
    const join = Buffer.from(JSON.stringify({ url: 'http://new:1' }));
    const answer = await send(url, '/raft/join', join, { unsigned: true, headers: peer.sign('join', 'http://localhost:1', join) });
    expect(answer.status).toBe(200);
    expect(rpc.calls).toEqual(['join']);
  });

  it('refuses an unsigned request with a huge declared body at once, without reading the body', async () => {
    const rpc = fakeRpc();
    const url = await serveRaft(rpc, { maxBodyBytes: 1 << 30 });
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    socket.write('POST /raft/snapshot HTTP/1.1\r\nhost: x\r\ncontent-length: 1073741824\r\n\r\n');
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    await waitFor(() => text.includes('UNAUTHENTICATED'), { timeoutMs: 5000 });
    expect(text).toMatch(/^HTTP\/1\.1 401 /);
    socket.destroy();
    expect(rpc.calls).toEqual([]);
  });

  it('refuses everything while it has no secret, and serves once one is set', async () => {
    const auth = new PeerAuth();
    const url = await serveRaft(fakeRpc(), { auth });
    const refused = await send(url, '/raft/vote', JSON.stringify(vote));
    expect({ status: refused.status, message: refused.body.error?.message }).toEqual({ status: 401, message: 'vote: this node has no cluster secret yet' });
    auth.setSecret(SECRET);
    expect((await send(url, '/raft/vote', JSON.stringify(vote))).status).toBe(200);
  });
});
