// What a node reports of replication (RaftNode.replication) and its counters
// (RaftNode.stats), driven through the RPC handlers with a fake clock and a
// held transport.
import { afterEach, describe, expect, it } from '@jest/globals';
import { waitFor } from '@msg/test-utils';
import { A, B, ME, append, elect, joinThree, openHarness, shutdown, type Harness } from './harness.js';

const harnesses: Harness[] = [];
async function open(...args: Parameters<typeof openHarness>): Promise<Harness> {
  const h = await openHarness(...args);
  harnesses.push(h);
  return h;
}
afterEach(async () => {
  for (const h of harnesses.splice(0)) if (h.node.state !== 'closed') await shutdown(h);
});

describe('RaftNode.replication()', () => {
  it('reports no leader contact and no lag before the node has heard from a leader', async () => {
    const h = await open();
    expect(h.node.replication()).toEqual({
      role: 'uninitialized',
      term: 0,
      commitIndex: 0,
      appliedIndex: 0,
      leaderCommitIndex: 0,
      lagEntries: 0,
      lagSeconds: 0,
      lastLeaderContactMs: null,
      quorumContactMs: null,
      electionTimeoutMs: 100,
      followers: [],
    });
  });

  it('shows a follower the leader’s commit index even when its own log is far behind', async () => {
    const h = await open();
    await joinThree(h);
    // The leader says 50,000 entries are committed; this node's log ends at 1, so it rejects the entries.
    const res = await append(h, { prevLogIndex: 50_000, prevLogTerm: 1, leaderCommit: 50_000 });
    expect(res.success).toBe(false);
    const status = h.node.replication();
    expect(status).toMatchObject({ role: 'follower', commitIndex: 1, appliedIndex: 1, leaderCommitIndex: 50_000, lagEntries: 49_999, lastLeaderContactMs: 0, lagSeconds: 0 });
    expect(status.followers).toEqual([]);
    h.clock.advance(250);
    expect(h.node.replication()).toMatchObject({ lastLeaderContactMs: 250, lagSeconds: 0.25, leaderCommitIndex: 50_000 });
  });

  it('is caught up once the follower applied what the leader committed', async () => {
    const h = await open();
    await joinThree(h);
    h.clock.advance(40);
    expect(h.node.replication()).toMatchObject({ leaderCommitIndex: 1, lagEntries: 0, lagSeconds: 0, lastLeaderContactMs: 40 });
  });

  it('shows the leader each follower’s match index, lag in entries and seconds, and last contact', async () => {
    const h = await open();
    await joinThree(h);
    await elect(h);
    // A new leader knows no follower's log yet: both lack the committed index 1, known committed since 150 ms ago.
    expect(h.node.replication().followers).toEqual([
      { url: A, matchIndex: 0, lagEntries: 1, lagSeconds: 0.15, lastContactMs: null, snapshot: null },
      { url: B, matchIndex: 0, lagEntries: 1, lagSeconds: 0.15, lastContactMs: null, snapshot: null },
    ]);
    // A acknowledges the new leader's no-op (index 2): with this node that is a majority, so it commits.
    const call = await h.transport.next('appendEntries', A);
    call.resolve({ term: call.req.term, success: true, matchIndex: call.req.prevLogIndex + call.req.entries.length });
    await waitFor(() => h.node.commitIndex === 2);
    h.clock.advance(30);
    const status = h.node.replication();
    expect(status).toMatchObject({ role: 'leader', leaderCommitIndex: 2, lastLeaderContactMs: 0, quorumContactMs: 30 });
    expect(status.followers).toEqual([
      { url: A, matchIndex: 2, lagEntries: 0, lagSeconds: 0, lastContactMs: 30, snapshot: null },
      { url: B, matchIndex: 0, lagEntries: 2, lagSeconds: 0.18, lastContactMs: null, snapshot: null },
    ]);
    expect(status.followers.map((f) => f.url)).not.toContain(ME);
  });

  it('shows that the leader has not heard from a majority yet', async () => {
    const h = await open();
    await joinThree(h);
    await elect(h);
    h.clock.advance(20);
    // Neither follower answered: no majority heard from yet.
    expect(h.node.replication().quorumContactMs).toBeNull();
  });
});

