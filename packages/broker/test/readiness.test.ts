// Broker.ready(), status().replication and metrics().raft on a real raft-ts
// node driven through its RPC handlers (as a leader would), with a fake clock
// and a transport that never reaches anyone (but answers join and, when told
// to, grants votes).
import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EntryType, RaftNode, type LogEntry, type Transport } from 'raft-ts';
import { FakeClock, waitFor } from '@msg/test-utils';
import { Broker, type ReadinessBounds } from '../src/broker.js';
import { openTestBroker } from './helpers.js';

const ME = 'http://me';
const A = 'http://a';
const B = 'http://b';
const CLUSTER = 'c1';

/** A transport whose RPCs never answer, except join (the cluster {A, B} takes this node in) and, with `votes`, vote requests. */
class QuietTransport implements Transport {
  votes = false;
  appendEntries = (): Promise<never> => new Promise<never>(() => undefined);
  installSnapshot = (): Promise<never> => new Promise<never>(() => undefined);
  timeoutNow = (): Promise<never> => new Promise<never>(() => undefined);
  leave = (): Promise<never> => new Promise<never>(() => undefined);
  requestVote = (_target: string, req: { term: number }): Promise<{ term: number; voteGranted: boolean }> =>
    this.votes ? Promise.resolve({ term: req.term, voteGranted: true }) : new Promise<never>(() => undefined);
  join = async (): Promise<{ clusterId: string; leader: string; config: { voters: string[]; learners: string[] } }> => ({
    clusterId: CLUSTER,
    leader: A,
    config: { voters: [A, B], learners: [ME] },
  });
  async close(): Promise<void> {}
}

interface Node {
  broker: Broker;
  raft: RaftNode;
  clock: FakeClock;
  transport: QuietTransport;
}

const nodes: Node[] = [];
const dirs: string[] = [];

/** A temp dir removed after the test, once its nodes are closed (not before, as `makeTempDir`'s could be). */
async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  for (const n of nodes.splice(0)) {
    // A leader's close hands over first, waiting on the fake clock: drive it, bounded.
    let done = false;
    const closing = n.raft.close().finally(() => (done = true));
    for (let i = 0; i < 100 && !done; i++) {
      n.clock.advance(50);
      await new Promise((r) => setImmediate(r));
    }
    await closing;
    await n.broker.close();
  }
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

function configEntry(index: number, voters: string[]): LogEntry {
  return { index, term: 1, type: EntryType.Config, data: new TextEncoder().encode(JSON.stringify({ voters, learners: [] })) };
}

/** A broker on a raft node (election timeout 100 ms) that joined {A, B, ME} led by A; its log holds the config at index 1, committed. */
async function follower(readiness: Partial<ReadinessBounds> = {}): Promise<Node> {
  const dir = await makeTempDir('msg-ready-');
  const clock = new FakeClock(1_000_000);
  const transport = new QuietTransport();
  const broker = new Broker({ dir: join(dir, 'broker'), clock, readiness });
  const raft = new RaftNode({ dir: join(dir, 'raft'), url: ME, stateMachine: broker, transport, clock, random: () => 0, electionTimeoutMs: 100, heartbeatIntervalMs: 10 });
  broker.attachLog(raft);
  await broker.open();
  await raft.open();
  const node = { broker, raft, clock, transport };
  nodes.push(node);
  const joined = raft.join(A);
  await waitFor(() => raft.clusterId() === CLUSTER);
  const res = await appendFromA(node, { entries: [configEntry(1, [A, B, ME])], leaderCommit: 1 });
  if (!res.success) throw new Error('the first append failed');
  await joined;
  await waitFor(() => raft.appliedIndex === 1);
  return node;
}

function appendFromA(n: Node, fields: { prevLogIndex?: number; prevLogTerm?: number; entries?: LogEntry[]; leaderCommit: number }) {
  return n.raft.handleAppendEntries({ term: 1, from: A, clusterId: CLUSTER, prevLogIndex: 0, prevLogTerm: 0, entries: [], ...fields });
}

