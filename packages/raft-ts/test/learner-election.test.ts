// A learner whose log is the most up to date may be the only way out: voters whose logs are older cannot win
// (one of them may count the learner as a voter through an uncommitted promotion the learner never saw, and the
// learner refuses it its vote). Raft's safety does not depend on the candidate being a voter, only on a majority
// of the voters electing it (raft simulation seeds 1182 and 23638, broker simulation seed 5939). So a learner
// stands for election like a voter (pre-vote first, so never while a leader is heard), and once elected it
// commits an entry of its term and hands leadership to the most up-to-date voter.
import { describe, expect, it } from '@jest/globals';
import { waitFor } from '@msg/test-utils';
import { A, append, B, CLUSTER, command, configEntry, openHarness } from './harness.js';

const C = 'http://c';

describe('a learner with the most up-to-date log', () => {
  it('stands for election when no leader is heard, wins the votes of a majority of the voters, commits and hands over', async () => {
    const h = await openHarness();
    const joined = h.node.join(A);
    (await h.transport.next('join', A)).resolve({ clusterId: CLUSTER, leader: A, config: { voters: [A, B, C], learners: [h.options.url] } });
    await waitFor(() => h.node.clusterId() === CLUSTER);
    // The leader of term 1 replicated entries to the learner only (not committed), then went away.
    const config = { voters: [A, B, C], learners: [h.options.url] };
    const res = await append(h, { entries: [configEntry(1, 1, config), command(2, 1, 'x'), command(3, 1, 'y')], leaderCommit: 1 });
    expect(res.success).toBe(true);
    joined.catch(() => undefined); // never promoted: the join does not resolve (the leader is gone); it ends with the close
    expect(h.node.state).toBe('learner');

    h.clock.advance(150); // no leader for one election timeout (100 ms with random() = 0), not two
    for (const phase of ['pre-vote', 'vote']) {
      const calls = await waitFor(() => {
        const held = h.transport.calls.filter((c) => c.method === 'requestVote');
        return held.length >= 3 ? h.transport.take('requestVote') : undefined;
      }, { message: `${phase} requests to the three voters` });
      expect(calls.map((c) => c.target).sort()).toEqual([A, B, C]);
      for (const c of calls) {
        expect([phase, c.req.lastLogIndex, c.req.lastLogTerm]).toEqual([phase, 3, 1]);
        if (c.target === A) c.reject(new Error('unreachable'));
        else c.resolve({ term: c.req.term, voteGranted: true });
      }
    }
    await waitFor(() => h.node.isLeader(), { message: 'the learner leads' });
    // Its no-op of the new term, acknowledged by B and C, commits; it then hands over to a voter and steps down.
    for (const voter of [B, C]) {
      const ae = await waitFor(() => h.transport.take('appendEntries', voter)[0], { message: `an append to ${voter}` });
      const last = ae.req.prevLogIndex + ae.req.entries.length;
      ae.resolve({ term: h.node.term, success: true, matchIndex: last });
    }
    const handover = await h.transport.next('timeoutNow');
    expect([B, C]).toContain(handover.target);
    await waitFor(() => !h.node.isLeader(), { message: 'the learner stepped down' });
    expect(h.node.commitIndex).toBeGreaterThanOrEqual(4);
    expect(h.sm.texts()).toEqual(['x', 'y']);
    h.transport.dropAll();
    await h.node.close();
  });

  it('never stands while a leader is heard from', async () => {
    const h = await openHarness();
    const joined = h.node.join(A);
    (await h.transport.next('join', A)).resolve({ clusterId: CLUSTER, leader: A, config: { voters: [A, B, C], learners: [h.options.url] } });
    await waitFor(() => h.node.clusterId() === CLUSTER);
    await append(h, { entries: [configEntry(1, 1, { voters: [A, B, C], learners: [h.options.url] })], leaderCommit: 1 });
    for (let i = 0; i < 10; i++) {
      h.clock.advance(50);
      await append(h, { prevLogIndex: 1, prevLogTerm: 1, leaderCommit: 1 });
    }
    expect(h.transport.take('requestVote')).toEqual([]);
    h.transport.dropAll();
    joined.catch(() => undefined);
    await h.node.close();
  });
});
