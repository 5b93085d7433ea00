import { RaftNode } from '../../src/raft-node.js';
import { EntryType } from '../../src/types.js';
import { Prng } from './prng.js';
import { Scheduler } from './scheduler.js';
import { SimDisk } from './sim-disk.js';
import { SimNetwork } from './sim-network.js';
import { SimStateMachine } from './sim-state-machine.js';

/** Options of {@link runSimulation}. Durations are virtual milliseconds. */
export interface SimOptions {
  /** Length of the faulty phase. Default 6000. */
  durationMs?: number;
  /** Print progress. */
  trace?: (line: string) => void;
}

/** What one seed did and every violation the checkers found. */
export interface SimResult {
  seed: number;
  violations: string[];
  stats: {
    acked: number;
    committed: number;
    crashes: number;
    joins: number;
    leaves: number;
    elections: number;
    steps: number;
    snapshotsTaken: number;
    snapshotsInstalled: number;
    transfers: number;
  };
}

interface SimNode {
  url: string;
  disk: SimDisk;
  token: { alive: boolean };
  node: RaftNode | undefined;
  sm: SimStateMachine | undefined;
  checked: number;
  /** Left the cluster (or never made it in): no longer restarted. */
  gone: boolean;
  busy: boolean;
  /** A leave() is under way. */
  leaving: boolean;
}

const encoder = new TextEncoder();

/** A node's state in one line, for violation reports. */
function describe(node: RaftNode): string {
  const c = node.config();
  return `${node.url}=${node.state} term ${node.term} last ${node.lastIndex} commit ${node.commitIndex} voters [${c.voters.join(',')}] learners [${c.learners.join(',')}]`;
}
const decoder = new TextDecoder();

/**
 * Runs a whole cluster in one process for one seed: virtual clock, seeded
 * PRNG, a network that drops, delays, duplicates, reorders and partitions, and
 * disks that lose unsynced writes on crash. Nodes crash and restart, close
 * gracefully, join and leave while clients apply entries. Checkers: at most
 * one leader per term; every acknowledged entry is in every later leader's
 * log at its index; every node applies the same entry at each index; no
 * committed entry changes; after healing, the cluster commits again, all
 * nodes converge to the same state, and a new node joins through any member,
 * catches up and leaves.
 */
