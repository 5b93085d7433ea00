// Membership changes, leadership transfer and snapshots, checked on one node
// whose peers are played by the test through a held transport.
import { describe, expect, it } from '@jest/globals';
import { waitFor } from '@msg/test-utils';
import { RaftError, isRaftError } from '../src/errors.js';
import { A, append, B, CLUSTER, codeOf, command, configEntry, elect, joinThree, ME, openHarness, shutdown, type Harness } from './harness.js';

const D = 'http://d';
const encoder = new TextEncoder();

/** Answers every held AppendEntries call (to `only`, when given) with success up to its last entry. */
function ackAppends(h: Harness, only?: string[]): void {
  for (const c of h.transport.take('appendEntries')) {
    if (only && !only.includes(c.target)) {
      h.transport.calls.push(c);
      continue;
    }
    c.resolve({ term: c.req.term, success: true, matchIndex: c.req.prevLogIndex + c.req.entries.length });
  }
}

/** Waits for `cond`, acknowledging appends (of `only`) while it waits. */
function acking(h: Harness, cond: () => boolean, only?: string[]): Promise<true> {
  return waitFor(() => {
    ackAppends(h, only);
    return cond();
  });
}

/** The harness node as leader of {ME, A, B} in term 2. */
async function leader(overrides: Parameters<typeof openHarness>[0] = {}): Promise<Harness> {
  const h = await openHarness(overrides);
  await joinThree(h);
  await elect(h);
  await acking(h, () => h.node.commitIndex === 2);
  return h;
}

