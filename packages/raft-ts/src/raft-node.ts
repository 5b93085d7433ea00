import { joinPath } from './bytes.js';
import { silentLogger, systemClock, type Clock, type Logger } from './clock.js';
import { ConfigHistory, decodeConfig, encodeConfig, members } from './config-history.js';
import { RaftError, isRaftError } from './errors.js';
import { NodeFileSystem, type FileSystem } from './file-system.js';
import { LogStore } from './log-store.js';
import { MetaStore, type Meta } from './meta-store.js';
import { Progress } from './progress.js';
import { CommitTimes, StatsRecorder, replicationStatus, type RaftStats, type ReplicationStatus } from './replication.js';
import { SnapshotReceiver } from './snapshot-receiver.js';
import { SnapshotStore, snapshotFileName, type SnapshotMeta, type SnapshotWriter } from './snapshot-store.js';
import type { StateMachine } from './state-machine.js';
import type { RpcHandler, Transport } from './transport.js';
import {
  EntryType,
  type AppendEntriesRequest,
  type AppendEntriesResponse,
  type ClusterConfig,
  type InstallSnapshotRequest,
  type InstallSnapshotResponse,
  type JoinRequest,
  type JoinResponse,
  type LeaveRequest,
  type LeaveResponse,
  type LogEntry,
  type RequestVoteRequest,
  type RequestVoteResponse,
  type TimeoutNowRequest,
  type TimeoutNowResponse,
} from './types.js';
import { check } from './validate.js';

/**
 * What a node is doing: `uninitialized` (no cluster yet: call `initialize()`
 * or `join()`), `follower`, `candidate`, `leader`, `learner` (a non-voting
 * member catching up), `removed` (no longer a member), `failed` (storage or
 * the state machine failed; only `close()` remains), `closed`.
 */
export type RaftState =
  | 'uninitialized'
  | 'follower'
  | 'candidate'
  | 'leader'
  | 'learner'
  | 'removed'
  | 'failed'
  | 'closed';

/** Options of {@link RaftNode}. Durations are in milliseconds. */
export interface RaftNodeOptions {
  /** Directory of the node's files (created when missing). */
  dir: string;
  /** This node's URL: its identity in the cluster and where peers reach it. */
  url: string;
  /** The replicated state machine. */
  stateMachine: StateMachine;
  /**
   * How the node reaches its peers: `HttpTransport` (exported by this package) in production, the
   * simulation's network in tests. Required: the core does not pick (or import) a transport. The node
   * never closes it; its creator does, after `close()`.
   */
  transport: Transport;
  /** Time source and timers. Default: the real clock. */
  clock?: Clock;
  /** Uniform random numbers in [0, 1), used for election timeouts and cluster ids. Default `Math.random`. */
  random?: () => number;
  /** File system. Default: `node:fs` ({@link NodeFileSystem}). */
  fs?: FileSystem;
  /** Base election timeout; each wait is drawn uniformly from [t, 2t). Default 1000. */
  electionTimeoutMs?: number;
  /** Interval of the leader's heartbeats. Default electionTimeoutMs / 10. */
  heartbeatIntervalMs?: number;
  /** Take a snapshot once this many entries were applied since the last one. Default 16384. */
  snapshotThreshold?: number;
  /**
   * Take a snapshot also once the data of the entries applied since the last one reaches this many
   * bytes, so that large entries do not pile up in the log. Default 256 MiB.
   */
  snapshotThresholdBytes?: number;
  /** Entries kept in the log behind a snapshot, so slightly lagging followers need no snapshot. Default 1024. */
  trailingEntries?: number;
  /** Most entries in one AppendEntries request. Default 1024. */
  maxAppendEntries?: number;
  /** About the most entry bytes in one AppendEntries request. Default 1 MiB. */
  maxAppendBytes?: number;
  /** Most AppendEntries requests in flight to one follower (pipelining). Default 8. */
  maxInflight?: number;
  /** Bytes per InstallSnapshot chunk. Default 1 MiB. */
  snapshotChunkBytes?: number;
  /** Size at which a log segment file is closed and a new one begun, in bytes. Default 64 MiB. */
  segmentBytes?: number;
  /**
   * Most bytes of recent entry data the log keeps in memory (followers and the apply loop read the tail);
   * older entries are read from disk. Entries not yet written and config entries are held besides. Default 64 MiB.
   */
  logCacheBytes?: number;
  /**
   * `'always'` (default): fsync the log before an entry counts toward commit and
   * the term/vote before any answer. `'never'`: no fsync at all, UNSAFE: a machine
   * crash can lose acknowledged entries and break Raft's guarantees. For tests and benchmarks only.
   */
  sync?: 'always' | 'never';
  /** Where the node reports. Default: silent. */
  logger?: Logger;
}

/** Called when the known leader changes: its URL (or `undefined` while unknown) and the term. */
export type LeaderChangeListener = (leader: string | undefined, term: number) => void;

/** One value of {@link RaftNode.leaderChanges}: the known leader (`undefined` while unknown) and the term. */
export interface LeaderChange {
  leader: string | undefined;
  term: number;
}

/**
 * One value of {@link RaftNode.stateChanges}: what the node is doing
 * ({@link RaftState}: its role, or `removed` once its configuration no longer
 * holds it), the leader it knows (`undefined` while unknown) and the term.
 * `failed` carries the error that stopped the node (its storage, a corrupt
 * log, or the state machine's throw); it is the last value.
 */
export type StateChange =
  | { readonly state: Exclude<RaftState, 'failed' | 'closed'>; readonly leader: string | undefined; readonly term: number }
  | { readonly state: 'failed'; readonly leader: string | undefined; readonly term: number; readonly failure: unknown };

interface Waiter {
  index: number;
  term: number;
  result: number;
  resolve: (index: number) => void;
  reject: (err: unknown) => void;
}

/**
 * One Raft node: durable log and term, leader election with pre-vote,
 * pipelined and batched replication, snapshots, single-server membership
 * changes and leadership transfer. It is the {@link RpcHandler} a transport's
 * server side calls. The constructor does no I/O: call {@link RaftNode.open},
 * then {@link RaftNode.initialize} (new cluster) or {@link RaftNode.join}
 * (existing cluster) once, and {@link RaftNode.close} at the end.
 */
export class RaftNode implements RpcHandler {
  /** This node's URL. */
  readonly url: string;
  readonly #opts: Required<Omit<RaftNodeOptions, 'transport' | 'fs' | 'logger' | 'clock' | 'random' | 'stateMachine'>>;
  readonly #sm: StateMachine;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #fs: FileSystem;
  readonly #log_: Logger;
  readonly #transport: Transport;

  #opened = false;
  #closed = false;
  #failed: unknown;
  #metaStore!: MetaStore;
  #snapStore!: SnapshotStore;
  #log!: LogStore;
  #meta: Meta = { term: 0, votedFor: '', clusterId: '' };
  #metaVersion = 0;
  #metaDurable = 0;
  #metaWrite: Promise<void> | undefined;

  #role: 'follower' | 'candidate' | 'leader' = 'follower';
  #leader: string | undefined;
  #lastLeaderContact = -Infinity;
  /** When commit indexes were first known: this leader's own, or as learned from leaders' `leaderCommit`. */
  readonly #commitTimes = new CommitTimes();
  readonly #stats = new StatsRecorder();
  #commit = 0;
  #applied = 0;
  #snap: SnapshotMeta | undefined;
  readonly #configs = new ConfigHistory();

  #electionTimer: unknown;
  #heartbeatTimer: unknown;
  #round = 0;
  #progress = new Map<string, Progress>();
  #quorumCheckAt = 0;
  #proposals: { data: Uint8Array[]; resolve: (i: number) => void; reject: (e: unknown) => void }[] = [];
  #flushScheduled = false;
  #waiters: Waiter[] = [];
  #transferring: { to: string; deadline: number; sent: boolean } | undefined;
  /** Leader: index of the no-op that began its term; no membership change before it commits. */
  #termStart = Infinity;

  #applying: Promise<void> | undefined;
  #snapshotting: Promise<void> | undefined;
  /** A follower needs a snapshot while only a compaction marker is stored: the next snapshot is a full one. */
  #fullSnapshotWanted = false;
  #installing: Promise<void> | undefined;
  readonly #receiver: SnapshotReceiver;
  #listeners = new Set<LeaderChangeListener>();
  #configListeners = new Set<() => void>();
  /** Woken whenever {@link RaftNode.state}, the leader or the term may have changed (the state streams). */
  #watchers = new Set<() => void>();

