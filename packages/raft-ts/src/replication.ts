/**
 * What a node knows about replication, for readiness checks, status pages
 * and metrics: how far this node is behind its leader, and on a leader how
 * far each follower is behind it; plus latency histograms and counters of
 * the node's log fsyncs, commits, elections and snapshot transfers. See
 * {@link RaftNode.replication} and {@link RaftNode.stats}.
 */

/**
 * A latency histogram with cumulative buckets, as Prometheus exposes one:
 * `buckets` ascending by `le` (seconds), each count the observations `<= le`;
 * `count` and `sumSeconds` cover every observation (the `+Inf` bucket is
 * `count`).
 */
export interface HistogramSnapshot {
  readonly buckets: readonly { readonly le: number; readonly count: number }[];
  readonly count: number;
  readonly sumSeconds: number;
}

/** Upper bounds (seconds) of the buckets of raft-ts's latency histograms: 100 µs to 10 s. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Upper bounds (seconds) of the snapshot-transfer histogram: 10 ms to 10 min. */
export const TRANSFER_BUCKETS_SECONDS: readonly number[] = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600];

/** A latency histogram with fixed bucket bounds, kept in memory. @internal */
export class LatencyHistogram {
  readonly #bounds: readonly number[];
  readonly #counts: number[];
  #count = 0;
  #sum = 0;

  constructor(bounds: readonly number[] = LATENCY_BUCKETS_SECONDS) {
    this.#bounds = bounds;
    this.#counts = bounds.map(() => 0);
  }

  /** Records one observation of `seconds` (negative values count as 0). */
  observe(seconds: number): void {
    const s = Math.max(0, seconds);
    const i = this.#bounds.findIndex((le) => s <= le);
    if (i >= 0) this.#counts[i]!++;
    this.#count++;
    this.#sum += s;
  }

  /** The observations so far, with cumulative bucket counts. */
  snapshot(): HistogramSnapshot {
    let cumulative = 0;
    const buckets = this.#bounds.map((le, i) => ({ le, count: (cumulative += this.#counts[i]!) }));
    return { buckets, count: this.#count, sumSeconds: this.#sum };
  }
}

/** A snapshot being sent to a follower: bytes it holds so far and the snapshot's size. */
export interface SnapshotTransfer {
  /** Bytes of the snapshot the follower acknowledged so far. */
  sentBytes: number;
  /** Size of the snapshot in bytes. */
  totalBytes: number;
}

/** A leader's view of one follower, in {@link ReplicationStatus.followers}. */
export interface FollowerReplication {
  /** The follower's URL. */
  url: string;
  /** Highest index known to be in the follower's log (0 while unknown). */
  matchIndex: number;
  /** Entries the follower lacks of what the leader committed: `leader commit - matchIndex`, at least 0. */
  lagEntries: number;
  /**
   * How long the follower has been behind, in seconds: the time since the
   * leader committed the first entry the follower lacks (0 when it holds
   * every committed entry). Equivalently, the time since it was last caught
   * up with the leader's commit index.
   */
  lagSeconds: number;
  /** Milliseconds since the follower last answered this leader, `null` when it has not answered yet. */
  lastContactMs: number | null;
  /** The snapshot being sent to it, `null` when none is. */
  snapshot: SnapshotTransfer | null;
}

/**
 * How far this node is behind the leader, and on a leader how far each
 * follower is behind it (see {@link RaftNode.replication}). Times are
 * milliseconds of the node's clock unless named `Seconds`.
 */
export interface ReplicationStatus {
  /** What the node is doing (a `RaftState`: `leader`, `follower`, `candidate`, `learner` ...). */
  role: string;
  /** The current term. */
  term: number;
  /** Highest index this node knows committed. */
  commitIndex: number;
  /** Highest index this node applied to its state machine. */
  appliedIndex: number;
  /**
   * The leader's commit index: on a follower as last received from a leader
   * (AppendEntries' `leaderCommit`; 0 before any), on the leader its own.
   * A follower's own commit index can be far lower when its log lags.
   */
  leaderCommitIndex: number;
  /** Entries this node has yet to apply of what the leader committed: `leaderCommitIndex - appliedIndex`, at least 0. */
  lagEntries: number;
  /**
   * How long this node has been behind, in seconds: the time since it (a
   * follower: since it learned) the leader committed the first entry this
   * node has not applied; 0 when it applied everything it knows committed.
   */
  lagSeconds: number;
  /** Milliseconds since the last message from a leader; 0 on the leader; `null` when none ever came. */
  lastLeaderContactMs: number | null;
  /**
   * Leader: milliseconds since a majority of voters (itself included) was
   * last heard from (0 for a single voter); `null` elsewhere.
   */
  quorumContactMs: number | null;
  /** The node's base election timeout, milliseconds (for bounds such as "no leader contact for 3 election timeouts"). */
  electionTimeoutMs: number;
  /** Leader: one entry per follower (voters and learners), by URL; `[]` elsewhere. */
  followers: FollowerReplication[];
}

/**
 * Counters and latency histograms of a node since it was created (see
 * {@link RaftNode.stats}). Latencies are in seconds.
 */
export interface RaftStats {
  /**
   * Latency of the log's fsyncs: each write round of the log ends with one
   * fsync of the active segment (and of the directory when files were added
   * or removed). Empty with `sync: 'never'`.
   */
  logFsync: HistogramSnapshot;
  /** Leader: time from an entry's append (a proposal) to its commit on a majority, per appended batch. */
  commitLatency: HistogramSnapshot;
  /** Leader: time from the first to the last chunk of each snapshot sent to a follower that installed it. */
  snapshotSendDuration: HistogramSnapshot;
  /** Elections this node started (as candidate, pre-votes not counted). */
  electionsStarted: number;
  /** Times this node learned of a new leader (itself included). */
  leaderChanges: number;
  /** Snapshots this node sent to followers in full. */
  snapshotsSent: number;
  /** Bytes of snapshots this node sent in full to followers. */
  snapshotBytesSent: number;
}

/**
 * When a commit index was first known: samples of `(index, time)` as the
 * (leader's) commit index grows, so that "how long since index `i` was
 * committed" can be answered later. Bounded: beyond `capacity` samples the
 * oldest are dropped (the age of an index older than every sample is then the
 * age of the oldest sample: an underestimate). @internal
 */
export class CommitTimes {
  readonly #capacity: number;
  #indexes: number[] = [];
  #times: number[] = [];
  #head = 0;
  /** The highest index recorded (0 before any). */
  latest = 0;

