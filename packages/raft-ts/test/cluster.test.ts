// The real-network test: three nodes in one process, each behind its own
// node:http server on 127.0.0.1 (handler mounted under /raft), talking through
// an HttpTransport per member, with real timers and real fsyncs in temp dirs.
import { describe, expect, it } from '@jest/globals';
import { waitFor } from '@msg/test-utils';
import { applyAll, closeNode, formCluster, leaderOf, openNode, startMember, type Member } from './loopback.js';

const encoder = new TextEncoder();

describe('a three-node cluster over loopback HTTP', () => {
  it('elects, replicates, survives the leader\'s close and catches a node that was down up through a snapshot', async () => {
    const members = [await startMember(), await startMember(), await startMember()];
    const [a, b, c] = members as [Member, Member, Member];
    try {
      // Bootstrap on a, then b joins through a and c through b (a follower forwards to the leader).
      await formCluster(members, 'previous');
      const all = [a.url, b.url, c.url].sort();
      await waitFor(() => members.every((m) => JSON.stringify(m.node!.config().voters.sort()) === JSON.stringify(all)), { timeoutMs: 10_000 });
      for (const m of members) {
        expect(m.node!.config().voters.sort()).toEqual(all);
        expect(m.node!.clusterId()).toBe(a.node!.clusterId());
      }

      // Replicate: 30 concurrent applies commit and reach every state machine in the same order.
      const first = await leaderOf(members);
      const batch1 = Array.from({ length: 30 }, (_, i) => `one-${i}`);
      const last1 = await applyAll(first, batch1);
      await waitFor(() => members.every((m) => m.node!.appliedIndex >= last1), { timeoutMs: 10_000 });
      for (const m of members) expect(m.sm.texts()).toEqual(first.sm.texts());
      expect([...first.sm.texts()].sort()).toEqual([...batch1].sort());
      // A follower refuses applies and names the leader.
      const follower = members.find((m) => m !== first)!;
      await expect(follower.node!.apply(encoder.encode('x'))).rejects.toMatchObject({ code: 'NOT_LEADER', leaderURL: first.url });

      // The leader closes gracefully: it hands leadership over, and the two others go on committing.
      await closeNode(first);
      const rest = members.filter((m) => m !== first);
      const second = await leaderOf(rest);
      expect(second.messages).toContain('raft: leadership transfer to this node');
      const last2 = await applyAll(second, ['after-close']);
      await waitFor(() => rest.every((m) => m.node!.appliedIndex >= last2), { timeoutMs: 10_000 });

      // The old leader comes back and catches up from the log; then another follower goes down.
      await openNode(first);
      await waitFor(() => first.node!.appliedIndex >= last2, { timeoutMs: 10_000 });
      const down = rest.find((m) => m !== second)!;
      const downLast = down.node!.lastIndex;
      await closeNode(down);

      // While it is down the leader commits far past its log and compacts behind snapshots.
      const up = members.filter((m) => m !== down);
      const leader = await leaderOf(up);
      let last3 = 0;
      for (let round = 0; round < 5; round++) {
        last3 = await applyAll(leader, Array.from({ length: 30 }, (_, i) => `three-${round}-${i}`));
      }
      await waitFor(async () => leader.node!.snapshotIndex > downLast + 5 && (await leader.node!.readLogEntry(downLast + 1)) === undefined, {
        timeoutMs: 10_000,
        message: 'the leader compacted past the down node',
      });

      // The node that was down reopens and catches up through InstallSnapshot.
      await openNode(down);
      await waitFor(() => down.node!.appliedIndex >= last3, { timeoutMs: 15_000, message: 'the restarted node caught up' });
      expect(down.messages).toContain('raft: snapshot installed');
      await waitFor(() => up.every((m) => m.node!.appliedIndex >= last3));
      // Snapshots carry the whole state: every node holds the same applied entries in the same order.
      expect(leader.sm.texts()).toHaveLength(30 + 1 + 150);
      for (const m of members) expect(m.sm.texts()).toEqual(leader.sm.texts());
    } finally {
      for (const m of members) {
        await m.node?.close().catch(() => undefined);
        await m.close();
      }
    }
  }, 60_000);
});