  constructor(options: RaftNodeOptions) {
    const election = options.electionTimeoutMs ?? 1000;
    this.url = options.url;
    this.#sm = options.stateMachine;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#fs = options.fs ?? new NodeFileSystem();
    this.#log_ = options.logger ?? silentLogger;
    this.#transport = options.transport;
    this.#opts = {
      dir: options.dir,
      url: options.url,
      electionTimeoutMs: election,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? Math.max(1, Math.floor(election / 10)),
      snapshotThreshold: options.snapshotThreshold ?? 16384,
      snapshotThresholdBytes: options.snapshotThresholdBytes ?? 256 << 20,
      trailingEntries: options.trailingEntries ?? 1024,
      maxAppendEntries: options.maxAppendEntries ?? 1024,
      maxAppendBytes: options.maxAppendBytes ?? 1 << 20,
      maxInflight: options.maxInflight ?? 8,
      snapshotChunkBytes: options.snapshotChunkBytes ?? 1 << 20,
      segmentBytes: options.segmentBytes ?? 64 << 20,
      logCacheBytes: options.logCacheBytes ?? 64 << 20,
      sync: options.sync ?? 'always',
    };
    this.#receiver = new SnapshotReceiver({
      create: (index, term, config) => this.#snapStore.create(index, term, config),
      localSnapshot: () => this.#snapshotting,
      fail: (err) => this.#fail(err),
    });
  }

  // ---------------------------------------------------------------- public state

  /**
   * The error that stopped the node when {@link state} is `failed` (a storage
   * error, a corrupt log, or the state machine's throw), else `undefined`.
   */
  get failure(): unknown {
    return this.#failed;
  }

  /** What the node is doing now; see {@link RaftState}. */
  get state(): RaftState {
    if (this.#closed) return 'closed';
    if (this.#failed !== undefined) return 'failed';
    if (!this.#opened || this.#meta.clusterId === '') return 'uninitialized';
    if (this.#role === 'leader') return 'leader';
    if (this.#role === 'candidate') return 'candidate';
    const config = this.#config();
    if (config.voters.includes(this.url)) return 'follower';
    if (config.learners.includes(this.url) || members(config).length === 0) return 'learner';
    return 'removed';
  }

  /** The current term (0 before the first election). */
  get term(): number {
    return this.#meta.term;
  }

  /** Index of the highest entry known to be committed. */
  get commitIndex(): number {
    return this.#commit;
  }

  /** Index of the highest entry applied to the state machine. */
  get appliedIndex(): number {
    return this.#applied;
  }

  /** Index of the last entry in the log (0 when empty). */
  get lastIndex(): number {
    return this.#log ? this.#log.lastIndex : 0;
  }

  /** The leader's URL as far as this node knows, or `undefined`. */
  leader(): string | undefined {
    return this.#leader;
  }

  /** Whether this node is the leader now. */
  isLeader(): boolean {
    return this.#role === 'leader' && !this.#closed && this.#failed === undefined;
  }

  /** URLs of every member (voters, then learners) in the latest configuration this node knows. */
  urls(): string[] {
    return members(this.#config());
  }

  /** The latest configuration this node knows (it may not be committed yet). */
  config(): ClusterConfig {
    const c = this.#config();
    return { voters: [...c.voters], learners: [...c.learners] };
  }

  /** The id of the cluster, or `undefined` before `initialize()`/`join()`. */
  clusterId(): string | undefined {
    return this.#meta.clusterId === '' ? undefined : this.#meta.clusterId;
  }

  /**
   * The entry at `index` while it is in the log (not yet compacted behind a snapshot), from memory or
   * disk, for inspection and tests. Rejects `CORRUPT` when its record on disk does not verify.
   */
  readLogEntry(index: number): Promise<LogEntry | undefined> {
    return this.#log ? this.#log.entry(index) : Promise.resolve(undefined);
  }

  /**
   * How far this node is behind the leader's commit index (as it last
   * learned it) and, on the leader, each follower's match index, lag (in
   * entries and seconds), last contact and snapshot transfer. Read from
   * memory; see {@link ReplicationStatus}.
   */
  replication(): ReplicationStatus {
    const progress = this.#role === 'leader' ? this.#progress : new Map<string, Progress>();
    return replicationStatus({
      role: this.state,
      leading: this.isLeader(),
      term: this.#meta.term,
      commitIndex: this.#commit,
      appliedIndex: this.#applied,
      now: this.#clock.now(),
      electionTimeoutMs: this.#opts.electionTimeoutMs,
      lastLeaderContact: this.#lastLeaderContact,
      commitTimes: this.#commitTimes,
      voters: this.#config().voters,
      self: this.url,
      followers: progress,
    });
  }

  /** Counters and latency histograms since the node was created: log fsyncs, commits, elections, snapshots sent (see {@link RaftStats}). */
  stats(): RaftStats {
    return this.#stats.snapshot((this.#log as LogStore | undefined)?.fsyncs.snapshot());
  }

  /** Index of the last entry covered by the latest snapshot (0 when none). */
  get snapshotIndex(): number {
    return this.#snap?.index ?? 0;
  }

  /**
   * Calls `listener` whenever the known leader (or the term of the known
   * leader) changes. Returns the function that unsubscribes.
   */
  onLeaderChange(listener: LeaderChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * The leader changes as an async iterable, starting with the current
   * state. A consumer slower than the changes sees the latest one (the ones
   * in between are coalesced, nothing is buffered without bound). The
   * iteration ends when the node closes or fails, or `signal` aborts.
   */
  async *leaderChanges(options: { signal?: AbortSignal } = {}): AsyncGenerator<LeaderChange, void, undefined> {
    const signal = options.signal;
    let latest: LeaderChange | undefined = { leader: this.#leader, term: this.#meta.term };
    let wake: (() => void) | undefined;
    const poke = (): void => wake?.();
    const off = this.onLeaderChange((leader, term) => {
      latest = { leader, term };
      poke();
    });
    // Called on close and on every state change too.
    this.#configListeners.add(poke);
    signal?.addEventListener('abort', poke);
    try {
      for (;;) {
        if (this.#closed || this.#failed !== undefined || signal?.aborted) return;
        if (latest !== undefined) {
          const next: LeaderChange = latest;
          latest = undefined;
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      off();
      this.#configListeners.delete(poke);
      signal?.removeEventListener('abort', poke);
    }
  }

  /**
   * The node's state as an async iterable: first the current one, then each
   * change of role (`follower`, `candidate`, `leader`, `learner`), of the
   * known leader or of the term, `removed` when the node's configuration no
   * longer holds it, and `failed` with the error that stopped the node (then
   * the iteration ends). A consumer slower than the changes sees the latest
   * state (the ones in between are coalesced; nothing is buffered). The
   * iteration ends when the node closes (without a value for it), or when
   * `signal` aborts.
   */
  async *stateChanges(options: { signal?: AbortSignal } = {}): AsyncGenerator<StateChange, void, undefined> {
    const signal = options.signal;
    let last: StateChange | undefined;
    let wake: (() => void) | undefined;
    const poke = (): void => wake?.();
    this.#watchers.add(poke);
    signal?.addEventListener('abort', poke);
    try {
      for (;;) {
        if (signal?.aborted) return;
        const state = this.state;
        if (state === 'closed') return;
        const leader = this.#leader;
        const term = this.#meta.term;
        if (last === undefined || last.state !== state || last.leader !== leader || last.term !== term) {
          last = state === 'failed' ? { state, leader, term, failure: this.#failed } : { state, leader, term };
          yield last;
          continue; // the state is read again: nothing that changed meanwhile is missed
        }
        if (state === 'failed') return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      this.#watchers.delete(poke);
      signal?.removeEventListener('abort', poke);
    }
  }

  /** Wakes the state streams: the state, the leader or the term may have changed. */
  #stateMayHaveChanged(): void {
    for (const w of [...this.#watchers]) w();
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Loads the node's state from `dir`: term and vote, snapshot (restored into
   * the state machine when it is behind it) and log. A member of a cluster
   * starts as a follower. Rejects `ALREADY_OPEN`, `CLOSED`, or `CORRUPT`
   * when a file is damaged (or the state machine's error when its restore
   * fails); a node that failed to open is closed.
   */
  async open(): Promise<void> {
    if (this.#closed) throw new RaftError('CLOSED', 'node is closed');
    if (this.#opened) throw new RaftError('ALREADY_OPEN', 'node is already open');
    this.#opened = true;
    try {
      await this.#load();
    } catch (err) {
      // A node that failed to open holds no file open and can only be discarded.
      this.#closed = true;
      await (this.#log as LogStore | undefined)?.close().catch(() => undefined);
      throw err;
    }
    if (this.#meta.clusterId !== '') this.#becomeFollower(this.#meta.term, undefined);
    this.#log_.info('raft: opened', { url: this.url, term: this.#meta.term, last: this.#log.lastIndex, applied: this.#applied });
  }

  async #load(): Promise<void> {
    const sync = this.#opts.sync === 'always';
    const dir = this.#opts.dir;
    await this.#fs.mkdir(dir);
    this.#metaStore = new MetaStore(this.#fs, dir, sync);
    this.#snapStore = new SnapshotStore(this.#fs, dir, sync);
    this.#meta = await this.#metaStore.load();
    this.#snap = await this.#snapStore.load();
    const snapIndex = this.#snap?.index ?? 0;
    const smApplied = this.#sm.appliedIndex();
    // Entries the state machine applied beyond the snapshot were durable and are needed: damage there is CORRUPT.
    // Entries the snapshot covers are not needed (a crash during an install can leave a torn tail below the
    // snapshot's index, the log is reset below); beyond the applied index, only damage of a crash's shape is recovered.
    this.#log = await LogStore.open(
      this.#fs,
      dir,
      { sync, segmentBytes: this.#opts.segmentBytes, cacheBytes: this.#opts.logCacheBytes, logger: this.#log_, onFailure: (err) => this.#fail(err) },
      // Behind a compaction marker the machine applied every entry up to smApplied from this log, so they were
      // durable here: damage among them is CORRUPT, never a torn tail to cut off (with the entries after it).
      { emptyFirst: snapIndex + 1, durableIndex: smApplied > snapIndex || this.#snap?.marker ? smApplied : 0 },
    );
    if (this.#snap) {
      const snap = this.#snap;
      this.#configs.setBase(snap.config);
      if (this.#log.firstIndex > snap.index + 1) {
        throw new RaftError('CORRUPT', `${joinPath(dir, 'log-*.seg')}: log starts at ${this.#log.firstIndex}, after snapshot ${snap.index} (offset 0)`);
      }
      if (this.#log.lastIndex < snap.index || (this.#log.term(snap.index) ?? snap.term) !== snap.term) {
        this.#log.reset(snap.index + 1); // an install that crashed before resetting the log
      }
    }
    if (smApplied > this.#log.lastIndex && smApplied > snapIndex) {
      // New entries would reuse indexes the state machine already applied and never be applied: replicas diverge.
      const end = this.#log.end;
      throw new RaftError('CORRUPT', `${end.path}: the state machine applied up to ${smApplied} but the log ends at ${this.#log.lastIndex} and no snapshot covers it, at offset ${end.offset}`);
    }
    this.#rebuildConfigs();
    if (this.#snap?.marker && smApplied < this.#snap.index) {
      // The log was compacted behind the machine's own checkpoint, which it no longer has: the entries are gone.
      throw new RaftError(
        'CORRUPT',
        `${joinPath(dir, snapshotFileName(this.#snap.index))}: the log was compacted up to ${this.#snap.index} behind the state machine's checkpoint, but the state machine has applied only up to ${smApplied} (offset 0)`,
      );
    }
    if (this.#snap && smApplied < this.#snap.index) {
      await this.#restore(this.#snap);
    } else {
      this.#applied = Math.max(smApplied, snapIndex);
    }
    this.#commit = this.#applied;
    await this.#log.sync();
  }

  /**
   * Bootstraps a new single-node cluster with this node as its only voter and
   * a new random cluster id; the node elects itself at once. Rejects
   * `ALREADY_INITIALIZED` when the node already belongs to a cluster.
   */
  async initialize(): Promise<void> {
    this.#checkOpen();
    if (this.#meta.clusterId !== '' || this.#log.lastIndex > 0) {
      throw new RaftError('ALREADY_INITIALIZED', 'node already belongs to a cluster');
    }
    let id = '';
    for (let i = 0; i < 16; i++) id += Math.floor(this.#random() * 256).toString(16).padStart(2, '0');
    this.#setMeta({ term: 1, votedFor: '', clusterId: id });
    const config: ClusterConfig = { voters: [this.url], learners: [] };
    this.#log.append([{ index: 1, term: 1, type: EntryType.Config, data: encodeConfig(config) }]);
    this.#configs.add(1, config);
    await Promise.all([this.#saveMeta(), this.#syncLog()]);
    this.#becomeFollower(1, undefined);
    this.#startElection(false, false);
  }

  /**
   * Joins the running cluster that `url` (any member; or a list of members,
   * tried in turn while they fail) belongs to: the leader adds this node as a
   * learner, replicates the log (or a snapshot) to it and promotes it to voter
   * once it caught up. Resolves once this node knows it is a voter. Rejects
   * `ALREADY_INITIALIZED`, `CLUSTER_MISMATCH` (when `clusterId` is given and
   * differs), `BAD_REQUEST` (an empty list), `CLOSED`, or the last retriable
   * error after `timeoutMs` (default 30 election timeouts).
   */
  async join(url: string | readonly string[], options: { clusterId?: string; timeoutMs?: number } = {}): Promise<void> {
    this.#checkOpen();
    if (this.#meta.clusterId !== '') throw new RaftError('ALREADY_INITIALIZED', 'node already belongs to a cluster');
    const targets = typeof url === 'string' ? [url] : [...url];
    if (targets.length === 0) throw new RaftError('BAD_REQUEST', 'join needs at least one member URL');
    const deadline = this.#clock.now() + (options.timeoutMs ?? 30 * this.#opts.electionTimeoutMs);
    const request: JoinRequest = options.clusterId ? { url: this.url, clusterId: options.clusterId } : { url: this.url };
    const response = await this.#retryAt(targets, deadline, (target) => this.#transport.join(target, request));
    this.#checkOpen();
    if (this.#meta.clusterId === '') {
      this.#setMeta({ ...this.#meta, clusterId: response.clusterId });
      this.#stateMayHaveChanged();
      await this.#saveMeta();
      // The leader may have reached this node meanwhile: keep what it learned.
      if (this.#role === 'follower') this.#becomeFollower(this.#meta.term, this.#leader);
    }
    await this.#until(() => this.#config().voters.includes(this.url));
  }

  /**
   * Removes this node from the cluster. On the leader, the configuration
   * without it is committed first, then leadership moves to another voter.
   * Resolves once the removal is committed. Rejects `UNKNOWN_MEMBER`,
   * `CONFIG_CHANGE_IN_PROGRESS` (retry), `NO_LEADER`, `CLOSED`.
   */
  async leave(): Promise<void> {
    this.#checkReady();
    if (!members(this.#config()).includes(this.url)) throw new RaftError('UNKNOWN_MEMBER', `${this.url} is not a member`);
    try {
      await this.removeMember(this.url);
    } catch (err) {
      // A retry after a lost answer finds the removal already done.
      if (!isRaftError(err, 'UNKNOWN_MEMBER')) throw err;
    }
  }

  /**
   * Removes the member `url` (voter or learner) through the log; on a follower
   * the request goes to the leader. Resolves once the new configuration is
   * committed. Rejects `UNKNOWN_MEMBER`, `CONFIG_CHANGE_IN_PROGRESS` (retry),
   * `BAD_REQUEST` (the last voter), `NO_LEADER`, `CLOSED`.
   */
  async removeMember(url: string): Promise<void> {
    this.#checkReady();
    const deadline = this.#clock.now() + 10 * this.#opts.electionTimeoutMs;
    const request: LeaveRequest = { url, clusterId: this.#meta.clusterId };
    if (this.#role === 'leader') {
      await this.handleLeave(request);
      return;
    }
    const target = this.#leader;
    if (target === undefined) throw new RaftError('NO_LEADER', 'no leader known');
    await this.#retryAt([target], deadline, (to) => (to === this.url ? this.handleLeave(request) : this.#transport.leave(to, request)));
  }

  /**
   * Replicates `data` as one entry. Resolves with the entry's index once it is
   * committed and applied to the state machine. Rejects `NOT_LEADER` (with
   * `leaderURL` when known) on a non-leader, during a leadership transfer, or
   * when leadership ends before the entry reached the log (nothing was
   * written); `LEADERSHIP_LOST` when the entry is in the log but leadership
   * ends, the node closes or the node fails before it is applied here: the
   * outcome is unknown, another leader may still commit it; `CLOSED` (not
   * written); `APPLY_FAILED` or the storage error when the node failed (for an
   * entry known committed, or one not yet in the log).
   */
  apply(data: Uint8Array): Promise<number> {
    return this.applyBatch([data]);
  }

  /**
   * Like {@link RaftNode.apply} for several entries, which get consecutive
   * indexes; resolves with the first index once all are applied. An empty
   * batch resolves with the next index at once.
   */
  applyBatch(data: Uint8Array[]): Promise<number> {
    try {
      this.#checkReady();
      if (this.#role !== 'leader') {
        throw new RaftError('NOT_LEADER', `not the leader (leader: ${this.#leader ?? 'unknown'})`, this.#leader ? { leaderURL: this.#leader } : {});
      }
      if (this.#transferring) throw new RaftError('NOT_LEADER', 'leadership transfer in progress');
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (data.length === 0) return Promise.resolve(this.#log.lastIndex + 1);
    return new Promise((resolve, reject) => {
      this.#proposals.push({ data, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        queueMicrotask(() => this.#flush());
      }
    });
  }

  /**
   * Hands leadership to `to` (default: the most up-to-date other voter): new
   * proposals are refused, the target is brought up to date, then told to
   * start an election at once (TimeoutNow). Resolves once this node is no
   * longer the leader; resolves at once when there is no other voter.
   * Rejects `NOT_LEADER`, `UNKNOWN_MEMBER` (target not a voter),
   * `UNREACHABLE` (not done within an election timeout).
   */
  async transferLeadership(to?: string): Promise<void> {
    this.#checkReady();
    if (this.#role !== 'leader') throw new RaftError('NOT_LEADER', 'not the leader', this.#leader ? { leaderURL: this.#leader } : {});
    const voters = this.#config().voters.filter((v) => v !== this.url);
    if (to !== undefined && !voters.includes(to)) throw new RaftError('UNKNOWN_MEMBER', `${to} is not a voter`);
    const target = to ?? [...voters].sort((a, b) => (this.#progress.get(b)?.match ?? 0) - (this.#progress.get(a)?.match ?? 0))[0];
    if (target === undefined) return;
    const term = this.#meta.term;
    // Proposals accepted before the transfer are appended now, so the target is brought up to date with them.
    this.#flush();
    this.#transferring = { to: target, deadline: this.#clock.now() + this.#opts.electionTimeoutMs, sent: false };
    this.#tryTransfer();
    try {
      await this.#until(
        () => this.#meta.term !== term || this.#role !== 'leader' || this.#transferring === undefined,
        this.#opts.electionTimeoutMs * 2,
      );
    } finally {
      if (this.#meta.term === term) this.#transferring = undefined;
    }
    if (this.#role === 'leader' && this.#meta.term === term) throw new RaftError('UNREACHABLE', `leadership transfer to ${target} timed out`);
  }

  /**
   * Stops the node: a leader first tries to hand leadership over (bounded by
   * an election timeout), then timers stop, pending calls reject `CLOSED` and
   * files are closed. A second call rejects `CLOSED`.
   */
  async close(): Promise<void> {
    if (this.#closed) throw new RaftError('CLOSED', 'node is already closed');
    if (this.#role === 'leader' && this.#failed === undefined && this.#opened) {
      await this.transferLeadership().catch((err: unknown) => this.#log_.warn('raft: transfer on close failed', { err }));
    }
    this.#closed = true;
    this.#clearTimers();
    this.#rejectAll(new RaftError('CLOSED', 'node closed'), new RaftError('LEADERSHIP_LOST', 'the node closed before the entry was applied: it may still commit'));
    for (const l of this.#configListeners) l();
    this.#stateMayHaveChanged();
    await Promise.allSettled([this.#applying, this.#snapshotting, this.#installing]);
    await this.#receiver.abort();
    if (this.#opened) await this.#log.close();
  }

  /** `await using node = ...` closes the node (errors of a second close ignored). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#closed) await this.close();
  }

  // ---------------------------------------------------------------- RPC handlers

  /** RequestVote / PreVote from a candidate. */
  async handleRequestVote(raw: RequestVoteRequest): Promise<RequestVoteResponse> {
    const req = check.requestVote(raw);
    this.#checkPeer(req.clusterId);
    const now = this.#clock.now();
    const lease = !req.transfer && this.#leader !== undefined && this.#leader !== req.from &&
      (this.#role === 'leader' || now - this.#lastLeaderContact < this.#opts.electionTimeoutMs);
    const upToDate = req.lastLogTerm > this.#lastTerm() || (req.lastLogTerm === this.#lastTerm() && req.lastLogIndex >= this.#log.lastIndex);
    if (req.preVote) {
      return { term: this.#meta.term, voteGranted: !lease && req.term > this.#meta.term && upToDate };
    }
    if (req.term < this.#meta.term || lease) return { term: this.#meta.term, voteGranted: false };
    if (req.term > this.#meta.term) this.#becomeFollower(req.term, undefined);
    let granted = false;
    if ((this.#meta.votedFor === '' || this.#meta.votedFor === req.from) && upToDate) {
      granted = true;
      if (this.#meta.votedFor === '') this.#setMeta({ ...this.#meta, votedFor: req.from });
      this.#resetElectionTimer();
    }
    const term = this.#meta.term;
    await this.#saveMeta();
    return { term, voteGranted: granted && this.#meta.term === term };
  }

  /** AppendEntries (and heartbeats) from the leader. */
  async handleAppendEntries(raw: AppendEntriesRequest): Promise<AppendEntriesResponse> {
    const req = check.appendEntries(raw);
    this.#checkPeer(req.clusterId);
    while (this.#installing) await this.#installing;
    this.#checkReady();
    if (req.term < this.#meta.term) return { term: this.#meta.term, success: false, matchIndex: this.#log.lastIndex };
    this.#acceptLeader(req.term, req.from);
    this.#commitTimes.record(req.leaderCommit, this.#clock.now());
    const snapIndex = this.#snap?.index ?? 0;
    let prev = req.prevLogIndex;
    let entries = req.entries;
    if (prev < snapIndex) {
      // Entries up to the snapshot are committed and therefore match.
      entries = entries.filter((e) => e.index > snapIndex);
      prev = snapIndex;
    } else {
      if (prev > this.#log.lastIndex) return this.#afterMeta({ term: req.term, success: false, matchIndex: this.#log.lastIndex });
      const have = this.#termAt(prev);
      if (have !== req.prevLogTerm) {
        let first = prev;
        while (first - 1 > this.#commit && this.#termAt(first - 1) === have) first--;
        return this.#afterMeta({ term: req.term, success: false, matchIndex: Math.max(first - 1, this.#commit) });
      }
    }
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const have = this.#termAt(e.index);
      if (have === e.term) continue;
      if (have !== undefined) {
        if (e.index <= this.#commit) {
          this.#fail(new RaftError('CORRUPT', `leader ${req.from} conflicts with committed entry ${e.index}`));
          throw new RaftError('CLOSED', 'node failed');
        }
        this.#truncate(e.index);
      }
      this.#appendEntries(entries.slice(i));
      break;
    }
    const match = req.prevLogIndex + req.entries.length;
    const term = this.#meta.term;
    await Promise.all([this.#syncLog(), this.#saveMeta()]);
    if (this.#meta.term === term && req.leaderCommit > this.#commit) {
      this.#advanceCommit(Math.min(req.leaderCommit, match));
    }
    this.#kickApply();
    return { term: this.#meta.term, success: true, matchIndex: match };
  }

  /** One chunk of a snapshot from the leader. */
  async handleInstallSnapshot(raw: InstallSnapshotRequest): Promise<InstallSnapshotResponse> {
    const req = check.installSnapshot(raw);
    this.#checkPeer(req.clusterId);
    return this.#receiver.inTurn(() => this.#installChunk(req));
  }

  /** TimeoutNow from a leader handing over leadership: start an election at once. */
  async handleTimeoutNow(raw: TimeoutNowRequest): Promise<TimeoutNowResponse> {
    const req = check.timeoutNow(raw);
    this.#checkPeer(req.clusterId);
    if (req.term >= this.#meta.term && this.#role !== 'leader' && this.#config().voters.includes(this.url)) {
      this.#log_.info('raft: leadership transfer to this node', { url: this.url, term: req.term });
      this.#startElection(false, true);
    }
    return { term: this.#meta.term };
  }

  /** A node asks to join; followers forward to the leader. */
  async handleJoin(raw: JoinRequest): Promise<JoinResponse> {
    const req = check.join(raw);
    this.#checkReady();
    if (req.clusterId !== undefined && req.clusterId !== this.#meta.clusterId) {
      throw new RaftError('CLUSTER_MISMATCH', `cluster ${req.clusterId} expected, this is ${this.#meta.clusterId}`);
    }
    if (this.#role !== 'leader') return this.#transport.join(this.#leaderOrThrow(), req);
    if (!members(this.#config()).includes(req.url)) await this.#configChangeAllowed();
    const config = this.#config();
    if (!members(config).includes(req.url)) {
      const index = this.#changeConfig({ voters: config.voters, learners: [...config.learners, req.url] });
      await this.#waitCommitted(index);
    } else {
      // Already a member (a retry after a lost answer): answer once that configuration is committed.
      await this.#waitConfigCommitted();
    }
    return { clusterId: this.#meta.clusterId, leader: this.url, config: this.config() };
  }

  /** A node asks to remove a member; followers forward to the leader. */
  async handleLeave(raw: LeaveRequest): Promise<LeaveResponse> {
    const req = check.leave(raw);
    this.#checkReady();
    this.#checkPeer(req.clusterId);
    if (this.#role !== 'leader') return this.#transport.leave(this.#leaderOrThrow(), req);
    if (members(this.#config()).includes(req.url)) await this.#configChangeAllowed();
    const config = this.#config();
    if (!members(config).includes(req.url)) {
      // Removed by a configuration not committed yet (a retry after a lost answer): answer once it is.
      if (this.#configs.removedByPending(req.url, this.#commit)) {
        await this.#waitConfigCommitted();
        return { config: this.config() };
      }
      throw new RaftError('UNKNOWN_MEMBER', `${req.url} is not a member`);
    }
    const voters = config.voters.filter((v) => v !== req.url);
    if (voters.length === 0) throw new RaftError('BAD_REQUEST', 'cannot remove the last voter');
    const index = this.#changeConfig({ voters, learners: config.learners.filter((l) => l !== req.url) });
    await this.#waitCommitted(index);
    return { config: this.config() };
  }

  // ---------------------------------------------------------------- checks & helpers

  #checkOpen(): void {
    if (this.#closed) throw new RaftError('CLOSED', 'node is closed');
    if (this.#failed !== undefined) throw new RaftError('APPLY_FAILED', 'node failed', { cause: this.#failed });
    if (!this.#opened) throw new RaftError('NOT_INITIALIZED', 'node is not open');
  }

  #checkReady(): void {
    this.#checkOpen();
    if (this.#meta.clusterId === '') throw new RaftError('NOT_INITIALIZED', 'node has no cluster: call initialize() or join()');
  }

  #checkPeer(clusterId: string): void {
    this.#checkReady();
    if (clusterId !== this.#meta.clusterId) {
      throw new RaftError('CLUSTER_MISMATCH', `request for cluster ${clusterId}, this node is in ${this.#meta.clusterId}`);
    }
  }

  #leaderOrThrow(): string {
    if (this.#leader === undefined || this.#leader === this.url) throw new RaftError('NO_LEADER', 'no leader known');
    return this.#leader;
  }

  /** Calls `targets` in turn (following NOT_LEADER redirects) until one answers, a non-retriable error, or `deadline`. */
  async #retryAt<T>(targets: readonly string[], deadline: number, call: (target: string) => Promise<T>): Promise<T> {
    let target = targets[0]!;
    for (let attempt = 0; ; attempt++) {
      this.#checkOpen();
      try {
        return await call(target);
      } catch (err) {
        if (!isRaftError(err) || !err.retriable || this.#clock.now() >= deadline || attempt >= 1000) throw err;
        if (err.code === 'NOT_LEADER' && err.leaderURL !== undefined && err.leaderURL !== target) {
          target = err.leaderURL;
          continue;
        }
        target = targets[(attempt + 1) % targets.length]!;
        await this.#sleep(this.#opts.electionTimeoutMs / 2);
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#clock.setTimeout(resolve, ms));
  }

  /** Resolves when `cond()` holds (checked on every state change), rejects CLOSED, or UNREACHABLE after `timeoutMs`. */
  #until(cond: () => boolean, timeoutMs?: number): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: unknown;
      const check = (): void => {
        try {
          if (this.#closed || this.#failed !== undefined) throw new RaftError('CLOSED', 'node closed');
          if (cond()) {
            done();
            resolve();
          }
        } catch (err) {
          done();
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      };
      const done = (): void => {
        this.#configListeners.delete(check);
        this.#clock.clearTimeout(timer);
      };
      this.#configListeners.add(check);
      if (timeoutMs !== undefined) {
        timer = this.#clock.setTimeout(() => {
          done();
          reject(new RaftError('UNREACHABLE', 'timed out'));
        }, timeoutMs);
      }
      check();
    });
  }

  #notify(): void {
    for (const l of [...this.#configListeners]) l();
    this.#stateMayHaveChanged();
  }

  #setMeta(meta: Meta): void {
    this.#meta = meta;
    this.#metaVersion++;
  }

  /** Resolves once the in-memory term/vote/cluster as of the call are durable. */
  async #saveMeta(): Promise<void> {
    const want = this.#metaVersion;
    while (this.#metaDurable < want) {
      if (this.#metaWrite) {
        await this.#metaWrite;
        continue;
      }
      const version = this.#metaVersion;
      const write = this.#metaStore.save(this.#meta).then(() => {
        this.#metaDurable = Math.max(this.#metaDurable, version);
      });
      this.#metaWrite = write.finally(() => {
        this.#metaWrite = undefined;
      });
      try {
        await this.#metaWrite;
      } catch (err) {
        this.#fail(err);
        throw err;
      }
    }
  }

  /**
   * Resolves once the log is durable as of the call. A failed write or fsync
   * fails the node, follower or leader alike: the log store never retries it,
   * and a node that went on would vote and answer one replica short.
   */
  async #syncLog(): Promise<void> {
    try {
      await this.#log.sync();
    } catch (err) {
      this.#fail(err);
      throw err;
    }
  }

  async #afterMeta<T>(value: T): Promise<T> {
    await this.#saveMeta();
    return value;
  }

  #termAt(index: number): number | undefined {
    if (index === 0) return 0;
    if (this.#snap && index === this.#snap.index) return this.#snap.term;
    return this.#log.term(index);
  }

  #lastTerm(): number {
    return this.#log.lastTerm ?? this.#termAt(this.#log.lastIndex) ?? 0;
  }

  #config(): ClusterConfig {
    return this.#configs.latest();
  }

  #configAt(index: number): ClusterConfig {
    return this.#configs.at(index);
  }

  #rebuildConfigs(): void {
    this.#configs.rebuild(this.#log.configEntries(), this.#snap?.index ?? 0, (index) => this.#log.locate(index));
  }

  #appendEntries(entries: LogEntry[]): void {
    this.#log.append(entries);
    let changed = false;
    for (const e of entries) {
      if (e.type === EntryType.Config) {
        this.#configs.add(e.index, decodeConfig(e.data, e.index));
        changed = true;
      }
    }
    if (changed) this.#onConfigChanged();
  }

  #truncate(from: number): void {
    this.#log.truncateFrom(from);
    if (this.#configs.truncateFrom(from)) this.#onConfigChanged();
  }

  #onConfigChanged(): void {
    if (this.#role === 'leader') {
      this.#syncProgress();
    } else if (!this.#electable()) {
      this.#clock.clearTimeout(this.#electionTimer);
      this.#electionTimer = undefined;
    } else if (this.#electionTimer === undefined && !this.#closed) {
      this.#resetElectionTimer();
    }
    this.#notify();
  }

  /** Whether this node may stand for election (see {@link ConfigHistory.electable}). */
  #electable(): boolean {
    return this.#configs.electable(this.url, this.#commit);
  }

  /**
   * Leader: the peers it replicates to are the members of the latest
   * configuration and, until a change commits, of the committed one, so a
   * removed member receives the entry (and commit index) that removes it and
   * stops standing for election.
   */
  #syncProgress(): void {
    const keep = new Set([...members(this.#config()), ...members(this.#configAt(this.#commit))]);
    keep.delete(this.url);
    for (const m of keep) if (!this.#progress.has(m)) this.#progress.set(m, this.#newProgress());
    for (const m of [...this.#progress.keys()]) {
      if (keep.has(m)) continue;
      this.#replicate(m, true, true); // a last AppendEntries carrying the commit index of its removal
      this.#progress.delete(m);
    }
  }

  #setLeader(leader: string | undefined): void {
    if (leader === this.#leader) return;
    this.#leader = leader;
    if (leader !== undefined) this.#stats.leaderChanges++;
    for (const l of [...this.#listeners]) {
      try {
        l(leader, this.#meta.term);
      } catch (err) {
        this.#log_.error('raft: leader-change listener threw', { err });
      }
    }
    this.#notify();
  }

  #fail(err: unknown): void {
    if (this.#failed !== undefined || this.#closed) return;
    this.#failed = err;
    this.#log_.error('raft: node failed', { url: this.url, err });
    this.#clearTimers();
    this.#role = 'follower';
    const failure = isRaftError(err) ? err : new RaftError('APPLY_FAILED', 'node failed', { cause: err });
    this.#rejectAll(failure, new RaftError('LEADERSHIP_LOST', 'the node failed before the entry was applied: it may still commit', { cause: failure }), failure);
    this.#notify();
  }

  /**
   * Rejects every pending apply: proposals not yet in the log with `notAppended` (nothing was written),
   * entries appended but not applied here with `appended` (another leader may still commit them: the
   * outcome is unknown, LEADERSHIP_LOST), or with `committed` once known committed.
   */
  #rejectAll(notAppended: unknown, appended: unknown, committed: unknown = appended): void {
    const proposals = this.#proposals.splice(0);
    for (const p of proposals) p.reject(notAppended);
    const waiters = this.#waiters.splice(0);
    for (const w of waiters) w.reject(w.index <= this.#commit ? committed : appended);
  }

  #clearTimers(): void {
    this.#clock.clearTimeout(this.#electionTimer);
    this.#clock.clearTimeout(this.#heartbeatTimer);
    this.#electionTimer = undefined;
    this.#heartbeatTimer = undefined;
  }

  // ---------------------------------------------------------------- roles & elections

  #resetElectionTimer(): void {
    this.#clock.clearTimeout(this.#electionTimer);
    this.#electionTimer = undefined;
    if (this.#closed || this.#failed !== undefined || !this.#electable()) return;
    const t = this.#opts.electionTimeoutMs;
    this.#electionTimer = this.#clock.setTimeout(() => {
      this.#electionTimer = undefined;
      if (this.#role !== 'leader') this.#startElection(true, false);
    }, t + Math.floor(this.#random() * t));
  }

  #becomeFollower(term: number, leader: string | undefined): void {
    const wasLeader = this.#role === 'leader';
    if (term > this.#meta.term) this.#setMeta({ ...this.#meta, term, votedFor: '' });
    this.#role = 'follower';
    this.#round++;
    if (wasLeader) {
      this.#clock.clearTimeout(this.#heartbeatTimer);
      this.#heartbeatTimer = undefined;
      this.#progress.clear();
      this.#transferring = undefined;
      const where = leader ? { leaderURL: leader } : {};
      this.#rejectAll(new RaftError('NOT_LEADER', 'leadership lost before the entry was appended', where), new RaftError('LEADERSHIP_LOST', 'leadership lost before the entry was applied: it may still commit', where));
    }
    this.#setLeader(leader);
    this.#resetElectionTimer();
    this.#stateMayHaveChanged();
  }

  #acceptLeader(term: number, from: string): void {
    if (term > this.#meta.term || this.#role !== 'follower') this.#becomeFollower(term, from);
    else {
      this.#setLeader(from);
      this.#resetElectionTimer();
    }
    this.#lastLeaderContact = this.#clock.now();
  }

  #startElection(preVote: boolean, transfer: boolean): void {
    if (this.#closed || this.#failed !== undefined || this.#role === 'leader') return;
    if (!this.#electable()) return;
    const round = ++this.#round;
    this.#resetElectionTimer();
    if (preVote) {
      const term = this.#meta.term + 1;
      this.#collectVotes(round, term, true, transfer, () => this.#startElection(false, false));
      return;
    }
    this.#role = 'candidate';
    this.#stats.electionsStarted++;
    this.#setLeader(undefined);
    this.#setMeta({ ...this.#meta, term: this.#meta.term + 1, votedFor: this.url });
    this.#stateMayHaveChanged();
    const term = this.#meta.term;
    this.#log_.debug('raft: election', { url: this.url, term });
    this.#saveMeta().then(
      () => {
        if (this.#round === round && this.#meta.term === term && this.#role === 'candidate') {
          this.#collectVotes(round, term, false, transfer, () => this.#becomeLeader());
        }
      },
      () => undefined,
    );
  }

  #collectVotes(round: number, term: number, preVote: boolean, transfer: boolean, won: () => void): void {
    const voters = this.#config().voters;
    // A candidate removed by its latest (uncommitted) configuration does not count itself.
    const granted = new Set(voters.includes(this.url) ? [this.url] : []);
    const quorum = Math.floor(voters.length / 2) + 1;
    let done = false;
    const tally = (): void => {
      if (!done && granted.size >= quorum && this.#round === round) {
        done = true;
        won();
      }
    };
    tally();
    const request: RequestVoteRequest = {
      term,
      from: this.url,
      clusterId: this.#meta.clusterId,
      lastLogIndex: this.#log.lastIndex,
      lastLogTerm: this.#lastTerm(),
      preVote,
      transfer,
    };
    for (const v of voters) {
      if (v === this.url) continue;
      this.#transport.requestVote(v, request).then(
        (res) => {
          if (this.#closed) return;
          if (res.term > this.#meta.term && !res.voteGranted) {
            // A refusal from a higher term (pre-vote too): adopt it, or a node that fell behind in
            // terms would ask forever for pre-votes at a term its peers have already passed.
            this.#becomeFollower(res.term, undefined);
            return;
          }
          if (res.voteGranted) granted.add(v);
          tally();
        },
        (err: unknown) => this.#log_.debug('raft: vote request failed', { to: v, err }),
      );
    }
  }

  #becomeLeader(): void {
    if (this.#closed || this.#failed !== undefined) return;
    this.#role = 'leader';
    this.#round++;
    this.#clock.clearTimeout(this.#electionTimer);
    this.#electionTimer = undefined;
    this.#progress.clear();
    this.#syncProgress();
    this.#quorumCheckAt = this.#clock.now();
    this.#log_.info('raft: leader', { url: this.url, term: this.#meta.term });
    this.#setLeader(this.url);
    this.#termStart = this.#appendAsLeader([{ type: EntryType.Noop, data: new Uint8Array(0) }]);
    this.#heartbeat();
  }

  #newProgress(): Progress {
    return new Progress(this.#log.lastIndex + 1, this.#clock.now(), (bytes, seconds) => this.#stats.snapshotSent(bytes, seconds));
  }

  // ---------------------------------------------------------------- leader: proposals & replication

  #flush(): void {
    this.#flushScheduled = false;
    const proposals = this.#proposals.splice(0);
    if (proposals.length === 0) return;
    if (this.#role !== 'leader' || this.#closed) {
      const err = new RaftError('NOT_LEADER', 'not the leader', this.#leader ? { leaderURL: this.#leader } : {});
      for (const p of proposals) p.reject(err);
      return;
    }
    const items: { type: EntryType; data: Uint8Array }[] = [];
    for (const p of proposals) for (const d of p.data) items.push({ type: EntryType.Command, data: d });
    let index = this.#log.lastIndex + 1;
    const term = this.#meta.term;
    this.#appendAsLeader(items);
    for (const p of proposals) {
      this.#waiters.push({ index: index + p.data.length - 1, term, result: index, resolve: p.resolve, reject: p.reject });
      index += p.data.length;
    }
  }

  /** Appends entries of the current term; returns the index of the last one. */
  #appendAsLeader(items: { type: EntryType; data: Uint8Array }[]): number {
    const term = this.#meta.term;
    let index = this.#log.lastIndex;
    const entries = items.map((it) => ({ index: ++index, term, type: it.type, data: it.data }));
    this.#appendEntries(entries);
    this.#stats.pending.appended(index, term, this.#clock.now());
    this.#log.sync().then(
      () => {
        this.#maybeCommit();
        this.#kickApply();
      },
      (err: unknown) => this.#fail(err),
    );
    for (const peer of this.#progress.keys()) this.#replicate(peer, false);
    return index;
  }

  /** Leader: why a membership change may not be appended now, or `undefined` (see {@link ConfigHistory.changeBlocker}). */
  #configChangeBlocker(): string | undefined {
    return this.#configs.changeBlocker(this.#commit, this.#termStart);
  }

  /**
   * Leader: waits (at most an election timeout) until a membership change
   * may be appended. Rejects `CONFIG_CHANGE_IN_PROGRESS` (retriable) when it
   * may not by then, `NOT_LEADER` when leadership ends meanwhile.
   */
  async #configChangeAllowed(): Promise<void> {
    const term = this.#meta.term;
    try {
      await this.#until(() => {
        if (this.#role !== 'leader' || this.#meta.term !== term) throw new RaftError('NOT_LEADER', 'leadership lost', this.#leader ? { leaderURL: this.#leader } : {});
        return this.#configChangeBlocker() === undefined;
      }, this.#opts.electionTimeoutMs);
    } catch (err) {
      if (isRaftError(err, 'UNREACHABLE')) throw new RaftError('CONFIG_CHANGE_IN_PROGRESS', this.#configChangeBlocker() ?? 'a membership change is in progress');
      throw err;
    }
  }

  #changeConfig(config: ClusterConfig): number {
    const blocker = this.#configChangeBlocker();
    if (blocker !== undefined) throw new RaftError('CONFIG_CHANGE_IN_PROGRESS', blocker);
    if (this.#transferring) throw new RaftError('NOT_LEADER', 'leadership transfer in progress');
    this.#log_.info('raft: configuration change', { url: this.url, config });
    return this.#appendAsLeader([{ type: EntryType.Config, data: encodeConfig(config) }]);
  }

  /**
   * Leader: resolves once the entry at `index` (in this leader's log now) is
   * committed; rejects `LEADERSHIP_LOST` if leadership ends first. A leader's
   * log only grows, so while it leads in this term the entry stays.
   */
  #waitCommitted(index: number): Promise<void> {
    const term = this.#meta.term;
    const entryTerm = this.#termAt(index);
    return this.#until(() => {
      const leading = this.#meta.term === term && this.#role === 'leader';
      // Committed and still the same entry (a leader stepping down as its own removal commits counts too).
      const have = this.#termAt(index);
      if (this.#commit >= index && (have === entryTerm || (have === undefined && leading))) return true;
      if (!leading) throw new RaftError('LEADERSHIP_LOST', 'leadership lost before the change committed');
      return false;
    });
  }

  /** Leader: resolves once the latest configuration (maybe of an earlier term) is committed. */
  #waitConfigCommitted(): Promise<void> {
    const latest = this.#configs.latestIndex;
    return latest > this.#commit ? this.#waitCommitted(latest) : Promise.resolve();
  }

  #heartbeat(): void {
    this.#heartbeatTimer = undefined;
    if (this.#role !== 'leader' || this.#closed) return;
    const now = this.#clock.now();
    for (const [peer, p] of this.#progress) {
      p.expireLost(now, this.#opts.electionTimeoutMs); // a request got lost: start over from the last match
      if (p.inflight === 0) this.#replicate(peer, true);
    }
    if (now - this.#quorumCheckAt >= this.#opts.electionTimeoutMs) {
      this.#quorumCheckAt = now;
      const voters = this.#config().voters;
      let alive = voters.includes(this.url) ? 1 : 0;
      for (const v of voters) {
        const p = this.#progress.get(v);
        if (p && now - p.lastContact < this.#opts.electionTimeoutMs) alive++;
      }
      if (alive < Math.floor(voters.length / 2) + 1) {
        this.#log_.warn('raft: lost contact with a quorum, stepping down', { url: this.url, term: this.#meta.term });
        this.#becomeFollower(this.#meta.term, undefined);
        return;
      }
    }
    this.#tryTransfer();
    this.#heartbeatTimer = this.#clock.setTimeout(() => this.#heartbeat(), this.#opts.heartbeatIntervalMs);
  }

  #replicate(peer: string, heartbeat: boolean, force = false): void {
    const p = this.#progress.get(peer);
    if (!p || p.snapshotting || this.#role !== 'leader' || this.#closed) return;
    if (!force && p.paused(this.#opts.maxInflight)) return;
    const prev = p.next - 1;
    const prevTerm = this.#termAt(prev);
    if (prevTerm === undefined || p.next < this.#log.firstIndex) {
      void this.#sendSnapshot(peer, p);
      return;
    }
    const from = p.next;
    const last = this.#log.batchEnd(from, this.#log.lastIndex, this.#opts.maxAppendEntries, this.#opts.maxAppendBytes);
    if (last < from && !heartbeat) return;
    // Smart batching: while a request is in flight, entries gather until its answer (which sends them as
    // one request) unless they already fill a request; only full requests are pipelined. One request per
    // proposal round would cost an HTTP request and a follower fsync per few messages.
    const full = last - from + 1 >= this.#opts.maxAppendEntries || last < this.#log.lastIndex;
    if (!force && !heartbeat && p.inflight > 0 && !full) return;
    const term = this.#meta.term;
    const req: AppendEntriesRequest = {
      term,
      from: this.url,
      clusterId: this.#meta.clusterId,
      prevLogIndex: prev,
      prevLogTerm: prevTerm,
      entries: [],
      leaderCommit: this.#commit,
    };
    p.onSend(from, last, this.#clock.now());
    const send = (entries: LogEntry[]): Promise<AppendEntriesResponse> => {
      req.entries = entries;
      return this.#transport.appendEntries(peer, req);
    };
    const now = last >= from ? this.#log.readNow(from, last) : [];
    let response: Promise<AppendEntriesResponse>;
    if (now && p.queued === 0) {
      response = send(now);
    } else {
      // Some entries are only on disk (or an earlier send waits for them): read them, then send, in order.
      const read = this.#log.read(from, last).then(
        (entries) => ({ entries }),
        (err: unknown) => ({ err }),
      );
      response = p.inOrder(read, (r) => {
        if ('err' in r) throw r.err;
        if (this.#progress.get(peer) !== p || this.#meta.term !== term || this.#closed || r.entries.length !== last - from + 1) {
          throw new RaftError('LEADERSHIP_LOST', 'the log or the leadership changed before the entries were sent');
        }
        return send(r.entries);
      });
    }
    response.then(
      (res) => this.#onAppendResponse(peer, p, req, res),
      (err: unknown) => {
        if (isRaftError(err, 'CORRUPT')) return this.#fail(err);
        if (this.#progress.get(peer) !== p || this.#meta.term !== term) return;
        if (isRaftError(err, 'CLUSTER_MISMATCH')) this.#log_.error('raft: peer is in another cluster', { peer });
        p.onFailure();
      },
    );
  }

  #onAppendResponse(peer: string, p: Progress, req: AppendEntriesRequest, res: AppendEntriesResponse): void {
    if (this.#closed) return;
    if (res.term > this.#meta.term) {
      this.#becomeFollower(res.term, undefined);
      return;
    }
    if (this.#progress.get(peer) !== p || req.term !== this.#meta.term || this.#role !== 'leader') return;
    p.onAnswer(this.#clock.now());
    if (res.success) {
      p.onSuccess(res.matchIndex, this.#log.lastIndex);
      this.#maybeCommit();
      this.#maybePromote(peer, p);
      this.#tryTransfer();
      // A follower whose answer came after the commit advanced has not heard of it: with nothing else in
      // flight to it, tell it now rather than at the next heartbeat (its consumers would wait that long).
      this.#replicate(peer, req.leaderCommit < this.#commit && p.inflight === 0);
      return;
    }
    if (!p.onReject(req.prevLogIndex, res.matchIndex)) return; // stale rejection
    this.#replicate(peer, false);
  }

  #maybeCommit(): void {
    if (this.#role !== 'leader') return;
    const voters = this.#config().voters;
    const matches = voters.map((v) => (v === this.url ? this.#log.durableIndex : (this.#progress.get(v)?.match ?? 0)));
    matches.sort((a, b) => b - a);
    const n = matches[Math.floor(voters.length / 2)] ?? 0;
    if (n > this.#commit && this.#termAt(n) === this.#meta.term) this.#advanceCommit(n);
  }

  #advanceCommit(index: number): void {
    if (index <= this.#commit) return;
    this.#commit = index;
    if (this.#role === 'leader') {
      const now = this.#clock.now();
      this.#commitTimes.record(index, now);
      this.#stats.pending.committed(index, this.#meta.term, now, (seconds) => this.#stats.commitLatency.observe(seconds));
      // Tell followers soon (the commit index rides on the next AppendEntries); stop replicating
      // to members whose removal is now committed.
      for (const [peer, p] of this.#progress) if (p.inflight === 0) this.#replicate(peer, true);
      this.#syncProgress();
      if (!this.#config().voters.includes(this.url) && this.#configs.latestIndex <= index) {
        // Removed by the change it committed, or a learner elected because its log was the most up to date.
        const learner = this.#config().learners.includes(this.url);
        this.#log_.info(learner ? 'raft: a learner led to commit its log; handing over to a voter' : 'raft: leader removed from the cluster, stepping down', { url: this.url });
        const next = this.#mostUpToDateVoter();
        if (next) void this.#transport.timeoutNow(next, this.#rpcBase()).catch(() => undefined);
        this.#becomeFollower(this.#meta.term, undefined);
      }
    }
    this.#notify();
    this.#kickApply();
  }

  #rpcBase(): { term: number; from: string; clusterId: string } {
    return { term: this.#meta.term, from: this.url, clusterId: this.#meta.clusterId };
  }

  #mostUpToDateVoter(): string | undefined {
    let best: string | undefined;
    let bestMatch = -1;
    for (const v of this.#config().voters) {
      const m = this.#progress.get(v)?.match ?? -1;
      if (v !== this.url && m > bestMatch) {
        best = v;
        bestMatch = m;
      }
    }
    return best;
  }

  #maybePromote(peer: string, p: Progress): void {
    const config = this.#config();
    if (!config.learners.includes(peer) || p.match < this.#commit) return;
    if (this.#configChangeBlocker() !== undefined || this.#transferring) return;
    this.#log_.info('raft: promoting learner', { peer });
    this.#changeConfig({ voters: [...config.voters, peer], learners: config.learners.filter((l) => l !== peer) });
  }

  #tryTransfer(): void {
    const t = this.#transferring;
    if (!t || this.#role !== 'leader') return;
    if (this.#clock.now() > t.deadline) {
      this.#transferring = undefined;
      this.#notify();
      return;
    }
    const p = this.#progress.get(t.to);
    if (!p) return;
    if (p.match >= this.#log.lastIndex) {
      if (t.sent) return;
      t.sent = true;
      this.#transport.timeoutNow(t.to, this.#rpcBase()).then(
        (res) => {
          if (res.term > this.#meta.term) this.#becomeFollower(res.term, undefined);
        },
        () => undefined,
      );
    } else {
      this.#replicate(t.to, false);
    }
  }

  async #sendSnapshot(peer: string, p: Progress): Promise<void> {
    const meta = this.#snap;
    if (!meta) return;
    if (meta.marker) {
      // Only the state machine holds the state: ask for a full snapshot (taken in the apply slot); the next
      // heartbeat to this follower sends it.
      if (!this.#fullSnapshotWanted) this.#log_.info('raft: a follower needs a snapshot; taking one', { peer, index: this.#applied });
      this.#fullSnapshotWanted = true;
      this.#kickApply();
      return;
    }
    p.snapshotting = true;
    const term = this.#meta.term;
    let reader;
    try {
      reader = await this.#snapStore.reader(meta);
      let offset = 0;
      for (let chunks = 0; chunks < 1_000_000; chunks++) {
        if (this.#role !== 'leader' || this.#meta.term !== term || this.#closed || this.#progress.get(peer) !== p) return;
        const data = await reader.readChunk(offset, this.#opts.snapshotChunkBytes);
        const done = offset + data.length >= meta.size;
        const res = await this.#transport.installSnapshot(peer, {
          ...this.#rpcBase(),
          term,
          lastIncludedIndex: meta.index,
          lastIncludedTerm: meta.term,
          config: meta.config,
          offset,
          data,
          done,
        });
        if (res.term > this.#meta.term) {
          this.#becomeFollower(res.term, undefined);
          return;
        }
        p.lastContact = this.#clock.now();
        p.onSnapshotChunk(res.received, meta.size, p.lastContact);
        if (done && res.received === offset + data.length) {
          p.onSnapshot(meta.index);
          this.#log_.info('raft: snapshot sent', { peer, index: meta.index });
          queueMicrotask(() => this.#replicate(peer, true));
          return;
        }
        if (res.received > meta.size) return;
        offset = res.received;
      }
    } catch (err) {
      this.#log_.debug('raft: snapshot send failed', { peer, err });
    } finally {
      p.snapshotting = false;
      await reader?.close().catch(() => undefined);
    }
  }

  // ---------------------------------------------------------------- follower: snapshots

  async #installChunk(req: InstallSnapshotRequest): Promise<InstallSnapshotResponse> {
    this.#checkReady();
    if (req.term < this.#meta.term) return { term: this.#meta.term, received: 0 };
    this.#acceptLeader(req.term, req.from);
    await this.#saveMeta();
    const term = this.#meta.term;
    if (req.lastIncludedIndex <= this.#applied || req.lastIncludedIndex <= (this.#snap?.index ?? 0)) {
      return { term, received: req.offset + req.data.length }; // nothing new in it
    }
    const got = await this.#receiver.receive(req);
    if (got.meta === undefined) return { term, received: got.received };
    await this.#install(got.meta);
    return { term: this.#meta.term, received: got.received };
  }

  async #install(meta: SnapshotMeta): Promise<void> {
    let release!: () => void;
    this.#installing = new Promise((r) => (release = r));
    try {
      while (this.#applying) await this.#applying;
      this.#snap = meta;
      this.#configs.setBase(meta.config);
      if (this.#log.term(meta.index) === meta.term) {
        this.#log.compactBefore(meta.index + 1 - this.#opts.trailingEntries);
      } else {
        this.#log.reset(meta.index + 1);
      }
      this.#rebuildConfigs();
      this.#onConfigChanged();
      await this.#restore(meta);
      if (meta.index > this.#commit) this.#commit = meta.index;
      await this.#syncLog();
      this.#log_.info('raft: snapshot installed', { url: this.url, index: meta.index });
    } finally {
      this.#installing = undefined;
      release();
    }
    this.#kickApply();
  }

  async #restore(meta: SnapshotMeta): Promise<void> {
    const reader = await this.#snapStore.reader(meta);
    try {
      await this.#sm.restore(reader.stream(), meta.index);
    } catch (err) {
      this.#fail(isRaftError(err) ? err : new RaftError('APPLY_FAILED', 'state machine restore failed', { cause: err }));
      throw err;
    } finally {
      await reader.close();
    }
    this.#applied = meta.index;
  }

  // ---------------------------------------------------------------- applying & local snapshots

  #kickApply(): void {
    if (this.#applying || this.#installing || this.#closed || this.#failed !== undefined) return;
    if (this.#applied >= Math.min(this.#commit, this.#log.durableIndex)) {
      // Nothing to apply, but the threshold may have been crossed while the last snapshot was written:
      // take the next one now (in the apply slot, so that no apply() overlaps the state machine's snapshot()).
      if (this.#snapshotting || !this.#snapshotDue(this.#applied)) return;
      this.#applying = this.#maybeSnapshot().finally(() => {
        this.#applying = undefined;
        if (this.#applied < Math.min(this.#commit, this.#log.durableIndex)) this.#kickApply();
      });
      return;
    }
    this.#applying = this.#applyLoop().finally(() => {
      this.#applying = undefined;
      this.#kickApply();
    });
  }

  async #applyLoop(): Promise<void> {
    for (let rounds = 0; rounds < 1_000_000; rounds++) {
      if (this.#closed || this.#failed !== undefined || this.#installing) return;
      const upTo = Math.min(this.#commit, this.#log.durableIndex);
      if (this.#applied >= upTo) return;
      let batch: LogEntry[];
      try {
        batch = await this.#log.read(this.#applied + 1, upTo, 4096, 16 << 20); // at most about 16 MiB of data in memory at once
      } catch (err) {
        this.#fail(err);
        return;
      }
      if (batch.length === 0 || this.#closed || this.#failed !== undefined) return;
      const last = batch[batch.length - 1]!.index;
      try {
        await this.#sm.apply(batch.filter((e) => e.type === EntryType.Command), last);
      } catch (err) {
        this.#fail(new RaftError('APPLY_FAILED', `state machine failed applying up to ${last}`, { cause: err }));
        return;
      }
      this.#applied = last;
      while (this.#waiters.length > 0 && this.#waiters[0]!.index <= last) {
        const w = this.#waiters.shift()!;
        if (this.#termAt(w.index) === w.term) w.resolve(w.result);
        else w.reject(new RaftError('LEADERSHIP_LOST', 'the entry was replaced by another leader'));
      }
      this.#notify();
      await this.#maybeSnapshot();
    }
  }

  /** Whether the entries applied since the last snapshot, up to `index`, call for a new one: by count or by bytes. */
  #snapshotDue(index: number): boolean {
    if (this.#fullSnapshotWanted) return true;
    const since = this.#snap?.index ?? 0;
    return index - since >= this.#opts.snapshotThreshold || this.#log.bytesBetween(since + 1, index) >= this.#opts.snapshotThresholdBytes;
  }

  async #maybeSnapshot(): Promise<void> {
    if (this.#receiver.receiving) {
      // A transfer from an earlier term's leader never completes (its chunks are refused now): drop it, in turn
      // with the chunks (not awaited: a chunk being installed waits for this apply slot). The next call goes on.
      void this.#receiver.dropOlderThan(this.#meta.term);
      return;
    }
    if (this.#snapshotting || this.#closed) return;
    const index = this.#applied;
    if (!this.#snapshotDue(index)) return;
    if (this.#sm.checkpoint && !this.#fullSnapshotWanted) {
      await this.#startMark(this.#sm.checkpoint.bind(this.#sm));
      return;
    }
    const term = this.#termAt(index);
    if (term === undefined) return;
    const config = this.#configAt(index);
    let stream: AsyncIterable<Uint8Array>;
    try {
      stream = await this.#sm.snapshot();
    } catch (err) {
      this.#log_.error('raft: state machine snapshot failed', { err });
      return;
    }
    this.#snapshotting = this.#writeSnapshot(stream, index, term, config).then((taken) => {
      this.#snapshotting = undefined;
      if (taken) this.#kickApply(); // entries applied meanwhile may call for the next snapshot already
    });
  }

  /**
   * Compacts the log behind the state machine's own checkpoint: started in the apply slot, it fixes the state as
   * of now; once the machine made it durable, a compaction marker records where the log may begin (in the
   * background, as {@link RaftNode.#writeSnapshot} does). No state is copied.
   */
  async #startMark(checkpoint: () => Promise<{ index: number; durable: Promise<void> }>): Promise<void> {
    let started: { index: number; durable: Promise<void> };
    try {
      started = await checkpoint();
    } catch (err) {
      // The machine could not make its state durable (a failed fsync is lost data): stop, as for a failed apply.
      this.#fail(new RaftError('APPLY_FAILED', 'state machine checkpoint failed', { cause: err }));
      return;
    }
    const { index, durable } = started;
    const term = this.#termAt(index);
    if (index !== this.#applied || term === undefined) {
      durable.catch(() => undefined);
      this.#fail(new RaftError('APPLY_FAILED', `state machine checkpoint at ${index}, but ${this.#applied} is applied`));
      return;
    }
    const config = this.#configAt(index);
    this.#snapshotting = this.#writeMarker(durable, index, term, config);
  }

  async #writeMarker(durable: Promise<void>, index: number, term: number, config: ClusterConfig): Promise<void> {
    try {
      try {
        await durable;
      } catch (err) {
        this.#fail(new RaftError('APPLY_FAILED', 'state machine checkpoint failed', { cause: err }));
        return;
      }
      let meta: SnapshotMeta;
      try {
        meta = await this.#snapStore.mark(index, term, config);
      } catch (err) {
        this.#fail(err); // what the log is compacted behind: a failed write or fsync is lost data (see #writeSnapshot)
        return;
      }
      if (this.#closed || (this.#snap && this.#snap.index >= meta.index)) return;
      this.#compactBehind(meta);
      this.#log_.info('raft: log compacted behind the state machine checkpoint', { url: this.url, index });
    } finally {
      this.#snapshotting = undefined;
    }
    this.#kickApply(); // entries applied meanwhile may call for the next one already
  }

  /** Makes `meta` the current snapshot and compacts the log (and the configuration history) behind it. */
  #compactBehind(meta: SnapshotMeta): void {
    this.#snap = meta;
    this.#configs.compactTo(meta.index, meta.config);
    this.#log.compactBefore(meta.index + 1 - this.#opts.trailingEntries);
  }

  /** Writes a snapshot and compacts the log behind it; resolves false when it failed (logged) or was superseded. */
  async #writeSnapshot(stream: AsyncIterable<Uint8Array>, index: number, term: number, config: ClusterConfig): Promise<boolean> {
    let writer: SnapshotWriter | undefined;
    try {
      writer = await this.#snapStore.create(index, term, config);
      for await (const chunk of stream) await writer.write(chunk);
      const meta = await writer.finish();
      writer = undefined;
      // A full snapshot at a marker's index replaces the marker (a follower asked for it).
      this.#fullSnapshotWanted = false;
      const current = this.#snap;
      if (this.#closed || (current && (current.index > meta.index || (current.index === meta.index && !current.marker)))) return false;
      this.#compactBehind(meta);
      this.#log_.info('raft: snapshot taken', { url: this.url, index, size: meta.size });
      return true;
    } catch (err) {
      // A snapshot is what the log is compacted behind: a write or fsync that failed is lost data, not
      // something to retry (a later fsync may succeed without the data reaching the disk). Stop.
      this.#fail(err);
      await writer?.abort().catch(() => undefined);
      return false;
    }
  }
}
