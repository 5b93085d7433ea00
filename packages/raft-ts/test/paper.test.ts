// The rules of the Raft paper (Ongaro & Ousterhout, §5) checked one by one on a
// single node whose peers are played by the test through a held transport, in
// the spirit of etcd-io/raft's paper tests.
import { describe, expect, it } from '@jest/globals';
import { waitFor } from '@msg/test-utils';
import { isRaftError } from '../src/errors.js';
import { EntryType } from '../src/types.js';
import { A, B, CLUSTER, ME, append, command, configEntry, elect, joinThree, openHarness, shutdown } from './harness.js';

describe('leader election (§5.2)', () => {
  it('a follower that hears no leader for an election timeout asks for pre-votes without changing its term', async () => {
    const h = await openHarness();
    await joinThree(h);
    h.clock.advance(99);
    expect(h.transport.take('requestVote')).toEqual([]);
    h.clock.advance(101);
    const pre = await h.transport.next('requestVote', B);
    expect(pre.req).toMatchObject({ preVote: true, term: 2, from: ME, clusterId: CLUSTER, lastLogIndex: 1, lastLogTerm: 1 });
    expect(h.node.term).toBe(1);
    expect(h.node.state).toBe('follower');
    await h.node.close();
  });

  it('after a majority of pre-votes it votes for itself in a new term, durably, before asking for votes', async () => {
    const h = await openHarness();
    await joinThree(h);
    h.clock.advance(150); // one election timeout (100 ms with random() = 0), not two
    (await h.transport.next('requestVote', B)).resolve({ term: 1, voteGranted: true });
    const vote = await h.transport.next('requestVote', B);
    expect(vote.req).toMatchObject({ preVote: false, term: 2 });
    expect(h.node.state).toBe('candidate');
    await h.node.close();
    const again = await openHarness({}, h.dir);
    expect(again.node.term).toBe(2);
    // It voted for itself in term 2: another candidate of term 2 gets no vote.
    const res = await again.node.handleRequestVote({ term: 2, from: B, clusterId: CLUSTER, lastLogIndex: 9, lastLogTerm: 9, preVote: false, transfer: false });
    expect(res.voteGranted).toBe(false);
    await again.node.close();
  });

  it('a candidate with votes from a majority becomes leader and appends a no-op of its term', async () => {
    const h = await openHarness();
    await joinThree(h);
    await elect(h);
    expect(h.node.state).toBe('leader');
    expect(h.node.leader()).toBe(ME);
    const noop = (await h.node.readLogEntry(2))!;
    expect([noop.type, noop.term]).toEqual([EntryType.Noop, 2]);
    const ae = await h.transport.next('appendEntries', A);
    expect(ae.req).toMatchObject({ term: 2, prevLogIndex: 1, prevLogTerm: 1 });
    expect(ae.req.entries.map((e: { index: number }) => e.index)).toEqual([2]);
    await shutdown(h);
  });

  it('a candidate that hears from a leader of its term becomes a follower', async () => {
    const h = await openHarness();
    await joinThree(h);
    h.clock.advance(150); // one election timeout (100 ms with random() = 0), not two
    (await h.transport.next('requestVote', B)).resolve({ term: 1, voteGranted: true });
    await h.transport.next('requestVote', B);
    expect(h.node.state).toBe('candidate');
    const res = await append(h, { term: 2, from: A, prevLogIndex: 1, prevLogTerm: 1 });
    expect(res).toEqual({ term: 2, success: true, matchIndex: 1 });
    expect(h.node.state).toBe('follower');
    expect(h.node.leader()).toBe(A);
    await h.node.close();
  });

  it('a node grants at most one vote per term, first come first served, and remembers it across a restart', async () => {
    const h = await openHarness();
    await joinThree(h);
    h.clock.advance(150); // past the leader lease
    const ask = (from: string, term: number) =>
      h.node.handleRequestVote({ term, from, clusterId: CLUSTER, lastLogIndex: 1, lastLogTerm: 1, preVote: false, transfer: false });
    expect((await ask(B, 2)).voteGranted).toBe(true);
    expect((await ask(A, 2)).voteGranted).toBe(false);
    expect((await ask(B, 2)).voteGranted).toBe(true); // the same candidate again
    await h.node.close();
    const again = await openHarness({}, h.dir);
    const res = await again.node.handleRequestVote({ term: 2, from: A, clusterId: CLUSTER, lastLogIndex: 5, lastLogTerm: 2, preVote: false, transfer: false });
    expect(res.voteGranted).toBe(false);
    await again.node.close();
  });

  it('a node refuses its vote to a candidate whose log is less up to date (§5.4.1)', async () => {
    const h = await openHarness();
    await joinThree(h);
    await append(h, { entries: [command(2, 1, 'x')], prevLogIndex: 1, prevLogTerm: 1 });
    h.clock.advance(150);
    const ask = (lastLogIndex: number, lastLogTerm: number, term: number) =>
      h.node.handleRequestVote({ term, from: B, clusterId: CLUSTER, lastLogIndex, lastLogTerm, preVote: false, transfer: false });
    expect((await ask(1, 1, 2)).voteGranted).toBe(false); // same last term, shorter
    expect((await ask(5, 0, 3)).voteGranted).toBe(false); // older last term, longer
    expect((await ask(2, 1, 4)).voteGranted).toBe(true); // as up to date
    await h.node.close();
  });

  it('a node that hears from its leader denies pre-votes and votes (leader lease), unless the leader hands over', async () => {
    const h = await openHarness();
    await joinThree(h);
    const req = { term: 2, from: B, clusterId: CLUSTER, lastLogIndex: 5, lastLogTerm: 1, transfer: false };
    expect((await h.node.handleRequestVote({ ...req, preVote: true })).voteGranted).toBe(false);
    expect((await h.node.handleRequestVote({ ...req, preVote: false })).voteGranted).toBe(false);
    expect(h.node.term).toBe(1);
    expect((await h.node.handleRequestVote({ ...req, preVote: false, transfer: true })).voteGranted).toBe(true);
    expect(h.node.term).toBe(2);
    await h.node.close();
  });

  it('a pre-vote never changes the receiver\'s term or vote', async () => {
    const h = await openHarness();
    await joinThree(h);
    h.clock.advance(150);
    const res = await h.node.handleRequestVote({ term: 7, from: B, clusterId: CLUSTER, lastLogIndex: 1, lastLogTerm: 1, preVote: true, transfer: false });
    expect(res).toEqual({ term: 1, voteGranted: true });
    expect(h.node.term).toBe(1);
    await h.node.close();
  });

  it('a node refused a pre-vote by a peer of a higher term adopts that term', async () => {
    const h = await openHarness();
    await joinThree(h);
    h.clock.advance(150);
    (await h.transport.next('requestVote', B)).resolve({ term: 5, voteGranted: false });
    await waitFor(() => h.node.term === 5);
    expect(h.node.state).toBe('follower');
    // Its next pre-vote asks for a term past the one it learned.
    h.transport.take('requestVote');
    h.clock.advance(150);
    expect((await h.transport.next('requestVote', B)).req).toMatchObject({ preVote: true, term: 6 });
    await h.node.close();
  });

  it('a voter removed by a configuration not yet committed still stands for election, without counting itself', async () => {
    const h = await openHarness();
    await joinThree(h);
    await append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [configEntry(2, 1, { voters: [A, B], learners: [] })], leaderCommit: 1 });
    expect(h.node.state).toBe('removed');
    h.clock.advance(150);
    const preA = await h.transport.next('requestVote', A);
    const preB = await h.transport.next('requestVote', B);
    preB.resolve({ term: 1, voteGranted: true });
    await new Promise((r) => setTimeout(r, 20));
    expect(h.transport.take('requestVote')).toEqual([]); // one grant of two voters is no majority without its own
    preA.resolve({ term: 1, voteGranted: true });
    const vote = await h.transport.next('requestVote');
    expect(vote.req).toMatchObject({ preVote: false, term: 2 });
    await h.node.close();
  });

  it('a node whose removal is committed never stands for election', async () => {
    const h = await openHarness();
    await joinThree(h);
    await append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [configEntry(2, 1, { voters: [A, B], learners: [] })], leaderCommit: 2 });
    for (let i = 0; i < 10; i++) h.clock.advance(100);
    await new Promise((r) => setTimeout(r, 20));
    expect(h.transport.take('requestVote')).toEqual([]);
    expect(h.node.state).toBe('removed');
    await h.node.close();
  });

  it('a leader that sees a higher term steps down and fails pending applies with LEADERSHIP_LOST', async () => {
    const h = await openHarness();
    await joinThree(h);
    await elect(h);
    const pending = h.node.apply(new TextEncoder().encode('x'));
    const ae = await h.transport.next('appendEntries', A);
    ae.resolve({ term: 9, success: false, matchIndex: 0 });
    const err = await pending.catch((e: unknown) => e);
    expect(isRaftError(err, 'LEADERSHIP_LOST')).toBe(true);
    expect(h.node.state).toBe('follower');
    expect(h.node.term).toBe(9);
    await h.node.close();
  });

  it('a leader that loses contact with a majority for an election timeout steps down', async () => {
    const h = await openHarness();
    await joinThree(h);
    await elect(h);
    for (let i = 0; i < 30 && h.node.isLeader(); i++) {
      h.transport.dropAll();
      h.clock.advance(10);
      await new Promise((r) => setImmediate(r));
    }
    expect(h.node.isLeader()).toBe(false);
    await h.node.close();
  });
});

