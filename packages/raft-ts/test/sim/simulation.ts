import type { Clock } from '../../src/clock.js';
import { isRaftError } from '../../src/errors.js';
import { RaftNode } from '../../src/raft-node.js';
import type { StateMachine } from '../../src/state-machine.js';
import type { RpcHandler } from '../../src/transport.js';
import { EntryType, type LogEntry } from '../../src/types.js';
import { Prng } from './prng.js';
import { Scheduler } from './scheduler.js';
import { SimDisk, type DiskEvent, type SimFileSystem } from './sim-disk.js';
import { SimNetwork } from './sim-network.js';
import { SimStateMachine } from './sim-state-machine.js';

/** The faults and events the simulation injects, each with a weight (1 = the default rate, 0 = never). */
export const FAULT_KINDS = [
  'crash',
  'power-loss',
  'restart',
  'close',
  'partition',
  'one-way',
  'pause',
  'io-error',
  'bit-flip',
  'join',
  'leave',
  'remove',
  'transfer',
] as const;

/** One of {@link FAULT_KINDS}. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Probability of each kind per 5 ms step of the faulty phase at weight 1. */
const BASE_RATE: Record<FaultKind, number> = {
  crash: 0.0035,
  'power-loss': 0.0015,
  restart: 0.009,
  close: 0.002,
  partition: 0.004,
  'one-way': 0.003,
  pause: 0.002,
  'io-error': 0.002,
  'bit-flip': 0.0015,
  join: 0.003,
  leave: 0.004,
  remove: 0.001,
  transfer: 0.0085,
};

/** What a node runs on top of raft: its state machine, built on the node's disk. */
export interface SimApp {
  /** A name for reports. */
  name: string;
  /**
   * Opens the state machine of one incarnation of a node on `fs` (its whole
   * disk; raft-ts uses `/data/raft`). Rejects when the disk holds damage it
   * detects (the node then fails to start, as with a corrupt raft log).
   */
  open(node: { url: string; fs: SimFileSystem; clock: Clock; report: (m: string) => void; recordApplied: (index: number, text: string) => void }): Promise<SimAppNode>;
  /** The command entry for a client write of `text`. */
  encode(text: string): Uint8Array;
  /** The text of a command entry (as `encode` made it), for checks on the log. */
  decode(data: Uint8Array): string;
  /** File names (not paths) of the app's own files where a bit flip must be detected when the node opens. */
  checkedFiles?: RegExp;
  /** Whether the write `text` is kept in the state (default true); one that is not (a control message) is acknowledged but not looked for. */
  stored?(text: string): boolean;
}

/** One incarnation of a {@link SimApp} on a node. */
export interface SimAppNode {
  stateMachine: StateMachine;
  /** Every applied write in the state, index → text (after healing, for the convergence checks). */
  state(): Promise<Map<number, string>>;
  /**
   * Whether the state is expected to hold `text` at `index` (default true when the app stores it): false
   * once the app removed it on purpose (reclamation), alike on every node.
   */
  covers?(index: number, text: string): boolean;
  /** The error that failed the state machine for good (its disk failed), if it did: the node's process then exits. */
  failure?(): unknown;
  /** Releases what the state machine holds (called after raft closed; not after a crash). */
  close?(): Promise<void>;
}

/** Options of {@link runSimulation}. Durations are virtual milliseconds. */
export interface SimOptions {
  /** Length of the faulty phase. Default 6000. */
  durationMs?: number;
  /** Print progress. */
  trace?: (line: string) => void;
  /** Weight of each fault kind (default 1 each); 0 turns a kind off. */
  weights?: Partial<Record<FaultKind, number>>;
  /** The state machine every node runs (or a factory called once per run, for an app that keeps checks across nodes). Default: {@link SimStateMachine}, durable on the node's disk. */
  app?: SimApp | (() => SimApp);
}

/** Counters of what one seed did. */
export interface SimStats {
  acked: number;
  committed: number;
  elections: number;
  steps: number;
  snapshotsTaken: number;
  /** Log compactions behind a state machine's checkpoint (a marker, no state copied). */
  compactions: number;
  /** Full snapshots a leader that only had a marker took for a follower that needed one. */
  snapshotsOnDemand: number;
  snapshotsInstalled: number;
  transfers: number;
  joins: number;
  leaves: number;
  /** Injected faults and events, by kind (also the ones the disk caused: torn writes, holes, lost directory entries). */
  faults: Record<string, number>;
}