describe('RaftNode.replication() during a snapshot transfer', () => {
  it('shows the bytes of the snapshot a follower acknowledged, then counts the snapshot sent', async () => {
    const h = await open({ snapshotThreshold: 5, trailingEntries: 1, snapshotChunkBytes: 16 });
    await joinThree(h);
    await elect(h);
    /** Answers every AppendEntries held for A with success. */
    const ackA = (): void => {
      for (const c of h.transport.take('appendEntries', A)) c.resolve({ term: c.req.term, success: true, matchIndex: c.req.prevLogIndex + c.req.entries.length });
    };
    for (let i = 0; i < 6; i++) {
      let done = false;
      const applied = h.node.apply(new TextEncoder().encode(`entry ${i}`)).then(() => (done = true));
      await waitFor(() => {
        ackA();
        return done;
      });
      await applied;
    }
    await waitFor(() => h.node.snapshotIndex > 0);
    // B never answered: it rejects the leader's first request; its log is behind the compacted one, so it needs the snapshot.
    const first = await h.transport.next('appendEntries', B);
    first.resolve({ term: first.req.term, success: false, matchIndex: 0 });
    const chunk = await h.transport.next('installSnapshot', B);
    const req = chunk.req as unknown as { offset: number; data: Uint8Array; done: boolean };
    expect(req.offset).toBe(0);
    expect(req.data.byteLength).toBe(16);
    expect(h.node.replication().followers.find((f) => f.url === B)?.snapshot).toBeNull(); // nothing acknowledged yet
    h.clock.advance(5);
    chunk.resolve({ term: h.node.term, received: 16 });
    const next = await h.transport.next('installSnapshot', B);
    const b = h.node.replication().followers.find((f) => f.url === B)!;
    expect(b.snapshot).toEqual({ sentBytes: 16, totalBytes: expect.any(Number) });
    expect(b.snapshot!.totalBytes).toBeGreaterThan(16);
    expect(b.lastContactMs).toBe(0);
    // The rest of the chunks, each acknowledged in full.
    let call = next;
    for (let i = 0; i < 1000; i++) {
      const r = call.req as unknown as { offset: number; data: Uint8Array; done: boolean };
      h.clock.advance(5);
      call.resolve({ term: h.node.term, received: r.offset + r.data.byteLength });
      if (r.done) break;
      call = await h.transport.next('installSnapshot', B);
    }
    await waitFor(() => h.node.stats().snapshotsSent === 1);
    const stats = h.node.stats();
    expect(stats.snapshotBytesSent).toBe(b.snapshot!.totalBytes);
    expect(stats.snapshotSendDuration.count).toBe(1);
    expect(stats.snapshotSendDuration.sumSeconds).toBeGreaterThan(0);
    expect(h.node.replication().followers.find((f) => f.url === B)).toMatchObject({ snapshot: null, matchIndex: h.node.snapshotIndex });
  });
});

describe('RaftNode.stats()', () => {
  it('counts log fsyncs, commit latency, elections and leader changes', async () => {
    const h = await open();
    await joinThree(h);
    expect(h.node.stats()).toMatchObject({ electionsStarted: 0, leaderChanges: 1, commitLatency: { count: 0 } });
    await elect(h);
    const call = await h.transport.next('appendEntries', A);
    h.clock.advance(7);
    call.resolve({ term: call.req.term, success: true, matchIndex: call.req.prevLogIndex + call.req.entries.length });
    await waitFor(() => h.node.commitIndex === 2);
    const stats = h.node.stats();
    expect(stats.electionsStarted).toBe(1);
    expect(stats.leaderChanges).toBe(2); // A, then this node
    expect(stats.commitLatency.count).toBe(1);
    expect(stats.commitLatency.sumSeconds).toBeCloseTo(0.007);
    expect(stats.commitLatency.buckets.find((b) => b.le === 0.01)?.count).toBe(1);
    expect(stats.commitLatency.buckets.find((b) => b.le === 0.005)?.count).toBe(0);
    expect(stats.logFsync.count).toBeGreaterThan(0);
    expect(stats.logFsync.buckets.at(-1)?.count).toBeLessThanOrEqual(stats.logFsync.count);
    expect(stats).toMatchObject({ snapshotsSent: 0, snapshotBytesSent: 0, snapshotSendDuration: { count: 0 } });
  });

  it('measures no fsync when the log does not sync', async () => {
    const h = await open({ sync: 'never' });
    await joinThree(h);
    expect(h.node.stats().logFsync.count).toBe(0);
  });
});