  constructor(capacity = 4096) {
    this.#capacity = capacity;
  }

  /** The commit index is `index` at `now` (ignored unless it grew). */
  record(index: number, now: number): void {
    if (index <= this.latest) return;
    this.latest = index;
    this.#indexes.push(index);
    this.#times.push(now);
    if (this.#indexes.length - this.#head > this.#capacity) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#indexes.length) {
      this.#indexes = this.#indexes.slice(this.#head);
      this.#times = this.#times.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Milliseconds since an index above `index` was first known committed; 0 when none is. */
  behindMs(index: number, now: number): number {
    if (index >= this.latest) return 0;
    // The first sample with a larger index: binary search in the live part.
    let lo = this.#head;
    let hi = this.#indexes.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#indexes[mid]! > index) hi = mid;
      else lo = mid + 1;
    }
    return Math.max(0, now - this.#times[lo]!);
  }
}

/**
 * The batches a leader appended and is waiting to see committed, for the
 * commit latency: when the commit index reaches a batch's last index, its
 * latency is observed. Bounded: beyond `capacity` pending batches the oldest
 * are forgotten (not observed). @internal
 */
export class PendingCommits {
  readonly #capacity: number;
  #pending: { index: number; term: number; at: number }[] = [];
  #head = 0;

  constructor(capacity = 65536) {
    this.#capacity = capacity;
  }

  /** Entries up to `index` were appended in `term` at `now`. */
  appended(index: number, term: number, now: number): void {
    this.#pending.push({ index, term, at: now });
    if (this.#pending.length - this.#head > this.#capacity) this.#head++;
  }

  /**
   * The commit index reached `index` in `term` at `now`: observes the
   * latency (seconds) of every batch of that term up to it; batches of other
   * terms (appended in an earlier leadership) are dropped.
   */
  committed(index: number, term: number, now: number, observe: (seconds: number) => void): void {
    while (this.#head < this.#pending.length && this.#pending[this.#head]!.index <= index) {
      const p = this.#pending[this.#head++]!;
      if (p.term === term) observe((now - p.at) / 1000);
    }
    if (this.#head > 1024 && this.#head * 2 > this.#pending.length) {
      this.#pending = this.#pending.slice(this.#head);
      this.#head = 0;
    }
  }
}

/** The counters and histograms a node keeps (see {@link RaftStats}). @internal */
export class StatsRecorder {
  readonly logFsync = new LatencyHistogram();
  readonly commitLatency = new LatencyHistogram();
  readonly snapshotSendDuration = new LatencyHistogram(TRANSFER_BUCKETS_SECONDS);
  readonly pending = new PendingCommits();
  electionsStarted = 0;
  leaderChanges = 0;
  snapshotsSent = 0;
  snapshotBytesSent = 0;

