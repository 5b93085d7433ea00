// Only peers may call /raft/*: every forgery the security review sent to one broker on 127.0.0.1
// (issue 10), sent again by a plain HTTP client, must be refused with 401 and change nothing; a
// replayed or stale genuine RPC must be refused too; joining needs the cluster's join token.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { makeTempDir, sleep, waitFor } from '@msg/test-utils';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BrokerExitedError, runServerCommand, startBroker, type BrokerProcess } from '../src/broker-process.js';
import { FAST_RAFT_ARGS, pingURLs, readJoinToken, startCluster, status, waitForMembers } from '../src/cluster.js';
import { request } from '../src/http-request.js';
import {
  encodeAppendEntries,
  encodeInstallSnapshot,
  json,
  parseJoinToken,
  postRaft,
  signRaftRequest,
  type RaftRpcName,
} from '../src/raft-rpc.js';
import { frame } from '../src/raw-frame.js';
import { readTopic } from '../src/topic.js';

const ATTACKER = 'http://attacker.invalid:9';
const TOPIC = 77n;

/** What `GET /status` says about raft (the fields these tests compare). */
interface RaftStatus {
  isLeader: boolean;
  leaderURL: string | null;
  urls: string[];
  term: number;
  commitIndex: number;
}

async function raftStatus(url: string): Promise<RaftStatus> {
  return (await status(url)) as unknown as RaftStatus;
}

/** The cluster id, from the node's own `listening` log line (never from a public answer). */
function clusterIdOf(node: BrokerProcess): string {
  const line = node.logs.find((l) => l.msg === 'listening');
  if (typeof line?.clusterId !== 'string') throw new Error(`no cluster id in ${node.tail()}`);
  return line.clusterId;
}