describe('log replication (§5.3)', () => {
  it('a follower rejects entries whose previous entry it lacks, hinting its last index', async () => {
    const h = await openHarness();
    await joinThree(h);
    const res = await append(h, { prevLogIndex: 5, prevLogTerm: 1, entries: [command(6, 1, 'x')] });
    expect(res).toEqual({ term: 1, success: false, matchIndex: 1 });
    expect(h.node.lastIndex).toBe(1);
    await h.node.close();
  });

  it('a follower rejects a mismatching previous term and hints before the conflicting term', async () => {
    const h = await openHarness();
    await joinThree(h);
    await append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [command(2, 1, 'a'), command(3, 1, 'b'), command(4, 1, 'c')], leaderCommit: 1 });
    const res = await append(h, { term: 2, from: B, prevLogIndex: 4, prevLogTerm: 2 });
    expect(res.success).toBe(false);
    expect(res.matchIndex).toBe(1); // the entries of term 1 after the commit index are suspect
    await h.node.close();
  });

  it('a follower deletes a conflicting entry and all that follow it, then appends the leader\'s (log matching)', async () => {
    const h = await openHarness();
    await joinThree(h);
    await append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [command(2, 1, 'a'), command(3, 1, 'b'), command(4, 1, 'c')], leaderCommit: 1 });
    const res = await append(h, { term: 2, from: B, prevLogIndex: 2, prevLogTerm: 1, entries: [command(3, 2, 'B')], leaderCommit: 1 });
    expect(res).toEqual({ term: 2, success: true, matchIndex: 3 });
    expect(h.node.lastIndex).toBe(3);
    expect((await h.node.readLogEntry(3))!.term).toBe(2);
    await h.node.close();
    const again = await openHarness({}, h.dir);
    expect(again.node.lastIndex).toBe(3);
    expect(new TextDecoder().decode((await again.node.readLogEntry(3))!.data)).toBe('B');
    await again.node.close();
  });

  it('a late duplicate of an older request does not truncate newer entries', async () => {
    const h = await openHarness();
    await joinThree(h);
    await append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [command(2, 1, 'a'), command(3, 1, 'b')] });
    const res = await append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [command(2, 1, 'a')] });
    expect(res).toEqual({ term: 1, success: true, matchIndex: 2 });
    expect(h.node.lastIndex).toBe(3);
    await h.node.close();
  });

  it('a follower rejects a leader of an older term and tells it the current term', async () => {
    const h = await openHarness();
    await joinThree(h);
    await append(h, { term: 3, from: B, prevLogIndex: 1, prevLogTerm: 1 });
    const res = await append(h, { term: 2, entries: [command(2, 2, 'old')], prevLogIndex: 1, prevLogTerm: 1 });
    expect(res).toEqual({ term: 3, success: false, matchIndex: 1 });
    expect(h.node.lastIndex).toBe(1);
    await h.node.close();
  });

  it('a follower commits up to min(leaderCommit, last new entry) and applies in log order', async () => {
    const h = await openHarness();
    await joinThree(h);
    await append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [command(2, 1, 'a'), command(3, 1, 'b')], leaderCommit: 9 });
    expect(h.node.commitIndex).toBe(3);
    await waitFor(() => h.node.appliedIndex === 3);
    expect(h.sm.applied).toEqual([
      { index: 2, text: 'a' },
      { index: 3, text: 'b' },
    ]);
    await h.node.close();
  });

  it('a leader commits an entry once a majority of voters stored it, and only then applies it', async () => {
    const h = await openHarness();
    await joinThree(h);
    await elect(h);
    const applied = h.node.apply(new TextEncoder().encode('x'));
    await waitFor(() => h.node.lastIndex === 3);
    expect(h.node.commitIndex).toBe(1);
    for (const c of h.transport.take('appendEntries', A)) c.resolve({ term: 2, success: true, matchIndex: 3 });
    await expect(applied).resolves.toBe(3);
    expect(h.node.commitIndex).toBe(3);
    expect(h.sm.texts()).toEqual(['x']);
    await shutdown(h);
  });

  it('a leader tells a follower whose answer came after the commit at once, not at the next heartbeat', async () => {
    const h = await openHarness();
    await joinThree(h);
    await elect(h);
    const applied = h.node.apply(new TextEncoder().encode('x'));
    await waitFor(() => h.node.lastIndex === 3);
    const toB = h.transport.take('appendEntries', B);
    for (const c of h.transport.take('appendEntries', A)) c.resolve({ term: 2, success: true, matchIndex: 3 });
    await expect(applied).resolves.toBe(3);
    expect(toB.map((c) => c.req.leaderCommit).every((commit) => commit < 3)).toBe(true);
    for (const c of toB) c.resolve({ term: 2, success: true, matchIndex: 3 });
    // The fake clock stands still: no heartbeat timer fires, yet B hears of commit index 3.
    const next = await h.transport.next('appendEntries', B);
    expect(next.req.leaderCommit).toBe(3);
    await shutdown(h);
  });

  it('a leader counts replicas only for entries of its own term (Figure 8)', async () => {
    const h = await openHarness();
    await joinThree(h);
    // Index 2 comes from the term-1 leader but is not committed.
    await append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [command(2, 1, 'old')], leaderCommit: 1 });
    await elect(h);
    expect((await h.node.readLogEntry(3))!.term).toBe(2);
    // A has index 2 (term 1) but not yet the no-op of term 2: index 2 is on a majority, but must not commit.
    const first = await h.transport.next('appendEntries', A);
    first.resolve({ term: 2, success: true, matchIndex: 2 });
    await new Promise((r) => setTimeout(r, 20));
    expect(h.node.commitIndex).toBe(1);
    h.clock.advance(10);
    const next = await h.transport.next('appendEntries', A);
    next.resolve({ term: 2, success: true, matchIndex: 3 });
    await waitFor(() => h.node.commitIndex === 3);
    await waitFor(() => h.node.appliedIndex === 3);
    expect(h.sm.texts()).toEqual(['old']);
    await shutdown(h);
  });

  it('a leader skips back over a follower\'s conflicting entries using the hint', async () => {
    const h = await openHarness();
    await joinThree(h);
    await append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [command(2, 1, 'a'), command(3, 1, 'b')], leaderCommit: 1 });
    await elect(h);
    const ae = await h.transport.next('appendEntries', A);
    expect(ae.req.prevLogIndex).toBe(3);
    ae.resolve({ term: 2, success: false, matchIndex: 1 });
    const retry = await h.transport.next('appendEntries', A);
    expect(retry.req.prevLogIndex).toBe(1);
    expect(retry.req.entries.map((e: { index: number }) => e.index)).toEqual([2, 3, 4]);
    await shutdown(h);
  });

  it('a leader gathers entries while a request is in flight and sends them at its answer; full requests are pipelined', async () => {
    const h = await openHarness({ maxAppendEntries: 2 });
    await joinThree(h);
    await elect(h);
    const first = await h.transport.next('appendEntries', A);
    first.resolve({ term: 2, success: true, matchIndex: 2 });
    await waitFor(() => h.node.commitIndex === 2);
    // Answer what else went out (the commit index told to the followers): nothing is in flight then.
    await new Promise((r) => setTimeout(r, 20));
    for (const c of h.transport.take('appendEntries')) c.resolve({ term: 2, success: true, matchIndex: c.req.prevLogIndex + c.req.entries.length });
    await new Promise((r) => setTimeout(r, 20));
    const encoder = new TextEncoder();
    void h.node.apply(encoder.encode('1')).catch(() => undefined);
    const a1 = await h.transport.next('appendEntries', A);
    expect(a1.req.entries.map((e: { index: number }) => e.index)).toEqual([3]);
    // One more entry while a1 is unanswered: it waits for a1's answer (no request per proposal).
    void h.node.apply(encoder.encode('2')).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 20));
    expect(h.transport.take('appendEntries', A)).toEqual([]);
    // Two more fill a request (maxAppendEntries 2): that one is pipelined behind a1.
    void h.node.apply(encoder.encode('3')).catch(() => undefined);
    const a2 = await h.transport.next('appendEntries', A);
    expect(a2.req.entries.map((e: { index: number }) => e.index)).toEqual([4, 5]);
    expect(a2.req.prevLogIndex).toBe(3);
    // What gathers while requests are in flight goes out, as one request, once the last is answered.
    void h.node.apply(encoder.encode('4')).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 20));
    expect(h.transport.take('appendEntries', A)).toEqual([]);
    a1.resolve({ term: 2, success: true, matchIndex: 3 });
    await new Promise((r) => setTimeout(r, 20));
    expect(h.transport.take('appendEntries', A)).toEqual([]);
    a2.resolve({ term: 2, success: true, matchIndex: 5 });
    const a3 = await h.transport.next('appendEntries', A);
    expect(a3.req.entries.map((e: { index: number }) => e.index)).toEqual([6]);
    await shutdown(h);
  });
});

