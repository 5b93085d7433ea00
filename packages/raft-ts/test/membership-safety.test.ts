// The known flaw of single-server membership changes (Ongaro, raft-dev 2015; the
// dissertation's errata): a leader that changes the configuration before it has
// committed an entry of its own term can lose committed entries. Played out
// step by step on five real nodes over the simulated network and disks.
import { describe, expect, it } from '@jest/globals';
import { isRaftError } from '../src/errors.js';
import { RaftNode } from '../src/raft-node.js';
import { MemStateMachine } from './harness.js';
import { Prng } from './sim/prng.js';
import { Scheduler } from './sim/scheduler.js';
import { SimDisk } from './sim/sim-disk.js';
import { SimNetwork } from './sim/sim-network.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const entryAt = (node: RaftNode, index: number) => node.readLogEntry(index);

interface Member {
  url: string;
  disk: SimDisk;
  alive: { value: boolean };
  node: RaftNode;
}

/** Five nodes on one virtual clock; `fast` is the node whose election timer fires first. */
function world() {
  const sched = new Scheduler();
  const rng = new Prng(1);
  const net = new SimNetwork(sched, rng);
  net.faults = { drop: 0, duplicate: 0, minDelay: 1, maxDelay: 1 };
  const members = new Map<string, Member>();
  const violations: string[] = [];
  const committed = new Map<number, string>();
  let fast = '';

  const start = async (url: string, disk = new SimDisk(() => rng.next())): Promise<Member> => {
    const alive = { value: true };
    const node = new RaftNode({
      dir: '/data',
      url,
      stateMachine: new MemStateMachine(),
      transport: net.transport(url, () => alive.value),
      clock: sched.clock(() => alive.value),
      // The `fast` node's election timeout is the shortest, every other one the longest.
      random: () => (url === fast ? 0 : 0.99),
      fs: disk.mount(),
      electionTimeoutMs: 100,
      heartbeatIntervalMs: 20,
    });
    const m = { url, disk, alive, node };
    members.set(url, m);
    let opened = false;
    void node.open().then(() => (opened = true));
    await sched.runUntil(sched.now + 100, () => opened);
    net.register(url, node);
    return m;
  };
  const crash = (m: Member): void => {
    m.alive.value = false;
    net.register(m.url, undefined);
    m.disk.crash();
  };
  /** Records every committed entry; two different ones at an index is the violation. */
  const check = async (): Promise<void> => {
    for (const m of members.values()) {
      if (!m.alive.value) continue;
      for (let i = 1; i <= m.node.commitIndex; i++) {
        const e = await entryAt(m.node, i);
        if (!e) continue;
        const text = `${e.term}/${e.type}/${decoder.decode(e.data)}`;
        const seen = committed.get(i);
        if (seen === undefined) committed.set(i, text);
        else if (seen !== text) violations.push(`${m.url} committed ${text} at ${i} where ${seen} was committed`);
      }
    }
  };
  const run = async (ms: number, until?: () => boolean): Promise<void> => {
    const end = sched.now + ms;
    while (sched.now < end && !until?.()) {
      await sched.runUntil(Math.min(end, sched.now + 5), until);
      await check();
    }
  };
  return {
    sched,
    net,
    members,
    violations,
    start,
    crash,
    run,
    setFast: (url: string) => (fast = url),
  };
}

describe('membership changes and leader changes', () => {
  it('a new leader changes the configuration only after committing an entry of its term: no committed entry is lost', async () => {
    const w = world();
    const [n1, n2, n3, n4, n5] = ['http://n1', 'http://n2', 'http://n3', 'http://n4', 'http://n5'] as const;
    w.setFast(n2);
    const m1 = await w.start(n1);
    let done = false;
    void m1.node.initialize().then(() => (done = true));
    await w.run(1000, () => done && m1.node.isLeader());
    for (const url of [n2, n3, n4]) {
      const m = await w.start(url);
      let joined = false;
      void m.node.join(n1).then(() => (joined = true));
      await w.run(3000, () => joined);
      expect(joined).toBe(true);
    }
    expect(m1.node.config()).toEqual({ voters: [n1, n2, n3, n4], learners: [] });

    // n5 joins: n1 adds it as a learner, committed on n2..n4.
    const m5 = await w.start(n5);
    m5.node.join(n1, { timeoutMs: 60_000 }).catch(() => undefined);
    const learnerAdded = (): boolean => m1.node.config().learners.includes(n5) && m1.node.commitIndex === m1.node.lastIndex;
    await w.run(3000, () => learnerAdded() && [n2, n3, n4].every((u) => w.members.get(u)!.node.commitIndex === m1.node.commitIndex));
    // Now n1 reaches only n5: n5 catches up, and the promotion (n5 a voter) reaches n5 alone.
    for (const url of [n2, n3, n4]) w.net.block(n1, url);
    await w.run(3000, () => m5.node.config().voters.includes(n5));
    expect(m5.node.config().voters).toContain(n5);
    const promotion = m1.node.lastIndex;
    expect(m1.node.commitIndex).toBeLessThan(promotion);
    w.crash(m1);

    // n2 is elected by n2, n3, n4 (in their configuration n5 is a learner). Its entries reach only n3.
    const m2 = w.members.get(n2)!;
    await w.run(3000, () => m2.node.isLeader());
    expect(m2.node.isLeader()).toBe(true);
    w.net.block(n2, n4);
    w.net.block(n2, n5);
    // It removes n4 at once. Before its no-op commits (it needs n4 or n1), that must not happen.
    let removal: unknown = 'pending';
    m2.node.removeMember(n4).then(
      () => (removal = 'done'),
      (err: unknown) => (removal = err),
    );
    let acked: number | undefined;
    await w.run(50);
    m2.node.apply(encoder.encode('acknowledged')).then(
      (i) => (acked = i),
      () => undefined,
    );
    await w.run(1500, () => removal !== 'pending' && acked !== undefined);

    // The old leader comes back, elected by n4 and n5, which hold its promotion of n5 (it does not hear n2).
    w.net.block(n2, n1);
    const back = await w.start(n1, m1.disk);
    await w.run(3000, () => back.node.isLeader() || w.violations.length > 0);
    // Heal: everything converges under whoever leads.
    w.net.heal();
    await w.run(5000, () => w.violations.length > 0);

    expect(w.violations).toEqual([]);
    const leader = [...w.members.values()].find((m) => m.alive.value && m.node.isLeader());
    expect(leader).toBeDefined();
    if (acked !== undefined) {
      // An acknowledged entry is on every member, at its index.
      for (const m of w.members.values()) {
        if (!leader!.node.urls().includes(m.url)) continue;
        const e = await entryAt(m.node, acked);
        expect(e && decoder.decode(e.data)).toBe('acknowledged');
      }
    }
    // The removal was refused: n2 never committed an entry of its term.
    expect(isRaftError(removal, 'CONFIG_CHANGE_IN_PROGRESS')).toBe(true);
    for (const m of w.members.values()) m.alive.value = false;
  });
});