describe('membership changes', () => {
  it('a leader adds a joining node as a learner, replicates to it, and promotes it once caught up', async () => {
    const h = await leader();
    let joined = false;
    const join = h.node.handleJoin({ url: D }).then((res) => {
      joined = true;
      return res;
    });
    await acking(h, () => joined, [A, B]);
    expect((await join).config).toEqual({ voters: [A, B, ME], learners: [D] });
    expect((await join).clusterId).toBe(CLUSTER);
    expect(h.node.state).toBe('leader');
    // D catches up: the leader promotes it through a second change.
    await acking(h, () => h.node.config().voters.includes(D));
    expect(h.node.config()).toEqual({ voters: [A, B, ME, D], learners: [] });
    await acking(h, () => h.node.commitIndex === h.node.lastIndex);
    await shutdown(h);
  });

  it('allows one change at a time: another before the first commits is CONFIG_CHANGE_IN_PROGRESS', async () => {
    const h = await leader();
    const first = h.node.handleJoin({ url: D });
    expect(await codeOf(h.node.removeMember(B))).toBe('CONFIG_CHANGE_IN_PROGRESS');
    await acking(h, () => h.node.config().learners.includes(D) && h.node.commitIndex === h.node.lastIndex, [A, B]);
    await first;
    await shutdown(h);
  });

  it('a new leader changes no membership (join, leave, promotion) before its no-op of the term commits', async () => {
    const h = await openHarness();
    await joinThree(h);
    await elect(h); // term 2: the no-op at 2 is not acknowledged by anyone yet
    expect(h.node.commitIndex).toBe(1);
    const last = h.node.lastIndex;
    let joinDone = false;
    const join = h.node.handleJoin({ url: D }).finally(() => (joinDone = true));
    const leave = codeOf(h.node.removeMember(B));
    await new Promise((r) => setTimeout(r, 20));
    // Neither change was appended while the no-op is uncommitted.
    expect(h.node.lastIndex).toBe(last);
    expect(h.node.config()).toEqual({ voters: [A, B, ME], learners: [] });
    // Past an election timeout without the no-op committing (the peers answer, but do not store it): both give up, retriable.
    for (let t = 0; t < 12; t++) {
      for (const c of h.transport.take('appendEntries')) c.resolve({ term: c.req.term, success: true, matchIndex: 1 });
      h.clock.advance(10);
      await new Promise((r) => setImmediate(r));
    }
    expect(h.node.isLeader()).toBe(true);
    expect(await leave).toBe('CONFIG_CHANGE_IN_PROGRESS');
    expect(await codeOf(join)).toBe('CONFIG_CHANGE_IN_PROGRESS');
    expect(joinDone).toBe(true);
    expect(h.node.lastIndex).toBe(last);
    // Once the no-op commits, the same join goes through.
    h.clock.advance(10); // the next heartbeat carries the no-op again
    await acking(h, () => h.node.commitIndex === last, [A]);
    const again = h.node.handleJoin({ url: D });
    await acking(h, () => h.node.config().learners.includes(D) && h.node.commitIndex === h.node.lastIndex, [A]);
    expect((await again).config.learners).toEqual([D]);
    await shutdown(h);
  });

  it('refuses to remove a non-member (UNKNOWN_MEMBER) or the last voter (BAD_REQUEST)', async () => {
    const h = await openHarness();
    await h.node.initialize();
    await waitFor(() => h.node.isLeader());
    expect(await codeOf(h.node.removeMember('http://nobody'))).toBe('UNKNOWN_MEMBER');
    expect(await codeOf(h.node.leave())).toBe('BAD_REQUEST');
    expect(h.node.urls()).toEqual([ME]);
    await h.node.close();
  });

  it('a leader that leaves commits its removal without counting itself, then steps down and hands over', async () => {
    const h = await leader();
    let left = false;
    const leave = h.node.leave().then(() => (left = true));
    // Only A answers: the new configuration {A, B} needs both, the leader's own copy does not count.
    await acking(h, () => h.node.config().voters.length === 2, [A]);
    await new Promise((r) => setTimeout(r, 20));
    ackAppends(h, [A]);
    expect(left).toBe(false);
    await acking(h, () => left);
    await leave;
    expect(h.node.state).toBe('removed');
    expect(h.node.isLeader()).toBe(false);
    const timeoutNow = await h.transport.next('timeoutNow');
    expect([A, B]).toContain(timeoutNow.target);
    await h.node.close();
  });

  it('answers a retried leave or join only once the change it repeats is committed', async () => {
    const h = await leader();
    const first = h.node.removeMember(B);
    let retried = false;
    const retry = h.node.handleLeave({ url: B, clusterId: CLUSTER }).then(() => (retried = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(retried).toBe(false); // not UNKNOWN_MEMBER, and not before the removal commits
    await acking(h, () => retried, [A]);
    await Promise.all([first, retry]);
    expect(await codeOf(h.node.handleLeave({ url: B, clusterId: CLUSTER }))).toBe('UNKNOWN_MEMBER');
    const join = h.node.handleJoin({ url: D });
    let rejoined = false;
    const again = h.node.handleJoin({ url: D }).then(() => (rejoined = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(rejoined).toBe(false);
    await acking(h, () => rejoined, [A]);
    await Promise.all([join, again]);
    await shutdown(h);
  });

  it('a joining node tries the members it was given in turn and follows a redirect to the leader', async () => {
    const h = await openHarness();
    const joined = h.node.join([B, 'http://gone', A]);
    (await h.transport.next('join', B)).reject(new RaftError('NOT_LEADER', 'ask the leader', { leaderURL: 'http://gone' }));
    (await h.transport.next('join', 'http://gone')).reject(new RaftError('UNREACHABLE', 'refused'));
    await new Promise((r) => setImmediate(r));
    h.clock.advance(50); // half an election timeout between attempts
    const atA = await h.transport.next('join', A);
    atA.resolve({ clusterId: CLUSTER, leader: A, config: { voters: [A, B], learners: [ME] } });
    await waitFor(() => h.node.clusterId() === CLUSTER);
    await append(h, { prevLogIndex: 0, prevLogTerm: 0, entries: [configEntry(1, 1, { voters: [A, B, ME], learners: [] })], leaderCommit: 1 });
    await joined;
    expect(h.node.state).toBe('follower');
    expect(await codeOf(h.node.join([]))).toBe('ALREADY_INITIALIZED');
    const fresh = await openHarness();
    expect(await codeOf(fresh.node.join([]))).toBe('BAD_REQUEST');
    const mismatch = fresh.node.join(A, { clusterId: 'other' });
    (await fresh.transport.next('join', A)).reject(new RaftError('CLUSTER_MISMATCH', 'cluster other expected'));
    expect(await codeOf(mismatch)).toBe('CLUSTER_MISMATCH');
    expect(fresh.node.state).toBe('uninitialized');
    await Promise.all([h.node.close(), fresh.node.close()]);
  });

  it('a follower forwards a join to its leader', async () => {
    const h = await openHarness();
    await joinThree(h);
    const join = h.node.handleJoin({ url: D });
    const forwarded = await h.transport.next('join', A);
    expect(forwarded.req).toMatchObject({ url: D });
    forwarded.resolve({ clusterId: CLUSTER, leader: A, config: { voters: [A, B, ME], learners: [D] } });
    expect((await join).leader).toBe(A);
    await h.node.close();
  });
});

describe('leadership transfer', () => {
  it('brings the target up to date, sends it TimeoutNow, and refuses proposals meanwhile', async () => {
    const h = await leader();
    const pending = h.node.apply(encoder.encode('x')); // index 3, not yet on A
    const transfer = h.node.transferLeadership(A);
    expect(await codeOf(h.node.apply(encoder.encode('y')))).toBe('NOT_LEADER');
    expect(h.transport.take('timeoutNow')).toEqual([]);
    await acking(h, () => h.transport.calls.some((c) => c.method === 'timeoutNow'), [A, B]);
    const timeoutNow = (await h.transport.next('timeoutNow', A)).req;
    expect(timeoutNow).toMatchObject({ term: 2, from: ME, clusterId: CLUSTER });
    await pending;
    // A wins its election: its first AppendEntries of term 3 reaches the old leader.
    await append(h, { term: 3, from: A, prevLogIndex: 3, prevLogTerm: 2, leaderCommit: 3 });
    await transfer;
    expect(h.node.state).toBe('follower');
    expect(h.node.leader()).toBe(A);
    await h.node.close();
  });

  it('refuses a target that is not a voter (UNKNOWN_MEMBER) and a call on a follower (NOT_LEADER)', async () => {
    const h = await leader();
    expect(await codeOf(h.node.transferLeadership(D))).toBe('UNKNOWN_MEMBER');
    expect(h.node.isLeader()).toBe(true);
    await shutdown(h);
    const f = await openHarness();
    await joinThree(f);
    const err = await f.node.transferLeadership(B).catch((e: unknown) => e);
    expect(isRaftError(err, 'NOT_LEADER')).toBe(true);
    await f.node.close();
  });

  it('a candidate started by TimeoutNow skips the pre-vote and asks voters to ignore their leader lease', async () => {
    const h = await openHarness();
    await joinThree(h);
    await h.node.handleTimeoutNow({ term: 1, from: A, clusterId: CLUSTER });
    const vote = await h.transport.next('requestVote', B);
    expect(vote.req).toMatchObject({ preVote: false, transfer: true, term: 2 });
    await h.node.close();
  });
});

describe('snapshots', () => {
  it('a leader streams its snapshot in chunks to a follower whose next entry was compacted away', async () => {
    const h = await leader({ snapshotThreshold: 5, trailingEntries: 1, snapshotChunkBytes: 16 });
    // A is unreachable while B acknowledges: the leader commits, snapshots and compacts.
    const texts: string[] = [];
    for (let i = 0; i < 12; i++) {
      texts.push(`entry-${i}`);
      let applied = false;
      const apply = h.node.apply(encoder.encode(`entry-${i}`)).then(() => (applied = true));
      await acking(
        h,
        () => {
          for (const c of h.transport.take('appendEntries', A)) c.reject(new Error('unreachable'));
          return applied;
        },
        [B],
      );
      await apply;
    }
    await waitFor(() => h.node.snapshotIndex > 5);
    const snapshotIndex = h.node.snapshotIndex;
    expect(await h.node.readLogEntry(2)).toBeUndefined();
    // A answers again: its next entry is gone, so it gets snapshots (one may have started before the last
    // compaction: then the newest follows), each whole, 16 bytes at a time, in order; then the log.
    h.clock.advance(10);
    let chunks: Uint8Array[] = [];
    let sent = 0;
    let installed = 0;
    const nextCall = () =>
      waitFor(() => h.transport.take('installSnapshot', A)[0] ?? h.transport.take('appendEntries', A)[0], { message: 'a call to A' });
    let call = await nextCall();
    for (let i = 0; i < 1000 && call.method === 'installSnapshot'; i++) {
      const req = call.req as unknown as { offset: number; data: Uint8Array; done: boolean; lastIncludedIndex: number };
      if (req.offset === 0) {
        chunks = [];
        sent = req.lastIncludedIndex;
      }
      expect(call.req).toMatchObject({ term: 2, from: ME, clusterId: CLUSTER, lastIncludedIndex: sent });
      expect(req.offset).toBe(chunks.reduce((n, c) => n + c.length, 0));
      expect(req.data.length).toBeLessThanOrEqual(16);
      chunks.push(req.data);
      call.resolve({ term: 2, received: req.offset + req.data.length });
      if (req.done) installed = sent;
      call = await nextCall();
    }
    expect(installed).toBeGreaterThanOrEqual(snapshotIndex);
    const state = JSON.parse(Buffer.concat(chunks).toString()) as { text: string }[];
    expect(state.map((s) => s.text)).toEqual(texts.slice(0, state.length));
    expect(state.length).toBeGreaterThan(0);
    // Then replication resumes from the log after the snapshot.
    expect(call.method).toBe('appendEntries');
    expect(call.req.prevLogIndex).toBeGreaterThanOrEqual(installed);
    await shutdown(h);
  });

  it('a follower assembles chunks in order, ignores a misplaced one, restores the state machine and resumes from the log', async () => {
    const h = await openHarness();
    await joinThree(h);
    const data = encoder.encode(JSON.stringify([{ index: 5, text: 'five' }, { index: 9, text: 'nine' }]));
    const chunk = (offset: number, end: number, done: boolean) =>
      h.node.handleInstallSnapshot({
        term: 1,
        from: A,
        clusterId: CLUSTER,
        lastIncludedIndex: 10,
        lastIncludedTerm: 1,
        config: { voters: [A, B, ME], learners: [] },
        offset,
        data: data.subarray(offset, end),
        done,
      });
    expect(await chunk(0, 10, false)).toEqual({ term: 1, received: 10 });
    expect(await chunk(20, 30, false)).toEqual({ term: 1, received: 10 }); // a gap: "send from 10"
    expect(await chunk(10, 20, false)).toEqual({ term: 1, received: 20 });
    expect(await chunk(20, data.length, true)).toEqual({ term: 1, received: data.length });
    expect(h.sm.texts()).toEqual(['five', 'nine']);
    expect(h.node.appliedIndex).toBe(10);
    expect(h.node.commitIndex).toBe(10);
    expect(h.node.snapshotIndex).toBe(10);
    const res = await append(h, { prevLogIndex: 10, prevLogTerm: 1, entries: [command(11, 1, 'eleven')], leaderCommit: 11 });
    expect(res).toEqual({ term: 1, success: true, matchIndex: 11 });
    await waitFor(() => h.node.appliedIndex === 11);
    expect(h.sm.texts()).toEqual(['five', 'nine', 'eleven']);
    // The installed snapshot is durable: a restart restores it.
    await h.node.close();
    const again = await openHarness({}, h.dir);
    expect(again.node.snapshotIndex).toBe(10);
    expect(again.sm.texts()).toEqual(['five', 'nine']);
    await again.node.close();
  });
});

describe('a removed member', () => {
  it('receives the entry and the commit index that remove it, then nothing more', async () => {
    const h = await leader();
    const removed = h.node.removeMember(B);
    // The change goes to B too, though the new configuration leaves it out; A's answer commits it.
    const toB = await h.transport.next('appendEntries', B);
    const index = h.node.lastIndex;
    expect(toB.req.entries.map((e) => e.index)).toContain(index);
    await acking(h, () => h.node.commitIndex >= index, [A]);
    await removed;
    // The commit index reaches B once more (while the first request is still unanswered), then nothing.
    const last = await h.transport.next('appendEntries', B);
    expect(last.req.leaderCommit).toBeGreaterThanOrEqual(index);
    toB.resolve({ term: 2, success: true, matchIndex: index });
    last.resolve({ term: 2, success: true, matchIndex: index });
    for (let i = 0; i < 5; i++) {
      h.clock.advance(10);
      ackAppends(h, [A]);
      await new Promise((r) => setImmediate(r));
    }
    expect(h.transport.take('appendEntries', B)).toEqual([]);
    expect(h.node.urls()).toEqual([A, ME]);
    await shutdown(h);
  });
});