describe('safety across restarts (§5.4)', () => {
  it('a restarted follower keeps its log and applies nothing it did not learn was committed', async () => {
    const h = await openHarness();
    await joinThree(h);
    await append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [command(2, 1, 'a'), command(3, 1, 'b')], leaderCommit: 2 });
    await waitFor(() => h.node.appliedIndex === 2);
    await h.node.close();
    const again = await openHarness({}, h.dir);
    expect(again.node.lastIndex).toBe(3);
    expect(again.node.term).toBe(1);
    expect(again.node.clusterId()).toBe(CLUSTER);
    expect(again.node.config()).toEqual({ voters: [A, B, ME], learners: [] });
    expect(again.node.appliedIndex).toBe(0); // a fresh state machine: nothing applied yet
    await append(again, { prevLogIndex: 3, prevLogTerm: 1, leaderCommit: 2 });
    await waitFor(() => again.node.appliedIndex === 2);
    expect(again.sm.texts()).toEqual(['a']);
    await again.node.close();
  });

  it('a follower refuses to replace a committed entry and stops', async () => {
    const h = await openHarness();
    await joinThree(h);
    await append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [command(2, 1, 'a')], leaderCommit: 2 });
    const err = await append(h, { term: 2, from: B, prevLogIndex: 1, prevLogTerm: 1, entries: [command(2, 2, 'evil')], leaderCommit: 2 }).catch((e: unknown) => e);
    expect(isRaftError(err)).toBe(true);
    expect(h.node.state).toBe('failed');
    await h.node.close();
  });

  it('a config entry takes effect when appended and is undone when truncated', async () => {
    const h = await openHarness();
    await joinThree(h);
    await append(h, { prevLogIndex: 1, prevLogTerm: 1, entries: [configEntry(2, 1, { voters: [A, B, ME, 'http://d'], learners: [] })] });
    expect(h.node.urls()).toContain('http://d');
    await append(h, { term: 2, from: B, prevLogIndex: 1, prevLogTerm: 1, entries: [command(2, 2, 'x')] });
    expect(h.node.urls()).not.toContain('http://d');
    await h.node.close();
  });
});