export async function runSimulation(seed: number, options: SimOptions = {}): Promise<SimResult> {
  const rng = new Prng(seed);
  const sched = new Scheduler();
  const net = new SimNetwork(sched, rng);
  const violations: string[] = [];
  const report = (m: string): void => {
    if (violations.length < 20) violations.push(`t=${sched.now} ${m}`);
  };
  const trace = options.trace ?? (() => undefined);
  const global = new Map<number, string>();
  const committed = new Map<number, { term: number; type: number; text: string }>();
  const leaders = new Map<number, string>();
  const acked: { index: number; text: string }[] = [];
  const stats = { acked: 0, committed: 0, crashes: 0, joins: 0, leaves: 0, elections: 0, steps: 0, snapshotsTaken: 0, snapshotsInstalled: 0, transfers: 0 };
  const count = (message: string): void => {
    if (message === 'raft: snapshot taken') stats.snapshotsTaken++;
    if (message === 'raft: snapshot installed') stats.snapshotsInstalled++;
    if (message === 'raft: leadership transfer to this node') stats.transfers++;
  };
  const logger = { debug: count, info: count, warn: count, error: (m: string, f?: Record<string, unknown>) => report(`logged error: ${m} ${String(f?.err)}`) };
  const nodes: SimNode[] = [];
  const snapshotThreshold = rng.int(20, 80);
  let opId = 0;

  /** Awaits `p` while virtual time runs (disk latency needs the scheduler). */
  const drive = async <T>(p: Promise<T>): Promise<T> => {
    let done = false;
    const watched = p.finally(() => (done = true));
    watched.catch(() => undefined);
    await sched.runUntil(sched.now + 60_000, () => done);
    if (!done) throw new Error('simulation: operation never finished');
    return watched;
  };

  const onLeader = (n: SimNode, node: RaftNode) => (leader: string | undefined, term: number) => {
    if (leader !== n.url || n.node !== node) return;
    stats.elections++;
    const other = leaders.get(term);
    if (other !== undefined && other !== n.url) report(`two leaders in term ${term}: ${other} and ${n.url}`);
    leaders.set(term, n.url);
    trace(`t=${sched.now} ${n.url} leader of term ${term}`);
    for (const a of acked) {
      const e = node.logEntry(a.index);
      if (e === undefined) {
        if (a.index > node.lastIndex) report(`leader ${n.url} (term ${term}) lacks acknowledged entry ${a.index}`);
        continue;
      }
      if (e.type !== EntryType.Command || decoder.decode(e.data) !== a.text) {
        report(`leader ${n.url} (term ${term}) has another entry at acknowledged index ${a.index}`);
      }
    }
  };

  const start = async (n: SimNode): Promise<void> => {
    const token = { alive: true };
    n.token = token;
    const sm = new SimStateMachine(n.url, global, report);
    const node = new RaftNode({
      dir: '/data',
      url: n.url,
      stateMachine: sm,
      transport: net.transport(n.url, () => token.alive),
      clock: sched.clock(() => token.alive),
      random: () => rng.next(),
      fs: n.disk.mount(),
      electionTimeoutMs: 100,
      heartbeatIntervalMs: 20,
      snapshotThreshold,
      trailingEntries: 5,
      maxAppendEntries: 16,
      maxInflight: 4,
      snapshotChunkBytes: 256,
      segmentBytes: 2048,
      logger,
    });
    node.onLeaderChange(onLeader(n, node));
    n.node = node;
    n.sm = sm;
    n.checked = 0;
    try {
      await drive(node.open());
    } catch (err) {
      report(`${n.url} failed to open: ${String(err)}`);
      n.node = undefined;
      return;
    }
    net.register(n.url, node);
  };

  const crash = (n: SimNode): void => {
    trace(`t=${sched.now} crash ${n.url}`);
    stats.crashes++;
    n.token.alive = false;
    net.register(n.url, undefined);
    n.disk.crash();
    n.node = undefined;
  };

  const make = (i: number): SimNode => {
    const n: SimNode = { url: `http://n${i}`, disk: new SimDisk(() => rng.next(), () => new Promise((resolve) => sched.schedule(rng.int(0, 3), resolve))), token: { alive: false }, node: undefined, sm: undefined, checked: 0, gone: false, busy: false, leaving: false };
    nodes.push(n);
    return n;
  };

  const up = (): SimNode[] => nodes.filter((n) => n.node !== undefined && !n.gone);
  const members = (): SimNode[] => nodes.filter((n) => !n.gone);

  const checkCommitted = (): void => {
    for (const n of up()) {
      const node = n.node!;
      for (let i = Math.max(n.checked + 1, 1); i <= node.commitIndex; i++) {
        const e = node.logEntry(i);
        if (!e) continue;
        const text = decoder.decode(e.data);
        const seen = committed.get(i);
        if (!seen) committed.set(i, { term: e.term, type: e.type, text });
        else if (seen.term !== e.term || seen.type !== e.type || seen.text !== text) {
          report(`committed entry ${i} changed on ${n.url}: term ${seen.term}→${e.term}`);
        }
      }
      n.checked = Math.max(n.checked, node.commitIndex);
      if (node.state === 'failed') report(`${n.url} failed`);
    }
  };

  const propose = (): void => {
    const candidates = up().filter((n) => n.node!.isLeader() || n.node!.state === 'follower');
    if (candidates.length === 0) return;
    const n = rng.pick(candidates);
    const batch = rng.chance(0.2) ? rng.int(2, 4) : 1;
    const texts = Array.from({ length: batch }, () => `c${++opId}`);
    n.node!.applyBatch(texts.map((t) => encoder.encode(t))).then(
      (index) => {
        stats.acked += texts.length;
        texts.forEach((text, k) => acked.push({ index: index + k, text }));
        const seen = global.get(index);
        if (seen !== texts[0]) report(`apply(${texts[0]}) resolved with ${index} where "${seen}" was applied`);
      },
      () => undefined,
    );
  };

  // Bootstrap: n1 initializes, n2 and n3 join.
  const first = make(1);
  await start(first);
  await drive(first.node!.initialize());
  for (const i of [2, 3]) {
    const n = make(i);
    await start(n);
    let joined = false;
    n.node!.join(first.url).then(
      () => (joined = true),
      (err: unknown) => report(`${n.url} could not join: ${String(err)}`),
    );
    await sched.runUntil(sched.now + 3000, () => joined);
    stats.joins++;
  }
  if (members().some((n) => n.node!.state !== 'follower' && n.node!.state !== 'leader')) report('bootstrap did not reach 3 voters');

  // Faulty phase.
  net.faults = { drop: rng.next() * 0.1, duplicate: rng.next() * 0.05, minDelay: 1, maxDelay: rng.int(3, 30) };
  const end = sched.now + (options.durationMs ?? 6000);
  let nextIndex = 4;
  let healAt = Infinity;
  while (sched.now < end && violations.length === 0) {
    await sched.runUntil(sched.now + 5);
    checkCommitted();
    for (let k = rng.int(0, 3); k > 0; k--) propose();
    const r = rng.next();
    const down = members().filter((n) => n.node === undefined);
    if (sched.now >= healAt) {
      net.heal();
      healAt = Infinity;
    }
    if (r < 0.0015) {
      // Correlated failure: a power loss takes down several nodes at once.
      const victims = up().filter((x) => !x.busy && x.node!.state !== 'uninitialized' && rng.chance(0.7));
      for (const n of victims) crash(n);
    } else if (r < 0.005 && up().length > 0) {
      const n = rng.pick(up().filter((x) => !x.busy && x.node!.state !== 'uninitialized'));
      if (n) crash(n);
    } else if (r < 0.014 && down.length > 0) {
      const n = rng.pick(down);
      trace(`t=${sched.now} restart ${n.url}`);
      await start(n);
    } else if (r < 0.016 && up().length > 0) {
      const n = rng.pick(up().filter((x) => !x.busy));
      if (n) {
        const node = n.node!;
        n.busy = true;
        trace(`t=${sched.now} close ${n.url}`);
        node.close().then(
          () => {
            n.busy = false;
            if (n.node === node) {
              n.token.alive = false;
              net.register(n.url, undefined);
              n.node = undefined;
            }
          },
          (err: unknown) => report(`close of ${n.url} failed: ${String(err)}`),
        );
      }
    } else if (r < 0.02 && healAt === Infinity) {
      const groups = new Map<string, number>();
      for (const n of members()) groups.set(n.url, rng.int(0, 1));
      net.partition(groups);
      healAt = sched.now + rng.int(100, 1500);
      trace(`t=${sched.now} partition ${[...groups].map(([u, g]) => `${u}:${g}`).join(' ')}`);
    } else if (r < 0.023 && members().length < 5 && !nodes.some((n) => n.busy)) {
      const target = rng.pick(up());
      if (target) {
        const n = make(nextIndex++);
        n.busy = true;
        await start(n);
        trace(`t=${sched.now} ${n.url} joins via ${target.url}`);
        n.node?.join(rng.chance(0.5) ? target.url : [target.url, ...up().filter((x) => x !== n && x !== target).map((x) => x.url)], { timeoutMs: 5000 }).then(
          () => {
            stats.joins++;
            n.busy = false;
          },
          () => {
            n.busy = false;
            if (n.node?.state === 'uninitialized') {
              n.gone = true;
              n.token.alive = false;
              net.register(n.url, undefined);
            }
          },
        );
      }
    } else if (r < 0.0315) {
      // The leader hands over on request (to a chosen voter or the most up-to-date one).
      const leader = up().find((x) => x.node!.isLeader());
      if (leader) {
        const voters = leader.node!.config().voters.filter((v) => v !== leader.url);
        const to = rng.chance(0.5) ? rng.pick(voters) : undefined;
        trace(`t=${sched.now} ${leader.url} transfers leadership to ${to ?? 'the most up-to-date voter'}`);
        leader.node!.transferLeadership(to).catch(() => undefined);
      }
    } else if (r < 0.0355 && members().length > 3 && !nodes.some((n) => n.leaving)) {
      // A voter (the leader too) leaves, possibly while a join is under way: one change at a time is the node's job.
      const n = rng.pick(up().filter((x) => !x.busy && (x.node!.state === 'follower' || x.node!.state === 'leader')));
      if (n) {
        n.busy = true;
        n.leaving = true;
        const node = n.node!;
        trace(`t=${sched.now} ${n.url} leaves`);
        node.leave().then(
          () => {
            stats.leaves++;
            trace(`t=${sched.now} ${n.url} left`);
            n.gone = true;
            n.busy = false;
            n.leaving = false;
            n.token.alive = false;
            net.register(n.url, undefined);
          },
          () => {
            n.busy = false;
            n.leaving = false;
          },
        );
      }
    }
  }

  // Healing phase: no faults, every member back up; the cluster must commit and converge.
  net.heal();
  net.faults = { drop: 0, duplicate: 0, minDelay: 1, maxDelay: 5 };
  await sched.runUntil(sched.now + 1000);
  for (const n of members()) if (n.node === undefined && !n.busy) await start(n);
  await sched.runUntil(sched.now + 2000);
  checkCommitted();
  let final = -1;
  for (let attempt = 0; attempt < 40 && final < 0 && violations.length === 0; attempt++) {
    const leader = up().find((n) => n.node!.isLeader());
    if (leader) {
      leader.node!.apply(encoder.encode('final')).then(
        (i) => (final = i),
        () => undefined,
      );
    }
    await sched.runUntil(sched.now + 300, () => final >= 0);
  }
  if (final < 0 && violations.length === 0) report(`no leader could commit after healing (${up().map((n) => describe(n.node!)).join('; ')})`);
  // Pending joins, leaves and closes settle first (a join through a member that left fails: that node is gone).
  await sched.runUntil(sched.now + 10_000, () => !nodes.some((n) => n.busy));
  const finalLeader = up().find((n) => n.node!.isLeader());
  const config = finalLeader ? finalLeader.node!.urls() : [];
  const live = up().filter((n) => config.includes(n.url));
  await sched.runUntil(sched.now + 5000, () => live.every((n) => n.node!.appliedIndex >= final));
  checkCommitted();
  if (final >= 0) {
    for (const n of live) {
      if (n.node!.appliedIndex < final) report(`${n.url} did not catch up: applied ${n.node!.appliedIndex} < ${final} (state ${n.node!.state})`);
    }
    const ref = live[0]!;
    for (const n of live) {
      for (const [i, text] of ref.sm!.state) {
        if (i <= final && n.sm!.state.get(i) !== text) {
          report(`${n.url} lacks "${text}" at ${i} that ${ref.url} applied`);
          break;
        }
      }
      if ([...n.sm!.state.keys()].filter((i) => i <= final).length !== [...ref.sm!.state.keys()].filter((i) => i <= final).length) {
        report(`${n.url} and ${ref.url} applied different sets of entries`);
      }
    }
    for (const a of acked) {
      if (global.get(a.index) !== a.text) report(`acknowledged "${a.text}" at ${a.index} is not what was applied ("${global.get(a.index)}")`);
    }
  }
  // Membership works again after healing: a new node joins through any member, catches up, then leaves.
  if (final >= 0 && violations.length === 0 && live.length > 0) {
    const via = rng.pick(live);
    const n = make(nextIndex++);
    await start(n);
    const node = n.node;
    trace(`t=${sched.now} after healing: ${n.url} joins via ${via.url}, then leaves`);
    if (node) {
      let joined = false;
      let left = false;
      let failure: unknown;
      node.join(via.url, { timeoutMs: 10_000 }).then(
        () => (joined = true),
        (err: unknown) => (failure = err),
      );
      await sched.runUntil(sched.now + 15_000, () => joined || failure !== undefined);
      if (!joined) report(`${n.url} could not join through ${via.url} after healing: ${String(failure)}`);
      else {
        await sched.runUntil(sched.now + 5000, () => node.appliedIndex >= final);
        if (node.appliedIndex < final) report(`${n.url} joined after healing but did not catch up: ${describe(node)}`);
        for (const [i, text] of via.sm!.state) {
          if (i <= final && n.sm!.state.get(i) !== text) {
            report(`${n.url} joined after healing but lacks "${text}" at ${i}`);
            break;
          }
        }
        node.leave().then(
          () => (left = true),
          (err: unknown) => (failure = err),
        );
        await sched.runUntil(sched.now + 10_000, () => left || failure !== undefined);
        if (!left) report(`${n.url} could not leave after healing: ${String(failure)}`);
        else trace(`t=${sched.now} ${n.url} joined, caught up to ${node.appliedIndex} and left`);
      }
    }
  }
  stats.committed = committed.size;
  stats.steps = sched.steps;
  for (const n of nodes) n.token.alive = false;
  return { seed, violations, stats };
}