  /** A snapshot of `bytes` was sent in full, in `seconds`. */
  snapshotSent(bytes: number, seconds: number): void {
    this.snapshotsSent++;
    this.snapshotBytesSent += bytes;
    this.snapshotSendDuration.observe(seconds);
  }

  /** The numbers as {@link RaftStats}; `logFsync` is the log's own histogram. */
  snapshot(logFsync: HistogramSnapshot | undefined): RaftStats {
    return {
      logFsync: logFsync ?? this.logFsync.snapshot(),
      commitLatency: this.commitLatency.snapshot(),
      snapshotSendDuration: this.snapshotSendDuration.snapshot(),
      electionsStarted: this.electionsStarted,
      leaderChanges: this.leaderChanges,
      snapshotsSent: this.snapshotsSent,
      snapshotBytesSent: this.snapshotBytesSent,
    };
  }
}

/** What {@link replicationStatus} reads of a follower's progress. @internal */
export interface FollowerView {
  match: number;
  /** Clock milliseconds of the last answer; meaningful only when `heard`. */
  lastContact: number;
  heard: boolean;
  snapshotting: boolean;
  snapshotSent: number;
  snapshotTotal: number;
}

/** Everything {@link replicationStatus} needs of a node. @internal */
export interface NodeView {
  role: string;
  leading: boolean;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  now: number;
  electionTimeoutMs: number;
  /** Clock milliseconds of the last message from a leader (-Infinity: never). */
  lastLeaderContact: number;
  /** Commit times: on a leader its own, on a follower as learned from leaders. */
  commitTimes: CommitTimes;
  voters: readonly string[];
  self: string;
  followers: ReadonlyMap<string, FollowerView>;
}

/** Computes a {@link ReplicationStatus} from a node's state. @internal */
export function replicationStatus(v: NodeView): ReplicationStatus {
  const leaderCommitIndex = v.leading ? v.commitIndex : v.commitTimes.latest;
  const followers: FollowerReplication[] = [];
  let quorumContactMs: number | null = null;
  if (v.leading) {
    for (const [url, p] of [...v.followers].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
      followers.push({
        url,
        matchIndex: p.match,
        lagEntries: Math.max(0, v.commitIndex - p.match),
        lagSeconds: v.commitTimes.behindMs(p.match, v.now) / 1000,
        lastContactMs: p.heard ? Math.max(0, v.now - p.lastContact) : null,
        snapshot: p.snapshotting && p.snapshotTotal > 0 ? { sentBytes: p.snapshotSent, totalBytes: p.snapshotTotal } : null,
      });
    }
    // The most recent contact that a majority of voters shares: sorted newest first, the majority-th.
    const contacts = v.voters.map((url) => {
      if (url === v.self) return v.now;
      const p = v.followers.get(url);
      return p && p.heard ? p.lastContact : -Infinity;
    });
    contacts.sort((a, b) => b - a);
    const quorum = contacts[Math.floor(v.voters.length / 2)];
    quorumContactMs = quorum === undefined ? 0 : quorum === -Infinity ? null : Math.max(0, v.now - quorum);
  }
  const lastLeaderContactMs = v.leading ? 0 : v.lastLeaderContact === -Infinity ? null : Math.max(0, v.now - v.lastLeaderContact);
  return {
    role: v.role,
    term: v.term,
    commitIndex: v.commitIndex,
    appliedIndex: v.appliedIndex,
    leaderCommitIndex,
    lagEntries: Math.max(0, leaderCommitIndex - v.appliedIndex),
    lagSeconds: v.commitTimes.behindMs(v.appliedIndex, v.now) / 1000,
    lastLeaderContactMs,
    quorumContactMs,
    electionTimeoutMs: v.electionTimeoutMs,
    followers,
  };
}