describe('Broker.ready() on a raft follower', () => {
  it('is ready when caught up with the leader', async () => {
    const n = await follower();
    expect(n.broker.ready()).toEqual({ ready: true });
  });

  it('is not ready when far behind the leader’s commit index, though its own commit index is applied', async () => {
    const n = await follower();
    // The leader has committed 50,000 entries; this node's log ends at 1, so it rejects them and stays behind.
    const res = await appendFromA(n, { prevLogIndex: 50_000, prevLogTerm: 1, leaderCommit: 50_000 });
    expect(res.success).toBe(false);
    expect(n.raft.commitIndex).toBe(1);
    expect(n.broker.ready()).toEqual({
      ready: false,
      reason: "applied index 1 is 49999 entries behind the leader's commit index 50000 (bound 1000 entries)",
    });
    expect(n.broker.status().replication).toEqual({ role: 'follower', leaderCommitIndex: 50_000, lagEntries: 49_999, lagSeconds: 0, lastLeaderContactMs: 0, followers: [] });
  });

  it('takes its entry bound from the options', async () => {
    const n = await follower({ maxLagEntries: 100_000 });
    await appendFromA(n, { prevLogIndex: 50_000, prevLogTerm: 1, leaderCommit: 50_000 });
    expect(n.broker.ready()).toEqual({ ready: true });
  });

  it('is not ready once it has been behind for longer than the time bound', async () => {
    const n = await follower({ maxLagSeconds: 5 });
    // Ten entries behind (within the entry bound), heard from every 50 ms, for 6 s.
    for (let i = 0; i < 120; i++) {
      await appendFromA(n, { prevLogIndex: 11, prevLogTerm: 1, leaderCommit: 11 });
      n.clock.advance(50);
    }
    await appendFromA(n, { prevLogIndex: 11, prevLogTerm: 1, leaderCommit: 11 });
    expect(n.broker.ready()).toEqual({
      ready: false,
      reason: "applied index 1 has been behind the leader's commit index 11 for 6 s (bound 5 s)",
    });
  });

  it('is not ready after three election timeouts without a message from the leader', async () => {
    const n = await follower();
    n.clock.advance(300);
    expect(n.broker.ready()).toEqual({ ready: true });
    n.clock.advance(1);
    expect(n.broker.ready()).toEqual({
      ready: false,
      reason: 'no message from the leader for 301 ms (bound 300 ms: 3 election timeouts of 100 ms)',
    });
    expect(n.broker.status().replication.lastLeaderContactMs).toBe(301);
    // The leader's next message makes it ready again.
    await appendFromA(n, { prevLogIndex: 1, prevLogTerm: 1, leaderCommit: 1 });
    expect(n.broker.ready()).toEqual({ ready: true });
  });

  it('shows its lag in the metrics', async () => {
    const n = await follower();
    await appendFromA(n, { prevLogIndex: 50_000, prevLogTerm: 1, leaderCommit: 50_000 });
    const metrics = n.broker.metrics();
    expect(metrics.raft?.replication).toMatchObject({ role: 'follower', leaderCommitIndex: 50_000, lagEntries: 49_999 });
    expect(metrics.raft?.stats?.logFsync.count).toBeGreaterThan(0);
    expect(metrics.raft?.stats?.leaderChanges).toBe(1);
  });
});

describe('Broker.ready() on a raft leader', () => {
  it('is not ready until a majority of voters answered it', async () => {
    const n = await follower();
    n.transport.votes = true;
    n.clock.advance(150); // the election timeout (random() = 0): it wins the election
    await waitFor(() => n.raft.isLeader());
    expect(n.broker.ready()).toEqual({ ready: false, reason: 'leader has not heard from a majority of voters yet' });
    const view = n.broker.status().replication;
    expect(view).toMatchObject({ role: 'leader', lastLeaderContactMs: 0 });
    expect(view.followers.map((f) => [f.url, f.matchIndex, f.lastContactMs, f.snapshot])).toEqual([
      [A, 0, null, null],
      [B, 0, null, null],
    ]);
  });

  it('is ready as the single voter of its cluster', async () => {
    const dir = await makeTempDir('msg-ready-');
    const clock = new FakeClock(1_000_000);
    const transport = new QuietTransport();
    const broker = new Broker({ dir: join(dir, 'broker'), clock });
    const raft = new RaftNode({ dir: join(dir, 'raft'), url: ME, stateMachine: broker, transport, clock, random: () => 0, electionTimeoutMs: 100 });
    broker.attachLog(raft);
    await broker.open();
    await raft.open();
    nodes.push({ broker, raft, clock, transport });
    expect(broker.ready()).toEqual({ ready: false, reason: 'raft node is uninitialized' });
    await raft.initialize();
    await waitFor(() => raft.isLeader() && raft.appliedIndex >= raft.commitIndex && raft.commitIndex > 0);
    expect(broker.ready()).toEqual({ ready: true });
    expect(broker.status().replication).toEqual({ role: 'leader', leaderCommitIndex: raft.commitIndex, lagEntries: 0, lagSeconds: 0, lastLeaderContactMs: 0, followers: [] });
  });
});

describe('Broker.status() topics', () => {
  it('shows each topic’s messages, publish rate and open streams', async () => {
    const clock = new FakeClock(1_000_000);
    await using t = await openTestBroker({ clock });
    for (let i = 0; i < 20; i++) await t.broker.publish({ type: 1, topicID: 7n, data: new Uint8Array([i]) });
    const reader = await t.broker.openTopicReader(7n, 0n, { streaming: true });
    const other = await t.broker.openTopicReader(7n, 0n);
    let topic = t.broker.status().topics[0]!;
    expect(topic).toMatchObject({ id: 7n, messages: 20, publishRate: 2, openStreams: 2 });
    await reader.close();
    await reader.close(); // a second close counts nothing
    for await (const _ of other) {
      // reads to the end: a one-shot reader closes itself
    }
    clock.advance(10_000);
    topic = t.broker.status().topics[0]!;
    expect(topic).toMatchObject({ messages: 20, publishRate: 0, openStreams: 0 });
    const metrics = t.broker.metrics();
    expect(metrics.topics[0]).toMatchObject({ topicID: 7n, messagesApplied: 20, bytesApplied: 20, openStreams: 0, readers: [] });
    // A log without replication(): the lag is counted against its own commit index.
    expect(t.broker.status().replication).toEqual({ role: 'leader', leaderCommitIndex: 20, lagEntries: 0, lagSeconds: 0, lastLeaderContactMs: 0, followers: [] });
    expect(metrics.raft).toBeUndefined();
  });
});