function expectUnauthenticated(answer: { status: number; headers: Record<string, unknown>; body: Buffer }): void {
  expect({ status: answer.status, code: answer.headers['x-broker-error-code'] }).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
  expect((JSON.parse(answer.body.toString()) as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED');
}

describe('peer authentication on one broker', () => {
  let node: BrokerProcess;
  let clusterId: string;

  beforeAll(async () => {
    // Not makeTempDir: those are removed after each test, and this node lives for the whole file.
    node = await startBroker({ dataDir: await mkdtemp(join(tmpdir(), 'msg-it-auth-')), args: FAST_RAFT_ARGS, lifetime: 'file' });
    clusterId = clusterIdOf(node);
  }, 60_000);

  afterAll(async () => {
    await node.kill();
    await rm(node.dataDir, { recursive: true, force: true, maxRetries: 3 });
  });

  /** The term, leadership, members and committed messages of the node stay what they were. */
  async function expectUnchanged(before: RaftStatus): Promise<void> {
    // Give a wrongly accepted RPC time to have its effect (an election, a commit, a shutdown).
    await sleep(700);
    if (!node.alive) throw new Error(`node died: ${node.tail(30)}`);
    const after = await raftStatus(node.url);
    expect({ isLeader: after.isLeader, leaderURL: after.leaderURL, urls: after.urls, term: after.term }).toEqual({
      isLeader: true,
      leaderURL: node.url,
      urls: [node.url],
      term: before.term,
    });
    expect(await pingURLs(node.url)).toEqual([node.url]);
    expect((await readTopic(node.url, TOPIC)).messages).toEqual([]);
  }

  it('refuses a forged AppendEntries with term+1 (401), and commits nothing', async () => {
    const before = await raftStatus(node.url);
    const body = encodeAppendEntries({
      term: before.term + 1,
      from: ATTACKER,
      clusterId,
      prevLogIndex: before.commitIndex,
      prevLogTerm: before.term,
      leaderCommit: before.commitIndex + 1,
      entries: [{ index: before.commitIndex + 1, term: before.term + 1, type: 0, data: frame(1, TOPIC, 0n, 'forged') }],
    });
    expectUnauthenticated(await postRaft(node.url, 'append', body));
    await expectUnchanged(before);
    // A client publish is not redirected anywhere.
    const publish = await request(`${node.url}/messaging/messages?type=1&topicID=${TOPIC + 1n}`, { method: 'POST', body: 'mine' });
    expect(publish.status).toBe(200);
  });

  it('refuses a forged configuration entry that leaves the node out (401); the node keeps running', async () => {
    const before = await raftStatus(node.url);
    const config = json({ voters: [ATTACKER], learners: [] });
    const body = encodeAppendEntries({
      term: before.term + 1,
      from: ATTACKER,
      clusterId,
      prevLogIndex: before.commitIndex,
      prevLogTerm: before.term,
      leaderCommit: before.commitIndex + 1,
      entries: [{ index: before.commitIndex + 1, term: before.term + 1, type: 2, data: config }],
    });
    expectUnauthenticated(await postRaft(node.url, 'append', body));
    await expectUnchanged(before);
  });

  it('refuses a forged join (401): no learner is added and ping does not list it', async () => {
    const before = await raftStatus(node.url);
    expectUnauthenticated(await postRaft(node.url, 'join', json({ url: ATTACKER })));
    expectUnauthenticated(await postRaft(node.url, 'join', json({ url: ATTACKER, clusterId })));
    await expectUnchanged(before);
    const config = (await status(node.url)) as unknown as { config: { voters: string[]; learners: string[] } };
    expect(config.config).toEqual({ voters: [node.url], learners: [] });
  });

  it.each<[RaftRpcName, (s: RaftStatus) => Buffer]>([
    [
      'snapshot',
      (s) =>
        encodeInstallSnapshot({
          term: s.term + 1,
          from: ATTACKER,
          clusterId,
          lastIncludedIndex: s.commitIndex + 100,
          lastIncludedTerm: s.term + 1,
          offset: 0,
          done: true,
          voters: [ATTACKER],
          learners: [],
          data: Buffer.from('not a snapshot'),
        }),
    ],
    ['leave', () => json({ url: 'http://127.0.0.1:1', clusterId })],
    ['timeout-now', (s) => json({ term: s.term + 1, from: ATTACKER, clusterId })],
    ['vote', (s) => json({ term: s.term + 1, from: ATTACKER, clusterId, lastLogIndex: 1e6, lastLogTerm: s.term + 1, preVote: false, transfer: true })],
  ])('refuses a forged %s (401) and changes nothing', async (rpc, body) => {
    const before = await raftStatus(node.url);
    expectUnauthenticated(await postRaft(node.url, rpc, body(before)));
    await expectUnchanged(before);
  });

  it('refuses signatures that are missing, malformed, or made with another secret', async () => {
    const body = json({ url: ATTACKER });
    expectUnauthenticated(await postRaft(node.url, 'join', body, { 'x-raft-signature': 'v1=nope' }));
    const wrong = signRaftRequest(Buffer.alloc(32, 7), 'join', body, { target: node.url });
    expectUnauthenticated(await postRaft(node.url, 'join', body, wrong));
    // A signature made for another RPC does not carry over.
    const { secret } = parseJoinToken(await readJoinToken(node.dataDir));
    const forVote = signRaftRequest(secret, 'vote', body, { target: node.url });
    expectUnauthenticated(await postRaft(node.url, 'join', body, forVote));
  });

  it('accepts a genuine RPC once, and refuses it when it is replayed', async () => {
    const { secret } = parseJoinToken(await readJoinToken(node.dataDir));
    const s = await raftStatus(node.url);
    const body = json({ term: s.term, from: 'http://127.0.0.1:1', clusterId, lastLogIndex: 0, lastLogTerm: 0, preVote: true, transfer: false });
    const headers = signRaftRequest(secret, 'vote', body, { target: node.url });
    const genuine = await postRaft(node.url, 'vote', body, headers);
    expect(genuine.status).toBe(200);
    expect(JSON.parse(genuine.body.toString())).toMatchObject({ voteGranted: false });
    expectUnauthenticated(await postRaft(node.url, 'vote', body, headers));
    await expectUnchanged(s);
  });

  it('refuses a genuine RPC whose timestamp is outside the window, or that was signed for another node', async () => {
    const { secret } = parseJoinToken(await readJoinToken(node.dataDir));
    const s = await raftStatus(node.url);
    const body = json({ term: s.term, from: 'http://127.0.0.1:1', clusterId, lastLogIndex: 0, lastLogTerm: 0, preVote: true, transfer: false });
    for (const timestampMs of [Date.now() - 60_000, Date.now() + 60_000]) {
      expectUnauthenticated(await postRaft(node.url, 'vote', body, signRaftRequest(secret, 'vote', body, { target: node.url, timestampMs })));
    }
    expectUnauthenticated(await postRaft(node.url, 'vote', body, signRaftRequest(secret, 'vote', body, { target: 'http://127.0.0.1:2' })));
    expect((await postRaft(node.url, 'vote', body, signRaftRequest(secret, 'vote', body, { target: node.url }))).status).toBe(200);
  });

  it('counts refused RPCs in /metrics', async () => {
    await postRaft(node.url, 'join', json({ url: ATTACKER }));
    const text = (await request(`${node.url}/metrics`)).body.toString();
    const line = text.split('\n').find((l) => l.startsWith('msg_http_requests_total{route="raft",code="401"}'));
    expect(Number(line?.split(' ')[1])).toBeGreaterThan(0);
    const refused = text.split('\n').find((l) => l.startsWith('msg_raft_peer_auth_refused_total'));
    if (refused !== undefined) expect(Number(refused.split(' ').at(-1))).toBeGreaterThan(0);
  });

  it('names the cluster id in no public answer: not in /status, /metrics, nor in a CLUSTER_MISMATCH text', async () => {
    const token = await readJoinToken(node.dataDir);
    const { secret } = parseJoinToken(token);
    for (const path of ['/status', '/metrics', '/ready', '/health']) {
      const text = (await request(`${node.url}${path}`)).body.toString();
      expect(text).not.toContain(clusterId);
      expect(text).not.toContain(token);
    }
    expect((await request(`${node.url}/messaging/ping`, { method: 'POST', body: '' })).body.toString()).not.toContain(clusterId);
    const other = 'another-cluster-id';
    const s = await raftStatus(node.url);
    const body = json({ term: s.term, from: 'http://127.0.0.1:1', clusterId: other, lastLogIndex: 0, lastLogTerm: 0, preVote: true, transfer: false });
    const mismatch = await postRaft(node.url, 'vote', body, signRaftRequest(secret, 'vote', body, { target: node.url }));
    expect(mismatch.status).toBe(409);
    expect((JSON.parse(mismatch.body.toString()) as { error: { code: string } }).error.code).toBe('CLUSTER_MISMATCH');
    expect(mismatch.body.toString()).not.toContain(clusterId);
    expect(mismatch.body.toString()).not.toContain(other);
    const unsigned = await postRaft(node.url, 'leave', json({ url: node.url, clusterId: other }));
    expect(unsigned.body.toString()).not.toContain(clusterId);
  });

  it('keeps its join token in <data dir>/join-token (mode 0600) and prints it with --print-join-token', async () => {
    const token = await readJoinToken(node.dataDir);
    expect(token).toMatch(/^msgjt1\.[0-9a-f]{32}\.[A-Za-z0-9_-]{43}\.[0-9a-f]{8}$/);
    expect(parseJoinToken(token).clusterId).toBe(clusterId);
    expect((await stat(join(node.dataDir, 'join-token'))).mode & 0o777).toBe(0o600);
    const printed = await runServerCommand(['--print-join-token', '--data-dir', node.dataDir]);
    expect({ code: printed.code, stdout: printed.stdout.trim() }).toEqual({ code: 0, stdout: token });
    const none = await runServerCommand(['--print-join-token', '--data-dir', await makeTempDir('msg-it-auth-none-')]);
    expect(none.code).toBe(64);
    expect(none.stderr).toMatch(/join-token/);
  });
});

describe('joining with a token', () => {
  it('joins with the right token (flag, environment variable), restarts without it, and refuses a wrong or missing one', async () => {
    const [first] = await startCluster(1, { lifetime: 'test' });
    const token = await readJoinToken(first!.dataDir);

    const second = await startBroker({ dataDir: await makeTempDir('msg-it-auth-n2-'), join: [first!.url], args: [...FAST_RAFT_ARGS, '--join-token', token] });
    const third = await startBroker({ dataDir: await makeTempDir('msg-it-auth-n3-'), join: [first!.url], args: FAST_RAFT_ARGS, env: { MSG_JOIN_TOKEN: token } });
    await waitForMembers([first!, second, third], [first!.url, second.url, third.url]);
    expect(await readJoinToken(second.dataDir)).toBe(token);

    // A restart needs no token: the node kept it.
    expect(await second.stop()).toEqual({ code: 0, signal: null });
    const again = await startBroker({ dataDir: second.dataDir, port: second.port, args: FAST_RAFT_ARGS });
    await waitForMembers([first!, again, third], [first!.url, again.url, third.url]);

    // A token of another cluster (same shape, another secret): the node exits 77 and names the token.
    const { clusterId } = parseJoinToken(token);
    const forged = `msgjt1.${clusterId}.${Buffer.alloc(32, 1).toString('base64url')}`;
    const check = (await import('node:crypto')).createHash('sha256').update(forged).digest('hex').slice(0, 8);
    const wrong = await startBroker({
      dataDir: await makeTempDir('msg-it-auth-wrong-'),
      join: [first!.url],
      args: [...FAST_RAFT_ARGS, '--join-token', `${forged}.${check}`],
      timeoutMs: 60_000,
    }).catch((error: unknown) => error);
    expect(wrong).toBeInstanceOf(BrokerExitedError);
    expect((wrong as BrokerExitedError).status.code).toBe(77);
    expect((wrong as BrokerExitedError).logs.map((l) => String(l.msg)).join('\n')).toMatch(/join token/);

    // A token that is not one: a usage error naming the setting.
    const garbled = await startBroker({ dataDir: await makeTempDir('msg-it-auth-bad-'), join: [first!.url], args: [...FAST_RAFT_ARGS, '--join-token', 'hello'] }).catch(
      (error: unknown) => error,
    );
    expect((garbled as BrokerExitedError).status.code).toBe(64);
    expect((garbled as BrokerExitedError).logs.map((l) => String(l.msg)).join('\n')).toMatch(/--join-token/);

    // No token at all.
    const missing = await startBroker({ dataDir: await makeTempDir('msg-it-auth-none-'), join: [first!.url], args: FAST_RAFT_ARGS }).catch((error: unknown) => error);
    expect((missing as BrokerExitedError).status.code).toBe(64);
    expect((missing as BrokerExitedError).logs.map((l) => String(l.msg)).join('\n')).toMatch(/--join-token/);

    await sleep(300);
    expect([...(await pingURLs(first!.url))!].sort()).toEqual([first!.url, again.url, third.url].sort());
  });

  it('refuses a captured genuine join when it is replayed', async () => {
    const [first] = await startCluster(1, { lifetime: 'test' });
    const token = await readJoinToken(first!.dataDir);
    // A recording proxy in front of the first node: the joiner's genuine join goes through it.
    const captured: { url: string; headers: Record<string, string>; body: Buffer }[] = [];
    const target = new URL(first!.url);
    const proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
        captured.push({ url: req.url ?? '/', headers, body });
        const out = httpRequest({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        out.on('error', () => res.destroy());
        out.end(body);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const proxyURL = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const second = await startBroker({ dataDir: await makeTempDir('msg-it-auth-n2-'), join: [proxyURL], args: [...FAST_RAFT_ARGS, '--join-token', token] });
      await waitForMembers([first!, second], [first!.url, second.url]);
      const join = captured.find((c) => c.url === '/raft/join');
      expect(join).toBeDefined();
      // The second node leaves; the replayed join must not bring it back.
      const left = await runServerCommand(['leave', '--member', second.url, '--cluster', first!.url, '--join-token', token]);
      expect(left.code).toBe(0);
      await waitForMembers([first!], [first!.url]);
      const replayed = await request(`${first!.url}/raft/join`, { method: 'POST', body: join!.body, headers: join!.headers });
      expect(replayed.status).toBe(401);
      await sleep(500);
      expect(await pingURLs(first!.url)).toEqual([first!.url]);
    } finally {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});

describe('--peer-listen', () => {
  it('serves /raft/* only on the peer listener; the client listener answers it 404; peers join through the client URL', async () => {
    const first = await startBroker({ dataDir: await makeTempDir('msg-it-peer-n1-'), args: [...FAST_RAFT_ARGS, '--peer-listen', '127.0.0.1:0'] });
    const line = first.logs.find((l) => l.msg === 'listening')!;
    expect(typeof line.peerURL).toBe('string');
    const peerURL = line.peerURL as string;
    expect(peerURL).not.toBe(first.url);
    const token = await readJoinToken(first.dataDir);
    const { secret, clusterId } = parseJoinToken(token);
    const s = await raftStatus(first.url);
    const body = json({ term: s.term, from: 'http://127.0.0.1:1', clusterId, lastLogIndex: 0, lastLogTerm: 0, preVote: true, transfer: false });

    // The client listener: no raft there, signed or not.
    const onClient = await postRaft(first.url, 'vote', body, signRaftRequest(secret, 'vote', body, { target: first.url }));
    expect(onClient.status).toBe(404);
    // The peer listener: raft only, and still authenticated.
    expect((await request(`${peerURL}/status`)).status).toBe(404);
    expectUnauthenticated(await postRaft(peerURL, 'vote', body));
    expect((await postRaft(peerURL, 'vote', body, signRaftRequest(secret, 'vote', body, { target: first.url }))).status).toBe(200);

    const second = await startBroker({
      dataDir: await makeTempDir('msg-it-peer-n2-'),
      join: [first.url],
      args: [...FAST_RAFT_ARGS, '--peer-listen', '127.0.0.1:0', '--join-token', token],
    });
    await waitForMembers([first, second], [first.url, second.url]);
    // Clients still see (and are redirected to) the client URLs.
    const published = await request(`${second.url}/messaging/messages?type=1&topicID=${TOPIC}`, { method: 'POST', body: 'x' });
    const leader = await waitFor(async () => ((await raftStatus(first.url)).leaderURL ?? undefined), { timeoutMs: 10_000 });
    if (leader !== second.url) {
      expect(published.status).toBe(307);
      expect(published.headers.location).toMatch(new RegExp(`^${first.url}/`));
    }
  });
});