/** What one seed did and every violation the checkers found. */
export interface SimResult {
  seed: number;
  violations: string[];
  stats: SimStats;
}

interface SimNode {
  url: string;
  disk: SimDisk;
  token: { alive: boolean };
  node: RaftNode | undefined;
  app: SimAppNode | undefined;
  checked: number;
  /** Left the cluster, was replaced, or never made it in: no longer restarted. */
  gone: boolean;
  busy: boolean;
  /** A leave() is under way. */
  leaving: boolean;
  /** The operator's removal of this node is under way. */
  removing: boolean;
  /** The voters of the configuration it knew when last up. */
  lastVoters: string[];
  /** Where it joined through (it joins again there when it restarts without a cluster). */
  joinTargets?: string | string[];
  /** When the disk of the running incarnation returned an I/O error: the node must stop. */
  diskFailedAt: number | undefined;
  /** When an I/O error hit one of raft's own files: from then on the node must not answer a peer with success. */
  raftDiskFailedAt: number | undefined;
  /** A bit flip in durable data the next open must detect. */
  flipped: { path: string; offset: number } | undefined;
}

const RAFT_DIR = '/data/raft';
const CHECKED_RAFT_FILES = /^(log-\d{20}\.seg|meta)$/;

/** A node's state in one line, for violation reports. */
function describe(node: RaftNode): string {
  const c = node.config();
  return `${node.url}=${node.state} term ${node.term} last ${node.lastIndex} commit ${node.commitIndex} voters [${c.voters.join(',')}] learners [${c.learners.join(',')}]`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** raft-ts's own app: {@link SimStateMachine}, checkpointed on the node's disk like the broker (odd nodes compact behind its checkpoints). */
export const textApp: SimApp = {
  name: 'text',
  async open({ url, fs, report, recordApplied }) {
    let k = 0;
    // Odd-numbered nodes compact their log behind the machine's checkpoints (markers, full snapshots on demand);
    // even ones copy the state into every snapshot: every cluster mixes both, leader and follower alike.
    const compactBehindCheckpoints = Number(url.replace(/\D/g, '')) % 2 === 1;
    const sm = new SimStateMachine(url, recordApplied, report, { fs, dir: '/data/sm', every: () => ++k % 3 === 0 }, compactBehindCheckpoints);
    await sm.load();
    return { stateMachine: sm, state: async () => new Map(sm.state) };
  },
  encode: (text) => encoder.encode(text),
  decode: (data) => decoder.decode(data),
};

function entryAt(node: RaftNode, index: number): Promise<LogEntry | undefined> {
  return node.readLogEntry(index);
}

/**
 * Runs a whole cluster in one process for one seed: virtual clock (each
 * node's running at its own rate), seeded PRNG, a network that drops, delays,
 * duplicates, reorders, partitions (both ways and one way) and stalls paused
 * nodes, and disks that lose unsynced writes on a crash (torn, with holes),
 * lose directory entries not fsynced, fail writes and fsyncs with EIO or
 * ENOSPC and flip bits in durable data. Nodes crash (alone or together),
 * restart, close gracefully, pause, join, leave and are removed while
 * clients write and leaders hand over.
 *
 * Checkers: at most one leader per term; every acknowledged entry is in
 * every later leader's log at its index; every node applies the same entry
 * at each index, and never one its log does not hold; no committed entry
 * changes; a node whose disk failed stops and never answers a peer again; a
 * bit flip in durable data is reported at the next open, and a damaged file
 * is reported only when damage was injected; after healing the cluster
 * commits again, all nodes converge to the same state holding every
 * acknowledged write at its index, and a new node joins through any member,
 * catches up and leaves.
 */
export async function runSimulation(seed: number, options: SimOptions = {}): Promise<SimResult> {
  const rng = new Prng(seed);
  const sched = new Scheduler();
  const net = new SimNetwork(sched, rng);
  const app = typeof options.app === 'function' ? options.app() : (options.app ?? textApp);
  const violations: string[] = [];
  const report = (m: string): void => {
    if (violations.length < 20) violations.push(`t=${sched.now} ${m}`);
  };
  const trace = options.trace ?? (() => undefined);
  const weight = (k: FaultKind): number => options.weights?.[k] ?? 1;
  const global = new Map<number, string>();
  const committed = new Map<number, { term: number; type: number; text: string }>();
  const leaders = new Map<number, string>();
  const acked: { index: number; text: string }[] = [];
  const faults: Record<string, number> = {};
  const bump = (kind: string): void => {
    faults[kind] = (faults[kind] ?? 0) + 1;
  };
  const stats: SimStats = { acked: 0, committed: 0, elections: 0, steps: 0, snapshotsTaken: 0, compactions: 0, snapshotsOnDemand: 0, snapshotsInstalled: 0, transfers: 0, joins: 0, leaves: 0, faults };
  const nodes: SimNode[] = [];
  const snapshotThreshold = rng.int(20, 80);
  let opId = 0;

  /** Checks what a state machine applies against what any node applied at that index. */
  const recordApplied = (url: string) => (index: number, text: string): void => {
    const seen = global.get(index);
    if (seen === undefined) global.set(index, text);
    else if (seen !== text) report(`${url} applied "${text}" at ${index}, another node applied "${seen}"`);
  };

  const loggerOf = (n: SimNode) => {
    const count = (message: string): void => {
      if (message === 'raft: snapshot taken') stats.snapshotsTaken++;
      if (message === 'raft: log compacted behind the state machine checkpoint') stats.compactions++;
      if (message === 'raft: a follower needs a snapshot; taking one') stats.snapshotsOnDemand++;
      if (message === 'raft: snapshot installed') stats.snapshotsInstalled++;
      if (message === 'raft: leadership transfer to this node') stats.transfers++;
    };
    return {
      debug: count,
      info: count,
      warn: count,
      error: (m: string, f?: Record<string, unknown>) => {
        // A node whose disk failed says so; anything else logged as an error is a violation.
        if (n.diskFailedAt === undefined) report(`${n.url} logged error: ${m} ${String(f?.err)}`);
      },
    };
  };

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
    const last = node.lastIndex;
    const check = [...acked];
    void (async () => {
      for (const a of check) {
        if (a.index > last) {
          report(`leader ${n.url} (term ${term}) lacks acknowledged entry ${a.index}`);
          continue;
        }
        const e = await entryAt(node, a.index).catch(() => undefined);
        if (e === undefined) continue; // compacted behind a snapshot
        if (e.type !== EntryType.Command || app.decode(e.data) !== app.decode(app.encode(a.text))) {
          report(`leader ${n.url} (term ${term}) has another entry at acknowledged index ${a.index}`);
        }
      }
    })();
  };

  /** The node's RPC handler as the network sees it: after its disk failed, it must never answer success. */
  const guarded = (n: SimNode, node: RaftNode): RpcHandler => {
    // Only requests that arrive once raft's disk has failed count: one already under way may finish on a log that is fine.
    // (A failure of the app's own files stops the node through the supervisor, within a bound, see superviseFailures.)
    const check = <T>(what: string, p: Promise<T>, ok: (res: T) => boolean): Promise<T> => {
      const failedBefore = n.raftDiskFailedAt !== undefined;
      return p.then((res) => {
        if (failedBefore && n.node === node && ok(res)) report(`${n.url} answered ${what} with success after its disk failed at t=${n.raftDiskFailedAt}`);
        return res;
      });
    };
    return {
      handleRequestVote: (r) => check('RequestVote', node.handleRequestVote(r), (res) => res.voteGranted),
      handleAppendEntries: (r) => check('AppendEntries', node.handleAppendEntries(r), (res) => res.success && r.entries.length > 0),
      handleInstallSnapshot: (r) => node.handleInstallSnapshot(r),
      handleTimeoutNow: (r) => node.handleTimeoutNow(r),
      handleJoin: (r) => node.handleJoin(r),
      handleLeave: (r) => node.handleLeave(r),
    };
  };

  const start = async (n: SimNode): Promise<void> => {
    const token = { alive: true };
    n.token = token;
    n.diskFailedAt = undefined;
    n.raftDiskFailedAt = undefined;
    n.disk.onEvent = (e: DiskEvent) => {
      bump(e.kind === 'io-error' ? `io-error ${e.code}` : e.kind);
      if (e.kind === 'io-error' && n.token === token) {
        n.diskFailedAt ??= sched.now;
        if (e.path.startsWith(`${RAFT_DIR}/`)) n.raftDiskFailedAt ??= sched.now;
      }
      if (e.kind !== 'lost-dir-entry') trace(`t=${sched.now} ${n.url} disk: ${e.kind}${e.code ? ` ${e.code}` : ''} ${e.path}${e.offset === undefined ? '' : ` at ${e.offset}`}`);
    };
    // Each incarnation's clock runs at its own rate (timers included): 0.8x to 1.25x.
    const rate = 0.8 + rng.next() * 0.45;
    const base = sched.clock(() => token.alive);
    const clock: Clock = {
      now: () => Math.floor(sched.now * rate),
      setTimeout: (fn, ms) => base.setTimeout(fn, ms / rate),
      clearTimeout: (h) => base.clearTimeout(h),
    };
    const fs = n.disk.mount();
    let appNode: SimAppNode;
    const flipped = n.flipped;
    n.flipped = undefined;
    try {
      appNode = await drive(app.open({ url: n.url, fs, clock, report, recordApplied: recordApplied(n.url) }));
    } catch (err) {
      openFailed(n, flipped, err, 'its state machine');
      return;
    }
    const node = new RaftNode({
      dir: RAFT_DIR,
      url: n.url,
      stateMachine: appNode.stateMachine,
      transport: net.transport(n.url, () => token.alive),
      clock,
      random: () => rng.next(),
      fs,
      electionTimeoutMs: 100,
      heartbeatIntervalMs: 20,
      snapshotThreshold,
      trailingEntries: 5,
      maxAppendEntries: 16,
      maxInflight: 4,
      snapshotChunkBytes: 256,
      segmentBytes: 2048,
      logger: loggerOf(n),
    });
    node.onLeaderChange(onLeader(n, node));
    n.node = node;
    n.app = appNode;
    n.checked = 0;
    try {
      await drive(node.open());
    } catch (err) {
      n.node = undefined;
      n.app = undefined;
      openFailed(n, flipped, err, 'raft');
      return;
    }
    if (flipped && n.disk.exists(flipped.path) && n.disk.size(flipped.path) > flipped.offset && (CHECKED_RAFT_FILES.test(basename(flipped.path)) || app.checkedFiles?.test(basename(flipped.path)))) {
      report(`${n.url} opened although a bit was flipped in ${flipped.path} at ${flipped.offset}`);
    }
    const applied = appNode.stateMachine.appliedIndex();
    if (applied > Math.max(node.lastIndex, node.snapshotIndex)) report(`${n.url} opened with its state machine at ${applied}, beyond its log (${node.lastIndex}) and snapshot (${node.snapshotIndex})`);
    net.register(n.url, guarded(n, node));
  };

  const isUp = (n: SimNode): boolean => n.node !== undefined;
  /** Like the server's --join on every start: a node that crashed before it stored its cluster joins again. */
  const restart = async (n: SimNode): Promise<void> => {
    if (n.gone || isUp(n)) return; // replaced, or started meanwhile (a loop over members may hold a stale list)
    n.busy = true;
    await start(n);
    n.busy = false;
    if (n.node?.state === 'uninitialized' && n.joinTargets !== undefined) runJoin(n, n.joinTargets);
  };

  /** A node that cannot open: expected after a bit flip (then the operator replaces it), a violation otherwise. */
  const openFailed = (n: SimNode, flipped: SimNode['flipped'], err: unknown, what: string): void => {
    if (n.diskFailedAt !== undefined) {
      // The disk failed while the node opened: it exits like any node whose disk failed, and is restarted later.
      bump('open failed on disk error');
      n.flipped ??= flipped;
      n.token.alive = false;
      return;
    }
    // Every package names damage with a code of its own: CORRUPT (raft-ts), CORRUPT_SEGMENT (@msg/segments), CORRUPT_META, DATA_LOST (@msg/broker).
    const code = (err as { code?: unknown }).code;
    const corrupt = isRaftError(err, 'CORRUPT') || (typeof code === 'string' && /^(CORRUPT|CORRUPT_[A-Z]+|DATA_LOST)$/.test(code));
    if (!flipped || !corrupt) {
      report(`${n.url} failed to open (${what}): ${String(err)}${flipped ? ` (a bit was flipped in ${flipped.path} at ${flipped.offset})` : ''}`);
      return;
    }
    bump('bit-flip detected');
    trace(`t=${sched.now} ${n.url} refuses to open: ${String(err)}; the operator replaces it`);
    n.gone = true;
    n.token.alive = false;
    replaceLater(n);
  };

  /** The operator removes a node whose disk is damaged from the cluster (retrying through the leader). */
  const replaceLater = (n: SimNode): void => {
    const attempt = (left: number): void => {
      if (left === 0) return;
      const leader = up().find((x) => x.node!.isLeader());
      if (!leader || !leader.node!.urls().includes(n.url)) {
        if (leader || left > 1) sched.schedule(50, () => attempt(left - 1));
        return;
      }
      leader.node!.removeMember(n.url).then(
        () => trace(`t=${sched.now} operator removed ${n.url}`),
        () => sched.schedule(50, () => attempt(left - 1)),
      );
    };
    attempt(400);
  };

  const crash = (n: SimNode, why = 'crash'): void => {
    trace(`t=${sched.now} ${why} ${n.url}`);
    n.lastVoters = n.node?.config().voters ?? n.lastVoters;
    n.token.alive = false;
    net.register(n.url, undefined);
    net.resume(n.url);
    n.disk.crash();
    n.node = undefined;
    n.app = undefined;
    // What the dead process was doing (a join, a leave, a close) never finishes.
    n.busy = false;
    n.leaving = false;
  };

  const make = (i: number): SimNode => {
    const n: SimNode = {
      url: `http://n${i}`,
      disk: new SimDisk(() => rng.next(), () => new Promise((resolve) => sched.schedule(rng.int(0, 3), resolve)), () => sched.now),
      token: { alive: false },
      node: undefined,
      app: undefined,
      checked: 0,
      gone: false,
      busy: false,
      leaving: false,
      removing: false,
      lastVoters: [],
      diskFailedAt: undefined,
      raftDiskFailedAt: undefined,
      flipped: undefined,
    };
    nodes.push(n);
    return n;
  };

  const up = (): SimNode[] => nodes.filter((n) => n.node !== undefined && !n.gone);
  /**
   * Whether the operator may take one more voter away (`leaving`: a leave or removal, the configuration
   * shrinks; else a corrupted disk, it does not) and every configuration a member holds keeps a majority of
   * healthy voters (not gone, corrupt, leaving or being removed) and at least 3 voters: the simulation
   * checks raft, not an operator who destroys the majority.
   */
  const mayLoseVoter = (leaving: boolean): boolean => {
    const byUrl = new Map(nodes.map((n) => [n.url, n]));
    // Every configuration a node knows or knew when last up, a removed one's too (it may be the newest).
    const configs = nodes.map((x) => (x.node ? x.node.config().voters : x.lastVoters)).filter((voters) => voters.length > 0);
    if (configs.length === 0) return false;
    return configs.every((voters) => {
      const healthy = voters.filter((u) => {
        const n = byUrl.get(u);
        return n !== undefined && !n.gone && n.flipped === undefined && !n.leaving && !n.removing;
      }).length;
      const size = leaving ? voters.length - 1 : voters.length;
      return size >= 3 && healthy - 1 >= Math.floor(size / 2) + 1;
    });
  };
  const members = (): SimNode[] => nodes.filter((n) => !n.gone);

  const checkCommitted = async (): Promise<void> => {
    for (const n of up()) {
      const node = n.node!;
      const upTo = node.commitIndex;
      for (let i = Math.max(n.checked + 1, 1); i <= upTo; i++) {
        const e = await entryAt(node, i).catch(() => undefined);
        if (!e) continue;
        const text = e.type === EntryType.Command ? app.decode(e.data) : decoder.decode(e.data);
        const seen = committed.get(i);
        if (!seen) committed.set(i, { term: e.term, type: e.type, text });
        else if (seen.term !== e.term || seen.type !== e.type || seen.text !== text) {
          report(`committed entry ${i} changed on ${n.url}: term ${seen.term}→${e.term}`);
        }
      }
      n.checked = Math.max(n.checked, upTo);
      if (node.state === 'failed' && n.diskFailedAt === undefined) report(`${n.url} failed: ${String(node.failure)}`);
    }
  };

  /** The supervisor: a node that stopped because its disk failed exits; it is restarted later on the same disk. */
  const superviseFailures = (): void => {
    for (const n of up()) {
      if (n.diskFailedAt === undefined) continue;
      if (n.node!.state === 'failed' || n.node!.state === 'closed' || n.app?.failure?.() !== undefined) {
        bump('stopped after disk error');
        crash(n, 'exit after disk error');
      } else if (sched.now - n.diskFailedAt > 2000) {
        report(`${n.url} still ${n.node!.state} ${sched.now - n.diskFailedAt} ms after its disk failed`);
      }
    }
  };

  const propose = (): void => {
    const candidates = up().filter((n) => n.node!.isLeader() || n.node!.state === 'follower');
    if (candidates.length === 0) return;
    const n = rng.pick(candidates);
    const batch = rng.chance(0.2) ? rng.int(2, 4) : 1;
    const texts = Array.from({ length: batch }, () => `c${++opId}`);
    n.node!.applyBatch(texts.map((t) => app.encode(t))).then(
      (index) => {
        stats.acked += texts.length;
        texts.forEach((text, k) => acked.push({ index: index + k, text }));
        const seen = global.get(index);
        if (seen !== texts[0] && (app.stored?.(texts[0]!) ?? true)) report(`apply(${texts[0]}) resolved with ${index} where "${seen}" was applied`);
      },
      () => undefined,
    );
  };

  /** Joins `n` (started) through `targets`; one that cannot is given up (gone) if it never learned its cluster. */
  const runJoin = (n: SimNode, targets: string | string[]): void => {
    const node = n.node;
    if (!node) {
      n.busy = false;
      n.gone = true;
      return;
    }
    n.busy = true;
    n.joinTargets = targets;
    node.join(targets, { timeoutMs: 5000 }).then(
      () => {
        stats.joins++;
        n.busy = false;
      },
      () => {
        n.busy = false;
        if (n.node === node && node.state === 'uninitialized') {
          n.gone = true;
          n.token.alive = false;
          net.register(n.url, undefined);
        }
      },
    );
  };

  const join = (via: SimNode): void => {
    const n = make(nodes.length + 1);
    n.busy = true;
    void (async () => {
      await start(n);
      trace(`t=${sched.now} ${n.url} joins via ${via.url}`);
      runJoin(n, rng.chance(0.5) ? via.url : [via.url, ...up().filter((x) => x !== n && x !== via).map((x) => x.url)]);
    })();
  };

  // Bootstrap: n1 initializes, n2 and n3 join.
  const first = make(1);
  await start(first);
  await drive(first.node!.initialize());
  for (let i = 2; i <= 3; i++) {
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
  const events: [FaultKind, () => boolean][] = [
    [
      'power-loss',
      () => {
        // Correlated failure: a power loss takes down several nodes at once.
        const victims = up().filter((x) => !x.busy && x.node!.state !== 'uninitialized' && rng.chance(0.7));
        for (const n of victims) crash(n, 'power loss');
        return victims.length > 0;
      },
    ],
    [
      'crash',
      () => {
        const n = rng.pick(up().filter((x) => !x.busy && x.node!.state !== 'uninitialized'));
        if (n) crash(n);
        return n !== undefined;
      },
    ],
    [
      'restart',
      () => {
        const n = rng.pick(members().filter((x) => x.node === undefined && !x.busy));
        if (!n) return false;
        trace(`t=${sched.now} restart ${n.url}`);
        void restart(n);
        return true;
      },
    ],
    [
      'close',
      () => {
        const n = rng.pick(up().filter((x) => !x.busy));
        if (!n) return false;
        const node = n.node!;
        n.busy = true;
        trace(`t=${sched.now} close ${n.url}`);
        node.close().then(
          async () => {
            await n.app?.close?.();
            n.busy = false;
            if (n.node === node) {
              n.lastVoters = node.config().voters;
              n.token.alive = false;
              net.register(n.url, undefined);
              n.node = undefined;
              n.app = undefined;
            }
          },
          (err: unknown) => {
            n.busy = false;
            if (n.diskFailedAt === undefined) report(`close of ${n.url} failed: ${String(err)}`);
          },
        );
        return true;
      },
    ],
    [
      'partition',
      () => {
        if (healAt !== Infinity) return false;
        const groups = new Map<string, number>();
        for (const n of members()) groups.set(n.url, rng.int(0, 1));
        net.partition(groups);
        healAt = sched.now + rng.int(100, 1500);
        trace(`t=${sched.now} partition ${[...groups].map(([u, g]) => `${u}:${g}`).join(' ')}`);
        return true;
      },
    ],
    [
      'one-way',
      () => {
        const all = members();
        if (all.length < 2) return false;
        const a = rng.pick(all);
        const b = rng.pick(all.filter((x) => x !== a));
        net.block(a.url, b.url);
        if (healAt === Infinity) healAt = sched.now + rng.int(100, 1500);
        trace(`t=${sched.now} one-way cut ${a.url} -> ${b.url}`);
        return true;
      },
    ],
    [
      'pause',
      () => {
        const n = rng.pick(up().filter((x) => !net.paused(x.url)));
        if (!n) return false;
        const ms = rng.int(50, 800);
        net.pause(n.url);
        trace(`t=${sched.now} pause ${n.url} for ${ms} ms`);
        const token = n.token;
        sched.schedule(ms, () => {
          if (n.token === token) net.resume(n.url);
        });
        return true;
      },
    ],
    [
      'io-error',
      () => {
        const n = rng.pick(up().filter((x) => x.node!.state !== 'uninitialized'));
        if (!n) return false;
        const op = rng.chance(0.5) ? 'append' : 'sync';
        const code = rng.chance(0.5) ? 'EIO' : 'ENOSPC';
        n.disk.arm({ op, code });
        trace(`t=${sched.now} ${n.url}: the next ${op} fails with ${code}`);
        return true;
      },
    ],
    [
      'bit-flip',
      () => {
        // Bit rot while the node is down; at most one node per run, so a majority stays intact.
        if (corruptions >= 1 || !mayLoseVoter(false)) return false;
        const n = rng.pick(members().filter((x) => x.node === undefined && !x.busy && x.flipped === undefined));
        if (!n) return false;
        const pattern = app.checkedFiles ? new RegExp(`${CHECKED_RAFT_FILES.source}|${app.checkedFiles.source}`) : CHECKED_RAFT_FILES;
        const at = n.disk.flip(pattern);
        if (!at) return false;
        corruptions++;
        n.flipped = at;
        trace(`t=${sched.now} bit flip on ${n.url}: ${at.path} at ${at.offset}`);
        return true;
      },
    ],
    [
      'join',
      () => {
        if (members().length >= 6 || nodes.filter((n) => n.busy && n.node?.state === 'uninitialized').length >= 2) return false;
        const via = rng.pick(up());
        if (!via) return false;
        join(via);
        return true;
      },
    ],
    [
      'leave',
      () => {
        // A voter (the leader too) leaves, possibly while joins and other leaves are under way.
        if (!mayLoseVoter(true) || nodes.filter((n) => n.leaving).length >= 2) return false;
        const n = rng.pick(up().filter((x) => !x.busy && (x.node!.state === 'follower' || x.node!.state === 'leader')));
        if (!n) return false;
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
        return true;
      },
    ],
    [
      'remove',
      () => {
        // The operator removes another member through the leader.
        const leader = up().find((x) => x.node!.isLeader());
        if (!leader || !mayLoseVoter(true)) return false;
        const victim = rng.pick(members().filter((x) => x !== leader && !x.busy && leader.node!.urls().includes(x.url)));
        if (!victim) return false;
        victim.busy = true;
        victim.removing = true;
        trace(`t=${sched.now} operator removes ${victim.url} through ${leader.url}`);
        leader.node!.removeMember(victim.url).then(
          () => {
            victim.gone = true;
            victim.busy = false;
            victim.removing = false;
            if (victim.node) {
              victim.token.alive = false;
              net.register(victim.url, undefined);
            }
          },
          () => {
            victim.busy = false;
            victim.removing = false;
          },
        );
        return true;
      },
    ],
    [
      'transfer',
      () => {
        // The leader hands over on request (to a chosen voter or the most up-to-date one).
        const leader = up().find((x) => x.node!.isLeader());
        if (!leader) return false;
        const voters = leader.node!.config().voters.filter((v) => v !== leader.url);
        const to = rng.chance(0.5) && voters.length > 0 ? rng.pick(voters) : undefined;
        trace(`t=${sched.now} ${leader.url} transfers leadership to ${to ?? 'the most up-to-date voter'}`);
        leader.node!.transferLeadership(to).catch(() => undefined);
        return true;
      },
    ],
  ];
  let corruptions = 0;
  net.faults = { drop: rng.next() * 0.1, duplicate: rng.next() * 0.05, minDelay: 1, maxDelay: rng.int(3, 30) };
  const end = sched.now + (options.durationMs ?? 6000);
  let healAt = Infinity;
  while (sched.now < end && violations.length === 0) {
    await sched.runUntil(sched.now + 5);
    await checkCommitted();
    superviseFailures();
    for (let k = rng.int(0, 3); k > 0; k--) propose();
    if (sched.now >= healAt) {
      net.heal();
      healAt = Infinity;
    }
    let r = rng.next();
    for (const [kind, act] of events) {
      const p = BASE_RATE[kind] * weight(kind);
      if (r < p) {
        // The disk counts the I/O errors and bit flips it injects.
        if (act() && kind !== 'io-error' && kind !== 'bit-flip') bump(kind);
        break;
      }
      r -= p;
    }
  }

  // Healing phase: no faults, every member back up; the cluster must commit and converge.
  net.heal();
  for (const n of nodes) {
    net.resume(n.url);
    n.disk.disarm();
  }
  net.faults = { drop: 0, duplicate: 0, minDelay: 1, maxDelay: 5 };
  await sched.runUntil(sched.now + 1000);
  superviseFailures();
  for (const n of members()) if (n.node === undefined && !n.busy) await restart(n);
  await sched.runUntil(sched.now + 2000);
  superviseFailures();
  for (const n of members()) if (n.node === undefined && !n.busy) await restart(n);
  await checkCommitted();
  let final = -1;
  for (let attempt = 0; attempt < 40 && final < 0 && violations.length === 0; attempt++) {
    const leader = up().find((n) => n.node!.isLeader());
    if (leader) {
      leader.node!.apply(app.encode('final')).then(
        (i) => (final = i),
        () => undefined,
      );
    }
    await sched.runUntil(sched.now + 300, () => final >= 0);
  }
  if (final < 0 && violations.length === 0) report(`no leader could commit after healing (${up().map((n) => describe(n.node!)).join('; ')})`);
  // Pending joins, leaves, removals and closes settle first (a join through a member that left fails: that node is gone).
  await sched.runUntil(sched.now + 10_000, () => !nodes.some((n) => n.busy));
  const finalLeader = up().find((n) => n.node!.isLeader());
  const config = finalLeader ? finalLeader.node!.urls() : [];
  const live = up().filter((n) => config.includes(n.url));
  await sched.runUntil(sched.now + 5000, () => live.every((n) => n.node!.appliedIndex >= final));
  await checkCommitted();
  if (final >= 0) {
    for (const n of live) {
      if (n.node!.appliedIndex < final) report(`${n.url} did not catch up: applied ${n.node!.appliedIndex} < ${final} (state ${n.node!.state})`);
    }
    const states = new Map<SimNode, Map<number, string>>();
    for (const n of live) states.set(n, await drive(n.app!.state()));
    const ref = live[0]!;
    const refState = states.get(ref)!;
    const covers = (n: SimNode, i: number, text: string): boolean => (app.stored?.(text) ?? true) && (n.app!.covers?.(i, text) ?? true);
    for (const n of live) {
      const state = states.get(n)!;
      for (const [i, text] of refState) {
        if (i <= final && covers(n, i, text) && state.get(i) !== text) {
          report(`${n.url} lacks "${text}" at ${i} that ${ref.url} applied`);
          break;
        }
      }
      for (const [i, text] of state) {
        if (i <= final && covers(ref, i, text) && refState.get(i) !== text) {
          report(`${n.url} holds "${text}" at ${i} that ${ref.url} does not`);
          break;
        }
      }
    }
    // Every acknowledged write is in every node's state exactly once, at its acknowledged index.
    for (const a of acked) {
      if (!(app.stored?.(a.text) ?? true)) continue;
      if (global.get(a.index) !== a.text) report(`acknowledged "${a.text}" at ${a.index} is not what was applied ("${global.get(a.index)}")`);
      for (const n of live) {
        if (covers(n, a.index, a.text) && states.get(n)!.get(a.index) !== a.text) {
          report(`${n.url} does not hold acknowledged "${a.text}" at ${a.index}`);
          break;
        }
      }
    }
    for (const n of live) {
      const seen = new Set<string>();
      for (const text of states.get(n)!.values()) {
        if (seen.has(text)) report(`${n.url} holds "${text}" twice`);
        seen.add(text);
      }
    }
  }
  // Membership works again after healing: a new node joins through any member, catches up, then leaves.
  if (final >= 0 && violations.length === 0 && live.length > 0) {
    const via = rng.pick(live);
    const n = make(nodes.length + 1);
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
        const mine = await drive(n.app!.state());
        for (const [i, text] of await drive(via.app!.state())) {
          if (i <= final && (n.app!.covers?.(i, text) ?? true) && mine.get(i) !== text) {
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

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
