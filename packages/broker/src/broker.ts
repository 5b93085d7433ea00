import { basename, join } from 'node:path';
import {
  BrokerError,
  MAX_DATA_LENGTH,
  MESSAGE_HEADER_SIZE,
  MessageType,
  asFrame,
  assertValidMessage,
  decodeMessage,
  encodeMessage,
  frameData,
  frameTopicID,
  frameType,
  isBrokerError,
  isBrokerMessageType,
  isU64,
  type Frame,
  type Message,
} from '@msg/wire';
import { Topic, isSegmentError, type IndexedFrame, listTopicIDs, nodeFileSystem, type FileHandle, type FileSystem, type RecoveryEvent, type TopicOpenOptions } from '@msg/segments';
import { EntryType, isRaftError, type LogEntry, type RaftStats, type ReplicationStatus, type StateMachine } from 'raft-ts';
import type { BrokerLog } from './broker-log.js';
import { BrokerTopicReader, type ReaderSource, type TopicReaderOptions } from './broker-topic-reader.js';
import { TopicStats } from './topic-stats.js';
import { fsyncHistogram, fsyncPath, newFsyncStats, timed, type FsyncStats } from './durable-file.js';
import { BrokerStateError, isBrokerStateError } from './errors.js';
import { silentLogger, type Logger } from './logger.js';
import { limitSyncs } from './sync-limiter.js';
import { readMeta, writeMeta, type BrokerMeta, type TopicCheckpoint } from './meta.js';
import { decodeReaderReport, readerReportMessage, readerReportTime, validReaderId } from './reader-report.js';
import { encodeSnapshotHeader, readSnapshot, type SnapshotHeader, type SnapshotSegment } from './snapshot-format.js';
import { decodeProduced, encodeProduced, ProducerTable, sequenceError, validProducer, type ProducerLimits, type ProducerSequence, type ProducerVerdict } from './producers.js';

/** The timers the broker uses (checkpoints, retention); inject a fake one in tests. */
export interface BrokerClock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Retention applied to every topic (besides reclamation by readers). */
export interface RetentionPolicy {
  /** Reclaim a topic's oldest segments while it holds more than this many bytes. */
  maxBytes?: number;
  /** Reclaim segments whose newest message is older than this many milliseconds. */
  maxAgeMs?: number;
}

/** Options of {@link Broker}. */
export interface BrokerOptions {
  /** Data directory (created if missing). */
  dir: string;
  /** The replicated log to publish into; may also be given later with {@link Broker.attachLog}. */
  log?: BrokerLog;
  /** Structured logger; default silent. */
  logger?: Logger;
  /** Clock for checkpoints and retention; default the real one. */
  clock?: BrokerClock;
  /** Segment size of topics, bytes; default 10 MiB. */
  maxSegmentSize?: number;
  /**
   * Milliseconds between two checkpoints (fsync of the topics written since
   * the last one, then an atomic rewrite of `meta` with the applied index).
   * Default 1000. 0: a checkpoint after every `apply()` (slow; every entry is
   * durable in the topics when raft's apply resolves).
   */
  checkpointIntervalMs?: number;
  /** Retention by size or age; default none. */
  retention?: RetentionPolicy;
  /** Milliseconds between two retention passes; default 60000. */
  retentionIntervalMs?: number;
  /** Bounds of the producer table (exactly-once publish); default `DEFAULT_PRODUCER_LIMITS`. Every node must use the same. */
  producers?: Partial<ProducerLimits>;
  /**
   * The file system every file access goes through: `meta`, the state
   * folders, every topic, snapshots and restores (imports of an original
   * broker's folder too). Default the real one (`NodeFileSystem` of
   * `@msg/segments`). A simulation passes a faulty or crashing disk.
   */
  fs?: FileSystem;
  /** When the broker counts as ready (see {@link Broker.ready}); each bound defaults to {@link DEFAULT_READINESS}'s. */
  readiness?: Partial<ReadinessBounds>;
}

/**
 * The bounds of {@link Broker.ready}: a node is ready while it is caught up
 * with the leader's commit index as it last learned it, within these lags.
 */
export interface ReadinessBounds {
  /** Most entries the applied index may be behind the leader's commit index. */
  maxLagEntries: number;
  /** Most seconds the applied index may have been behind the leader's commit index. */
  maxLagSeconds: number;
  /**
   * Most election timeouts without a message from the leader (on a follower),
   * or without answers from a majority of voters (on the leader).
   */
  maxLeaderSilenceElectionTimeouts: number;
}

/** Default {@link ReadinessBounds}: 1000 entries, 5 seconds, 3 election timeouts. */
export const DEFAULT_READINESS: Readonly<ReadinessBounds> = { maxLagEntries: 1000, maxLagSeconds: 5, maxLeaderSilenceElectionTimeouts: 3 };

/** Counters since open. Bytes are message data bytes. */
export interface BrokerCounters {
  /** Messages this broker published as leader (acknowledged). */
  messagesPublished: number;
  bytesPublished: number;
  /** Messages appended to topics by `apply()`. */
  messagesApplied: number;
  bytesApplied: number;
  /** Reader reports (`SetTopicMaxIndex`) applied. */
  readerReports: number;
  /** Entries or reports ignored because they were malformed or out of range (each logged). */
  ignored: number;
  /** Segments deleted by reclamation or retention. */
  segmentsReclaimed: number;
  /** Checkpoints written. */
  checkpoints: number;
  /** Produced messages applied that were committed before (the topic got nothing). */
  duplicates: number;
  /** Produced messages applied that were refused (`SEQUENCE_GAP`, `SEQUENCE_TOO_OLD`). */
  sequenceRefused: number;
}

/** One topic in {@link BrokerStatus}. */
export interface TopicStatus {
  id: bigint;
  /** First index still retained (0n when empty). */
  firstIndex: bigint;
  /** Last index (0n when empty). */
  lastIndex: bigint;
  /** Bytes on disk of all its segments. */
  bytes: number;
  segments: number;
  /** Identified readers' reported indexes (reclamation keeps what any of them has not passed). */
  readers: { id: string; index: bigint }[];
  /** The highest anonymous report (no reader id, as the original's clients send), if any; it never reclaims by itself. */
  anonymous?: AnonymousReport;
  /**
   * Messages applied to the topic by this broker since it opened (a restart
   * or a restore starts the count over): not the messages in the retained
   * segments, which the topic does not count.
   */
  messages: number;
  /** Messages per second applied to the topic over the last 10 seconds. */
  publishRate: number;
  /** Readers of the topic open now (stream GETs and one-shot reads). */
  openStreams: number;
}

/** A follower as the leader sees it, in {@link ReplicationView}. */
export interface FollowerView {
  url: string;
  /** Highest index known to be in the follower's log (0 while unknown). */
  matchIndex: number;
  /** Committed entries the follower lacks (leader commit - match). */
  lagEntries: number;
  /** Seconds since the leader committed the first entry the follower lacks (0 when it lacks none). */
  lagSeconds: number;
  /** Milliseconds since the follower last answered, `null` when it has not yet. */
  lastContactMs: number | null;
  /** A snapshot being sent to it, `null` when none is. */
  snapshot: { sentBytes: number; totalBytes: number } | null;
}

/** How far this node (and, on the leader, each follower) is behind the leader's commit index, in {@link BrokerStatus}. */
export interface ReplicationView {
  /** The raft role (`leader`, `follower`, `candidate`, `learner` ...). */
  role: string;
  /** On a follower the leader's commit index as last learned from it; on the leader its own. */
  leaderCommitIndex: number;
  /** `leaderCommitIndex` minus this broker's applied index, at least 0. */
  lagEntries: number;
  /** Seconds this node's applied index has been behind `leaderCommitIndex` (0 when caught up). */
  lagSeconds: number;
  /** Milliseconds since the last message from the leader; 0 on the leader; `null` if none ever came. */
  lastLeaderContactMs: number | null;
  /** Leader only: every follower; `[]` elsewhere. */
  followers: FollowerView[];
}

/** The highest anonymous report of a topic, in {@link TopicStatus}. */
export interface AnonymousReport {
  /** Highest index reported without a reader id. */
  index: bigint;
  /**
   * When it was last reported (the leader's clock, milliseconds since the
   * epoch); absent when unknown: the time is not kept in `meta` or snapshots,
   * so after a restart or a restore it comes back with the next report.
   */
  atMs?: number;
}

/** What the HTTP layer shows on status and metrics routes. */
export interface BrokerStatus {
  /** Whether the attached log says this node leads (false without a log). */
  isLeader: boolean;
  leader: string | undefined;
  members: string[];
  term: number;
  commitIndex: number;
  /** Highest raft index applied to the topics. */
  appliedIndex: number;
  /** Highest raft index made durable by a checkpoint (what survives a crash without re-applying). */
  durableIndex: number;
  topics: TopicStatus[];
  counters: BrokerCounters;
  /** Latency of the broker's checkpoint fsyncs (topic segments, `meta`, state folders; not raft's log), ms. */
  fsync: FsyncStats;
  /** Replication lag, see {@link ReplicationView}. */
  replication: ReplicationView;
}

/** Numbers of {@link Broker.metrics}; counters since open. */
export interface BrokerMetrics {
  term: bigint;
  commitIndex: bigint;
  appliedIndex: bigint;
  messagesApplied: bigint;
  /** Data bytes. */
  bytesApplied: bigint;
  messagesPublished: bigint;
  /** Data bytes. */
  bytesPublished: bigint;
  topics: TopicMetricsSnapshot[];
  /**
   * Latency of the broker's checkpoint fsyncs (topic segments, `meta`, state
   * folders; not raft's log): cumulative counts per bound `le` (seconds), count, sum (seconds).
   */
  checkpointFsync: { buckets: { le: number; count: number }[]; count: number; sumSeconds: number };
  /** Snapshots of the broker's state streamed (for raft) and restored, their bytes and seconds. */
  snapshots: { taken: number; takenBytes: number; takenSeconds: number; restored: number; restoredBytes: number; restoredSeconds: number };
  /** The producer table: producers held; duplicates answered, sequences refused and producers forgotten since open. */
  producers: { held: number; duplicates: number; refused: number; forgotten: number };
  /** Replication lag and the log's counters, when the log reports them. */
  raft?: RaftMetricsSnapshot;
}

/** One topic in {@link BrokerMetrics}. */
export interface TopicMetricsSnapshot {
  topicID: bigint;
  lastIndex: bigint;
  /** Bytes on disk of its segments. */
  bytes: number;
  /** Counter: messages applied to it since the broker opened. */
  messagesApplied: number;
  /** Counter: data bytes applied to it since the broker opened. */
  bytesApplied: number;
  /** Readers open now. */
  openStreams: number;
  /** Readers' reported indexes (`id` `''`: the anonymous report). */
  readers: { id: string; index: bigint }[];
}

/** Raft numbers in {@link BrokerMetrics}: {@link ReplicationView} and the log's {@link RaftStats}. */
export interface RaftMetricsSnapshot {
  replication: ReplicationView;
  /** Leader: its base election timeout (ms); the lag view and readiness use it. */
  electionTimeoutMs: number;
  stats: RaftStats | undefined;
}

/** What {@link Broker.publish} takes: the index is assigned by the log (any given one is ignored). */
export interface PublishMessage {
  type: number;
  topicID: bigint;
  data: Uint8Array;
  index?: bigint;
  /**
   * The message already encoded and validated (`@msg/wire`'s `Frame`, as
   * `@msg/http` passes it): when given, these bytes are what is published,
   * put into the log as they are (the fields are neither checked nor encoded
   * again); they must encode `type`, `topicID` and `data`. Only the broker's
   * own rule is checked on it (no 0x8000 type bit).
   */
  frame?: Frame;
  /**
   * Exactly-once publish: the producer and this message's sequence. The broker commits each (producer,
   * sequence) once: a sequence committed before is answered with its original index and writes nothing
   * (see `producers.ts`).
   */
  producer?: ProducerSequence;
}

/** The index range {@link Broker.publishBatch} assigned. */
export interface PublishedRange {
  firstIndex: bigint;
  lastIndex: bigint;
  /** Messages with a producer that were committed before: answered with their original indexes. */
  duplicates: number;
  /** Each message's index, when they are not `firstIndex` to `lastIndex` one after another (duplicates answered elsewhere in the log). */
  indexes?: bigint[];
}

/** What applying a produced entry did, for the publish that waits on it: nothing to say when it was accepted. */
type ProducedOutcome = Exclude<ProducerVerdict, { kind: 'new' }> & { producer: ProducerSequence };

/** Outcomes kept for publishes to collect; beyond this the oldest go (a publish collects its own at once). */
const MAX_OUTCOMES = 65_536;

type Waiter = () => void;

const STATE_PREFIX = 'state-';

/**
 * The broker: topics as the state machine of a raft log.
 *
 * Committed command entries are decoded as messages (the original frame
 * encoding) and appended to their topic with the entry's index; topics live
 * in folders named by decimal topic id, created on the first message. The
 * applied index, readers' reported indexes and where every topic's durable
 * data ends are kept in an atomically replaced `meta` file, written only after
 * the topic data it covers is fsynced (see the README's "Durability").
 *
 * Lifecycle: `new Broker(options)` (no I/O), `await open()`, `await close()`
 * (a second close is `BROKER_CLOSED`). Give raft-ts the broker as its
 * `stateMachine`, and the raft node to the broker with {@link attachLog}.
 */
export class Broker implements StateMachine {
  readonly #dir: string;
  readonly #logger: Logger;
  readonly #clock: BrokerClock;
  readonly #maxSegmentSize: number | undefined;
  readonly #checkpointIntervalMs: number;
  readonly #retention: RetentionPolicy;
  readonly #retentionIntervalMs: number;
  readonly #fs: FileSystem;
  /** `#fs` for the topics: a checkpoint fsyncs two of them at a time (see `limitSyncs`). */
  readonly #topicFs: FileSystem;
  #log: BrokerLog | undefined;
  #failure: BrokerStateError | undefined;

  #state: 'new' | 'open' | 'closed' = 'new';
  #stateDir = '';
  #meta: BrokerMeta | undefined;
  #topics = new Map<bigint, Topic>();
  /** Per topic, per reader id (`''`: the anonymous report), the highest index reported. */
  #readers = new Map<bigint, Map<string, bigint>>();
  /** Per topic, when its highest anonymous report was last reported (ms; not persisted). */
  #anonymousAt = new Map<bigint, number>();
  #applied = 0;
  #dirtyTopics = new Set<bigint>();
  #readersDirty = false;
  #newTopics = false;
  #lastCheckpointAt = 0;
  /** The applied index of the last checkpoint started (`meta.appliedIndex` once it is durable). */
  #checkpointedUpTo = 0;
  /** Resolves (never rejects) once every checkpoint started so far is durable or failed. */
  #checkpointsDone: Promise<void> = Promise.resolve();
  /** Snapshot streams being read, which reclamation waits for. */
  readonly #holds = new Set<ReclamationHold>();
  /** A reader report or retention pass found reclamation held: run it when the holds are gone. */
  #reclaimDeferred = false;
  #checkpointTimer: unknown;
  #retentionTimer: unknown;
  #waiters = new Map<bigint, Set<Waiter>>();
  /** Who published what, for exactly-once publish (replicated: in `meta` and snapshots). */
  #producers: ProducerTable;
  readonly #producerLimits: Partial<ProducerLimits>;
  /** Per log index, what a produced entry that was not accepted did (for {@link publish} to answer with). */
  readonly #outcomes = new Map<number, ProducedOutcome>();
  #chain: Promise<unknown> = Promise.resolve();
  readonly #counters: BrokerCounters = {
    messagesPublished: 0,
    bytesPublished: 0,
    messagesApplied: 0,
    bytesApplied: 0,
    readerReports: 0,
    ignored: 0,
    segmentsReclaimed: 0,
    checkpoints: 0,
    duplicates: 0,
    sequenceRefused: 0,
  };
  readonly #fsync = newFsyncStats();
  readonly #readiness: ReadinessBounds;
  /** Per topic: messages applied since open, publish rate, open readers. */
  readonly #topicStats = new Map<bigint, TopicStats>();
  readonly #snapshots = { taken: 0, takenBytes: 0, takenSeconds: 0, restored: 0, restoredBytes: 0, restoredSeconds: 0 };

  constructor(options: BrokerOptions) {
    this.#dir = options.dir;
    this.#log = options.log;
    this.#logger = options.logger ?? silentLogger;
    this.#clock = options.clock ?? realClock;
    this.#maxSegmentSize = options.maxSegmentSize;
    this.#checkpointIntervalMs = options.checkpointIntervalMs ?? 1000;
    this.#retention = options.retention ?? {};
    this.#retentionIntervalMs = options.retentionIntervalMs ?? 60_000;
    this.#fs = options.fs ?? nodeFileSystem;
    this.#producerLimits = options.producers ?? {};
    this.#producers = new ProducerTable(this.#producerLimits);
    this.#topicFs = limitSyncs(this.#fs, TOPIC_SYNC_SLOTS, this.#fsync);
    this.#readiness = { ...DEFAULT_READINESS, ...definedOnly(options.readiness ?? {}) };
  }

  /**
   * The storage failure that failed the broker (`BrokerStateError`
   * `STORAGE_FAILED`, its `cause` the file system's error), or `undefined`.
   * Once set it stays: `apply()` (so raft fails the node), checkpoints,
   * snapshots, restores and retention reject with it, and `meta` is never
   * written again. The process should stop (exit code 74) and restart,
   * recovering from its last checkpoint.
   */
  get failure(): BrokerStateError | undefined {
    return this.#failure;
  }

  /** The data directory. */
  get dir(): string {
    return this.#dir;
  }

  /** Gives the broker the log to publish into (a raft-ts `RaftNode`, usually made after the broker). */
  attachLog(log: BrokerLog): void {
    this.#log = log;
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Opens the data directory: reads `meta`, rolls every topic back to its last
   * checkpoint (data written after it is re-applied from the raft log, so
   * bytes an unsynced write may have mangled are never trusted), removes the
   * leftovers of an interrupted restore, and opens the topics. A topic that
   * holds less than its checkpoint (data lost after its fsync) is
   * `DATA_LOST`. A second open is `ALREADY_OPEN`; after close, `BROKER_CLOSED`.
   */
  async open(): Promise<void> {
    if (this.#state === 'open') throw new BrokerStateError('ALREADY_OPEN', 'broker already open');
    if (this.#state === 'closed') throw new BrokerError('BROKER_CLOSED');
    const fs = this.#fs;
    await fs.mkdir(this.#dir);
    let meta = await readMeta(this.#dir, fs);
    if (!meta) {
      meta = { state: `${STATE_PREFIX}1`, appliedIndex: 0, readers: new Map(), topics: new Map() };
      await fs.removeTree(join(this.#dir, meta.state));
      await fs.mkdir(join(this.#dir, meta.state));
      await fsyncPath(this.#dir, this.#fsync, false, fs);
      await writeMeta(this.#dir, meta, this.#fsync, fs);
    }
    await this.#removeStaleStates(meta.state);
    const stateDir = join(this.#dir, meta.state);
    await fs.mkdir(stateDir);
    await this.#removeUncheckpointedTopics(stateDir, meta.topics);
    const topics = new Map<bigint, Topic>();
    try {
      // Every topic is rolled back to its checkpoint (by the topic, through its own handles).
      for (const id of await listTopicIDs(stateDir, { fs })) {
        const path = join(stateDir, String(id));
        try {
          topics.set(id, await this.#openTopic(stateDir, id, { rollBackTo: meta.topics.get(id)! }));
        } catch (error) {
          if (!isSegmentError(error, 'CORRUPT_SEGMENT')) throw error;
          this.#logger.error('a topic lost data its checkpoint covers', { topicID: id, path, error: describe(error) });
          throw new BrokerStateError('DATA_LOST', `${path}: the data its checkpoint covers is damaged: ${error.message}`, { cause: error });
        }
      }
      for (const [id, cp] of meta.topics) {
        const lastIndex = topics.get(id)?.lastIndex ?? 0n;
        if (lastIndex < cp.lastIndex) {
          const path = join(stateDir, String(id));
          this.#logger.error('a topic lost data its checkpoint covers', { topicID: id, path, lastIndex, checkpointed: cp.lastIndex });
          throw new BrokerStateError('DATA_LOST', `${path}: the topic ends at index ${lastIndex}, its checkpoint at ${cp.lastIndex}`);
        }
      }
    } catch (error) {
      await Promise.allSettled([...topics.values()].map((t) => t.close()));
      throw error;
    }
    this.#stateDir = stateDir;
    this.#meta = meta;
    this.#topics = topics;
    this.#readers = cloneReaders(meta.readers);
    this.#producers = this.#loadProducers(meta.producers, (why) => new BrokerStateError('CORRUPT_META', `corrupt broker metadata: ${why}`));
    this.#applied = meta.appliedIndex;
    this.#checkpointedUpTo = meta.appliedIndex;
    this.#lastCheckpointAt = this.#clock.now();
    this.#state = 'open';
    this.#scheduleRetention();
    this.#logger.info('broker opened', { dir: this.#dir, appliedIndex: this.#applied, topics: topics.size });
  }

  /**
   * Writes a last checkpoint, closes every topic (ending their readers) and
   * wakes readers waiting for a topic. A second close is `BROKER_CLOSED`.
   */
  async close(): Promise<void> {
    if (this.#state !== 'open') throw new BrokerError('BROKER_CLOSED');
    this.#state = 'closed';
    this.#clock.clearTimeout(this.#checkpointTimer);
    this.#clock.clearTimeout(this.#retentionTimer);
    await this.#exclusive(async () => {
      try {
        // A failed broker writes no checkpoint: meta stays where the data was last durable.
        if (!this.#failure) await this.#checkpoint();
      } finally {
        await Promise.allSettled([...this.#topics.values()].map((t) => t.close()));
        this.#topics.clear();
        this.#wakeAll();
      }
    });
    this.#logger.info('broker closed', { dir: this.#dir, appliedIndex: this.#applied });
  }

  /** `await using broker = ...` closes it (ignoring an earlier close). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#state === 'open') await this.close();
  }

  // ---------------------------------------------------------------- publishing

  /**
   * Publishes one message through the log (leader only). Resolves with its
   * index once it is committed and applied here. `message.index` is ignored.
   * A type with the 0x8000 bit is `INVALID_MESSAGE` (those are the broker's
   * own); a follower raises `NOT_LEADER` with `leaderURL`, or `NO_LEADER`.
   * An already aborted `signal` rejects with its reason before anything is
   * appended; once the message is handed to the log it is not withdrawn (raft
   * cannot), so a later abort is ignored.
   */
  async publish(message: PublishMessage, signal?: AbortSignal): Promise<bigint> {
    const log = this.#needLog();
    const data = this.#encodeClientMessage(message);
    signal?.throwIfAborted();
    const known = this.#committedBefore(log, message);
    if (known !== undefined) return known;
    let index: number;
    try {
      index = await log.apply(data);
    } catch (error) {
      throw toBrokerError(error);
    }
    const outcome = this.#collect(index);
    if (outcome instanceof BrokerError) throw outcome;
    this.#counters.messagesPublished++;
    this.#counters.bytesPublished += message.data.byteLength;
    return outcome;
  }

  /**
   * A produced message's original index when this leader has applied its (producer, sequence) already: it is
   * answered without a new entry. `SEQUENCE_TOO_OLD` when it is below the window. `undefined` otherwise (a gap
   * may still be filled by entries in flight: applying decides).
   */
  #committedBefore(log: BrokerLog, message: PublishMessage): bigint | undefined {
    const { producer } = message;
    if (producer === undefined || !log.isLeader()) return undefined;
    const verdict = this.#producers.check(producer.id, producer.seq);
    if (verdict.kind === 'duplicate') {
      this.#counters.duplicates++;
      return verdict.index;
    }
    if (verdict.kind === 'old') throw sequenceError(verdict, producer);
    return undefined;
  }

  /**
   * The sequence producer `id` must publish next, as this broker has applied (on the leader: every committed
   * entry it applied), or `undefined` for a producer the table does not hold (never seen, or forgotten).
   */
  producerNext(id: string): bigint | undefined {
    return this.#producers.next(id);
  }

  /** The index the message of the entry at `index` has: `index` itself, or the original's for a duplicate; a sequence refusal is returned as its error. */
  #collect(index: number): bigint | BrokerError {
    const outcome = this.#outcomes.get(index);
    if (outcome === undefined) return BigInt(index);
    this.#outcomes.delete(index);
    if (outcome.kind === 'duplicate') return outcome.index;
    return sequenceError(outcome, outcome.producer);
  }

  /**
   * Publishes messages at consecutive indexes through one `applyBatch` of the
   * log; resolves with the range once all are committed and applied. An empty
   * list is `INVALID_BATCH`; otherwise like {@link publish} (`signal` too).
   */
  async publishBatch(messages: readonly PublishMessage[], signal?: AbortSignal): Promise<PublishedRange> {
    const log = this.#needLog();
    if (messages.length === 0) throw new BrokerError('INVALID_BATCH', { message: 'invalid batch: no messages' });
    const datas = messages.map((m) => this.#encodeClientMessage(m));
    signal?.throwIfAborted();
    const known = messages.map((m) => this.#committedBefore(log, m));
    if (everyDefined(known)) return rangeOf(known, messages.length);
    let first: number;
    try {
      first = await log.applyBatch(datas);
    } catch (error) {
      throw toBrokerError(error);
    }
    const outcomes = messages.map((_, i) => this.#collect(first + i));
    const refusal = outcomes.find((o) => o instanceof BrokerError);
    if (refusal !== undefined) throw refusal;
    const indexes = outcomes as bigint[];
    this.#counters.messagesPublished += messages.length;
    for (const m of messages) this.#counters.bytesPublished += m.data.byteLength;
    return rangeOf(indexes, indexes.filter((index, i) => index !== BigInt(first + i)).length);
  }

  /**
   * Records, through the log, that reader `readerId` has stored `topicID` up
   * to `index`, and reclaims what every identified reader has passed.
   * `readerId` `''` (the default) is the anonymous report of the original
   * protocol: recorded (the highest, with the leader's time) and shown in
   * {@link status}, but it never reclaims by itself. Resolves once committed
   * and applied. On the leader, an index above the last log index is
   * `INVALID_MESSAGE` (no reader can have it); a
   * follower rejects with `NOT_LEADER` / `NO_LEADER` whatever the index. One
   * above the topic's last index when applied is ignored with a warning. A reader id
   * longer than 255 UTF-8 bytes is `INVALID_MESSAGE`. `signal` as in
   * {@link publish}. (Argument order: `@msg/http`'s `HandlerBroker` passes
   * `(topicID, index, signal, readerId)`.)
   */
  async heartbeat(topicID: bigint, index: bigint, signal?: AbortSignal, readerId = ''): Promise<void> {
    const log = this.#needLog();
    if (!isU64(topicID)) throw new BrokerError('TOPIC_REQUIRED');
    if (!isU64(index)) throw new BrokerError('INDEX_REQUIRED');
    validReaderId(readerId);
    signal?.throwIfAborted();
    // A leader's log holds every committed entry (its commit index may lag
    // just after an election, its last index never does); a follower's log
    // rejects with NOT_LEADER below, whatever the index.
    if (log.isLeader() && index > BigInt(log.lastIndex)) {
      this.#logger.warn('rejected a heartbeat above the last log index', { topicID, index, readerId, lastIndex: log.lastIndex });
      throw new BrokerError('INVALID_MESSAGE', { message: `invalid message: heartbeat index ${index} is above the last log index ${log.lastIndex}` });
    }
    const data = encodeMessage(readerReportMessage({ topicID, index, readerId }, this.#clock.now()));
    try {
      await log.apply(data);
    } catch (error) {
      throw toBrokerError(error);
    }
  }

  /** The log entry of a published message: its frame as given (validated where it was made), else the fields checked and encoded. */
  #encodeClientMessage(publish: PublishMessage): Uint8Array {
    const frame = this.#clientFrame(publish);
    if (publish.producer === undefined) return frame;
    validProducer(publish.producer);
    return encodeProduced(publish.producer, frame, publish.topicID);
  }

  #clientFrame(publish: PublishMessage): Frame {
    const { frame } = publish;
    if (frame !== undefined) {
      // The bytes that enter the log are the ones checked.
      this.#refuseBrokerType(frameType(frame), publish.topicID);
      return frame;
    }
    const message: Message = { type: publish.type, topicID: publish.topicID, index: 0n, data: publish.data };
    assertValidMessage(message);
    this.#refuseBrokerType(message.type, message.topicID);
    return asFrame(encodeMessage(message));
  }

  #refuseBrokerType(type: number, topicID: bigint): void {
    if (!isBrokerMessageType(type)) return;
    this.#logger.warn('rejected a published message with the broker type bit', { type, topicID });
    throw new BrokerError('INVALID_MESSAGE', { message: `invalid message: type ${type} has the broker's 0x8000 bit` });
  }

  #needLog(): BrokerLog {
    if (this.#state !== 'open') throw this.#state === 'closed' ? new BrokerError('BROKER_CLOSED') : new BrokerStateError('NOT_OPEN', 'broker not open');
    if (!this.#log) throw new BrokerStateError('NO_LOG', 'no log attached to the broker');
    return this.#log;
  }

  // ---------------------------------------------------------------- state machine

  /**
   * raft-ts calls this with committed Command entries in log order. Each is
   * decoded as a message and appended to its topic at the entry's index
   * (messages at or below a topic's last index are skipped: re-applying after
   * a crash is idempotent). Malformed entries, internal messages with a bad
   * body or an unknown type, and reports above a topic's last index are
   * ignored with a warning. Only I/O failures throw (raft then stops): a
   * failed write or fsync fails the broker for good (`STORAGE_FAILED`, see
   * {@link Broker.failure}), and every later call rejects with it.
   */
  async apply(entries: readonly LogEntry[], upTo: number): Promise<void> {
    await this.#exclusive(async () => {
      if (this.#state !== 'open') throw new BrokerError('BROKER_CLOSED');
      if (this.#failure) throw this.#failure;
      const pending = new Map<bigint, IndexedFrame[]>();
      const reported = new Set<bigint>();
      const lastIndexOf = (id: bigint): bigint => pending.get(id)?.at(-1)?.index ?? this.#topics.get(id)?.lastIndex ?? 0n;
      for (const entry of entries) {
        if (entry.index <= this.#applied || entry.type !== EntryType.Command) continue;
        const index = BigInt(entry.index);
        // One check of the framing; a client message then goes to its topic as these bytes.
        let frame: Frame;
        try {
          frame = asFrame(entry.data, { maxDataLength: MAX_DATA_LENGTH });
        } catch (error) {
          this.#ignore('ignored a log entry that is not a message', { index, error: describe(error) });
          continue;
        }
        let type = frameType(frame);
        if (type === MessageType.ProducedMessage) {
          const inner = this.#produced(entry.index, frame);
          if (inner === undefined) continue;
          frame = inner;
          type = frameType(frame);
        }
        if (isBrokerMessageType(type)) {
          if (type !== MessageType.SetTopicMaxIndex) {
            this.#ignore('ignored an internal message of unknown type', { index, type });
            continue;
          }
          const message = decodeMessage(frame);
          let report;
          try {
            report = decodeReaderReport(message.data);
          } catch (error) {
            this.#ignore('ignored a SetTopicMaxIndex message with a malformed body', { index, bytes: message.data.byteLength, error: describe(error) });
            continue;
          }
          const last = lastIndexOf(report.topicID);
          if (report.index > last) {
            this.#ignore('ignored a reader report above the topic last index', { index, topicID: report.topicID, reported: report.index, lastIndex: last, readerId: report.readerId });
            continue;
          }
          let byReader = this.#readers.get(report.topicID);
          if (!byReader) this.#readers.set(report.topicID, (byReader = new Map<string, bigint>()));
          const previous = byReader.get(report.readerId);
          if (previous === undefined || report.index > previous) {
            byReader.set(report.readerId, report.index);
            this.#readersDirty = true;
            reported.add(report.topicID);
          }
          if (report.readerId === '' && (previous === undefined || report.index >= previous)) {
            const at = readerReportTime(message);
            if (at === undefined) this.#anonymousAt.delete(report.topicID);
            else this.#anonymousAt.set(report.topicID, at);
          }
          this.#counters.readerReports++;
          continue;
        }
        const topicID = frameTopicID(frame);
        const last = lastIndexOf(topicID);
        if (index <= last) {
          // Re-applied after a crash (the topic already has it), or a topic imported above the log.
          if (entry.index > (this.#meta?.appliedIndex ?? 0)) {
            this.#ignore('ignored a message at or below its topic last index', { index, topicID, lastIndex: last });
          }
          continue;
        }
        let list = pending.get(topicID);
        if (!list) pending.set(topicID, (list = [] as IndexedFrame[]));
        list.push({ index, frame });
      }
      const created: bigint[] = [];
      try {
        for (const [id, messages] of pending) {
          let topic = this.#topics.get(id);
          if (!topic) {
            topic = await this.#openTopic(this.#stateDir, id);
            this.#topics.set(id, topic);
            this.#newTopics = true;
            created.push(id);
          }
          this.#dirtyTopics.add(id);
          await topic.appendFrames(messages);
          this.#counters.messagesApplied += messages.length;
          let bytes = 0;
          for (const m of messages) bytes += m.frame.byteLength - MESSAGE_HEADER_SIZE;
          this.#counters.bytesApplied += bytes;
          this.#statsOf(id).applied(messages.length, bytes, this.#clock.now());
        }
        if (upTo > this.#applied) this.#applied = upTo;
        for (const id of created) this.#wake(id);
        for (const id of reported) await this.#reclaimRead(id);
        if (this.#checkpointIntervalMs === 0 || this.#clock.now() - this.#lastCheckpointAt >= this.#checkpointIntervalMs) {
          const { durable } = await this.#startCheckpoint();
          // Not waited for (but with 0): raft's log holds these entries durably already, and the next apply need not wait for an fsync.
          if (this.#checkpointIntervalMs === 0) await durable;
          else this.#onCheckpointFailure(durable);
        } else {
          this.#scheduleCheckpoint();
        }
      } catch (error) {
        // A failed write or fsync (a topic's WRITE_FAILED, a file system error) fails the broker.
        if (isBrokerError(error) || isBrokerStateError(error)) throw error;
        throw this.#fail(error, 'apply');
      }
    });
  }

  /**
   * Applies the producer table's rule to a produced entry: its message's frame when it is accepted (the
   * table records it), `undefined` when it is a duplicate, refused, or malformed (the outcome is kept for
   * the publish that waits on it).
   */
  #produced(index: number, frame: Frame): Frame | undefined {
    let producer: ProducerSequence;
    let inner: Frame;
    try {
      const decoded = decodeProduced(frameData(frame));
      producer = decoded.producer;
      validProducer(producer);
      inner = asFrame(decoded.frame, { maxDataLength: MAX_DATA_LENGTH });
      if (inner.byteLength !== decoded.frame.byteLength || isBrokerMessageType(frameType(inner))) throw new Error('not one client message');
    } catch (error) {
      this.#ignore('ignored a malformed produced message', { index, error: describe(error) });
      return undefined;
    }
    const verdict = this.#producers.check(producer.id, producer.seq);
    if (verdict.kind === 'new') {
      this.#producers.accept(producer.id, producer.seq, BigInt(index));
      return inner;
    }
    if (verdict.kind === 'duplicate') this.#counters.duplicates++;
    else this.#counters.sequenceRefused++;
    this.#outcomes.set(index, { ...verdict, producer });
    if (this.#outcomes.size > MAX_OUTCOMES) this.#outcomes.delete(this.#outcomes.keys().next().value!);
    return undefined;
  }

  /** A producer table loaded from `json` (of `meta` or a snapshot header; none: empty). */
  #loadProducers(json: unknown, bad: (why: string) => Error): ProducerTable {
    const table = new ProducerTable(this.#producerLimits);
    if (json !== undefined) table.load(json, bad);
    return table;
  }

  /** Highest raft index whose effects are durable (checkpointed); raft re-applies entries after it on open. */
  appliedIndex(): number {
    return this.#meta?.appliedIndex ?? 0;
  }

  /**
   * Starts a checkpoint of the state as of now (raft-ts's `StateMachine.checkpoint`): resolves, once the point
   * is fixed, with the applied index it covers and `durable`, which resolves once every topic written up to it
   * is fsynced and `meta` records it (applies go on meanwhile). raft compacts its log behind it instead of
   * copying every topic into a snapshot. `durable` rejects with the broker's failure if it cannot be made durable.
   */
  async checkpoint(): Promise<{ index: number; durable: Promise<void> }> {
    return this.#exclusive(async () => {
      if (this.#state !== 'open') throw new BrokerError('BROKER_CLOSED');
      const index = this.#applied;
      const { durable } = await this.#startCheckpoint();
      durable.catch(() => undefined); // the caller awaits it; not unhandled before it does
      return { index, durable };
    });
  }

  /**
   * Starts a snapshot of the whole state as of now: checkpoints (so it is the
   * state as of {@link appliedIndex}), then records every segment's size and
   * opens its file. The returned stream (see `snapshot-format.ts`) can be read
   * while later entries are applied: segments are append-only, and an open
   * file stays readable after reclamation deletes it. Read the stream to its
   * end (or stop iterating it): that closes the files.
   */
  async snapshot(): Promise<AsyncIterable<Uint8Array>> {
    return this.#exclusive(async () => {
      if (this.#state !== 'open') throw new BrokerError('BROKER_CLOSED');
      if (this.#failure) throw this.#failure;
      await this.#checkpoint();
      const header: SnapshotHeader = { index: this.#applied, topics: [], readers: cloneReaders(this.#readers), producers: this.#producers.toJSON() };
      const files: SnapshotFile[] = [];
      for (const id of [...this.#topics.keys()].sort(compareBigint)) {
        const segments: SnapshotSegment[] = [];
        for (const info of this.#topics.get(id)!.segments()) {
          // Opened one at a time as the stream is read: what is read is durable (checkpointed just now), segments
          // are append-only and sizes are fixed here; reclamation, which would delete them, waits (see #holdReclamation).
          files.push({ path: info.path, size: info.size });
          segments.push({ index: info.startIndex, size: info.size, name: basename(info.path) });
        }
        header.topics.push({ id, firstIndex: this.#topics.get(id)!.firstIndex, segments });
      }
      this.#logger.info('snapshot started', { index: header.index, topics: header.topics.length, files: files.length });
      const hold = this.#holdReclamation();
      return this.#measured(snapshotStream(encodeSnapshotHeader(header), files, this.#fs, hold), 'taken');
    });
  }

  /**
   * A hold on reclamation for a snapshot stream: while one is held, reader
   * reports and retention passes delete no segment (a stream names files it
   * has not opened yet); the reclamation they would have done runs once the
   * last hold is released. The stream touches its hold as it is read; a
   * hold left untouched for {@link SNAPSHOT_HOLD_MS} no longer counts.
   */
  #holdReclamation(): ReclamationHold {
    let touchedAt = this.#clock.now();
    const hold: ReclamationHold = {
      touch: () => {
        touchedAt = this.#clock.now();
      },
      release: () => {
        if (!this.#holds.delete(hold)) return;
        if (this.#reclamationHeld() || !this.#reclaimDeferred || this.#state !== 'open') return;
        this.#reclaimDeferred = false;
        void this.#exclusive(async () => {
          if (this.#state !== 'open' || this.#failure) return;
          for (const id of this.#topics.keys()) await this.#reclaimRead(id);
        }).catch((error: unknown) => this.#logger.error('deferred reclamation failed', { error: describe(error) }));
        if (this.#retention.maxBytes !== undefined || this.#retention.maxAgeMs !== undefined) {
          this.enforceRetention().catch((error: unknown) => this.#logger.error('retention pass failed', { error: describe(error) }));
        }
      },
      get touchedAt() {
        return touchedAt;
      },
    };
    this.#holds.add(hold);
    return hold;
  }

  /** Whether a snapshot stream, read within the last {@link SNAPSHOT_HOLD_MS}, holds reclamation back. */
  #reclamationHeld(): boolean {
    for (const hold of this.#holds) if (this.#clock.now() - hold.touchedAt > SNAPSHOT_HOLD_MS) this.#holds.delete(hold);
    return this.#holds.size > 0;
  }

  /**
   * Replaces the whole state with a snapshot (ours, or the original broker's
   * format) covering raft index `index`: the segments are written into a
   * fresh state folder and fsynced, its topics opened (validated), and only
   * then is `meta` switched to it atomically. A crash at any point leaves
   * either the old state or the new one. Readers of the old topics end.
   */
  async restore(snapshot: AsyncIterable<Uint8Array>, index: number): Promise<void> {
    await this.#restore(this.#measured(snapshot, 'restored'), index);
  }

  /** `stream` counted into the snapshot numbers of {@link metrics} once it was read to its end. */
  #measured(stream: AsyncIterable<Uint8Array>, kind: 'taken' | 'restored'): AsyncIterable<Uint8Array> {
    const numbers = this.#snapshots;
    return {
      async *[Symbol.asyncIterator]() {
        const started = performance.now();
        let bytes = 0;
        for await (const chunk of stream) {
          bytes += chunk.byteLength;
          yield chunk;
        }
        numbers[kind]++;
        numbers[`${kind}Bytes`] += bytes;
        numbers[`${kind}Seconds`] += (performance.now() - started) / 1000;
      },
    };
  }

  /**
   * Imports a snapshot written by the original broker (or by us), taking the
   * applied index from its header. Resolves with that index. The raft log
   * this broker applies must continue above it (messages at or below a
   * topic's last index are skipped).
   */
  async importSnapshot(snapshot: AsyncIterable<Uint8Array>): Promise<number> {
    return this.#restore(snapshot, 'header');
  }

  /**
   * Imports a data directory written by the original broker (`<dir>/<topicID>/<first index>`
   * raw-frame segment files; its `meta` file is not needed), replacing this
   * broker's state. The applied index becomes the highest message index found;
   * resolves with it. `sourceDir` is only read.
   */
  async importOriginalDir(sourceDir: string): Promise<number> {
    return this.#restore(await originalDirSnapshot(sourceDir, this.#fs), 'max');
  }

  async #restore(snapshot: AsyncIterable<Uint8Array>, index: number | 'header' | 'max'): Promise<number> {
    return this.#exclusive(async () => {
      // A checkpoint still fsyncing would write its meta over the restored one.
      await this.#checkpointsDone;
      if (this.#state !== 'open') throw new BrokerError('BROKER_CLOSED');
      if (this.#failure) throw this.#failure;
      const fs = this.#fs;
      const meta = this.#meta!;
      const generation = /^state-([0-9]{1,15})$/.exec(meta.state)?.[1];
      const next = `${STATE_PREFIX}${generation === undefined ? this.#clock.now() : Number(generation) + 1}`;
      const nextDir = join(this.#dir, next);
      // A failed write or fsync of the new state fails the broker (it is what meta will cover);
      // a malformed stream only fails the restore.
      const storage = async <T>(fn: () => Promise<T>): Promise<T> => {
        try {
          return await fn();
        } catch (error) {
          throw this.#fail(error, 'restore');
        }
      };
      await storage(async () => {
        await fs.removeTree(nextDir);
        await fs.mkdir(nextDir);
      });
      const topics = new Map<bigint, Topic>();
      let header: SnapshotHeader;
      try {
        header = await readSnapshot(snapshot, async (topicID, segment, data) => {
          const topicDir = join(nextDir, String(topicID));
          const path = join(topicDir, segment.name);
          const exists = await storage(async () => {
            await fs.mkdir(topicDir);
            return (await fs.stat(path)) !== undefined;
          });
          if (exists) throw new BrokerStateError('CORRUPT_SNAPSHOT', `snapshot holds segment ${segment.name} of topic ${topicID} twice`);
          const handle = await storage(() => fs.open(path));
          try {
            for await (const chunk of data) await storage(() => handle.append(chunk));
            await storage(() => timed(this.#fsync, () => handle.sync()));
          } finally {
            await handle.close();
          }
        });
        await storage(async () => {
          for (const topic of header.topics) await fsyncPath(join(nextDir, String(topic.id)), this.#fsync, true, fs);
          await fsyncPath(nextDir, this.#fsync, false, fs);
          await fsyncPath(this.#dir, this.#fsync, false, fs);
        });
        for (const topic of header.topics) {
          const opened = await this.#openTopic(nextDir, topic.id);
          topics.set(topic.id, opened);
          // Keep "reclaimed below firstIndex" (the segments' own mark is not part of the stream).
          if (topic.firstIndex !== undefined && topic.firstIndex > opened.firstIndex) await storage(() => opened.reclaimBefore(topic.firstIndex!));
        }
      } catch (error) {
        await Promise.allSettled([...topics.values()].map((t) => t.close()));
        await fs.removeTree(nextDir).catch(() => undefined);
        this.#logger.error('restore failed; the previous state is kept', { error: describe(error) });
        throw error;
      }
      let applied: number;
      if (typeof index === 'number') applied = index;
      else if (index === 'header') applied = header.index;
      else {
        let max = 0n;
        for (const t of topics.values()) if (t.lastIndex > max) max = t.lastIndex;
        applied = Number(max);
      }
      const checkpoints = new Map<bigint, TopicCheckpoint>();
      try {
        for (const [id, topic] of topics) checkpoints.set(id, await storage(() => topic.checkpoint()));
      } catch (error) {
        await Promise.allSettled([...topics.values()].map((t) => t.close()));
        throw error;
      }
      const producers = this.#loadProducers(header.producers, (why) => new BrokerStateError('CORRUPT_SNAPSHOT', `corrupt snapshot: ${why}`));
      const newMeta: BrokerMeta = { state: next, appliedIndex: applied, readers: cloneReaders(header.readers), topics: checkpoints, producers: producers.toJSON() };
      await storage(() => writeMeta(this.#dir, newMeta, this.#fsync, fs));
      const old = this.#topics;
      this.#topics = topics;
      this.#stateDir = nextDir;
      this.#meta = newMeta;
      this.#readers = cloneReaders(header.readers);
      this.#producers = producers;
      this.#outcomes.clear();
      this.#anonymousAt.clear();
      this.#applied = applied;
      this.#checkpointedUpTo = applied;
      this.#dirtyTopics.clear();
      this.#readersDirty = false;
      this.#newTopics = false;
      await Promise.allSettled([...old.values()].map((t) => t.close()));
      await fs.removeTree(join(this.#dir, meta.state));
      for (const id of topics.keys()) this.#wake(id);
      this.#logger.info('snapshot restored', { index: applied, topics: topics.size });
      return applied;
    });
  }

  // ---------------------------------------------------------------- reading

  /**
   * Opens a reader of `topicID` from the first message whose index is at
   * least `fromIndex` (see {@link BrokerTopicReader}). A start below the
   * topic's first retained index rejects with `SEGMENT_RECLAIMED` carrying
   * `firstIndex`, before anything is read.
   */
  async openTopicReader(topicID: bigint, fromIndex: bigint, options: TopicReaderOptions = {}): Promise<BrokerTopicReader> {
    if (this.#state !== 'open') throw this.#state === 'closed' ? new BrokerError('BROKER_CLOSED') : new BrokerStateError('NOT_OPEN', 'broker not open');
    if (!isU64(topicID)) throw new BrokerError('TOPIC_REQUIRED');
    if (!isU64(fromIndex)) throw new BrokerError('INDEX_REQUIRED');
    const streaming = options.streaming ?? false;
    const stats = this.#statsOf(topicID);
    const reader = new CountedTopicReader(
      {
        open: () => (this.#state === 'open' ? this.#topics.get(topicID)?.reader(fromIndex, { streaming }) : undefined),
        created: () => this.#waitForTopic(topicID),
      },
      streaming,
      stats,
    );
    const topic = this.#topics.get(topicID);
    if (topic && topic.lastIndex > 0n && fromIndex < topic.firstIndex) {
      // Data exists at firstIndex >= fromIndex, so the first read returns at once: either it or SEGMENT_RECLAIMED.
      try {
        await reader.prime();
      } catch (error) {
        await reader.close();
        throw error;
      }
    }
    return reader;
  }

  /** The topic's last index (0n when it does not exist). */
  lastIndex(topicID: bigint): bigint {
    return this.#topics.get(topicID)?.lastIndex ?? 0n;
  }

  /** Ids of the topics that exist, ascending. */
  topicIDs(): bigint[] {
    return [...this.#topics.keys()].sort(compareBigint);
  }

  /** True when the attached log says this node leads (false without a log). */
  isLeader(): boolean {
    return this.#log?.isLeader() ?? false;
  }

  /** The leader's URL when known. */
  leaderURL(): string | undefined {
    return this.#log?.leader();
  }

  /** URLs of every member (empty without a log). */
  urls(): string[] {
    return this.#log?.urls() ?? [];
  }

  /**
   * Whether this broker can usefully serve: open, and caught up with the
   * leader's commit index as this node last learned it, within the
   * {@link ReadinessBounds} (in entries and in seconds). A follower that has
   * not heard from the leader for `maxLeaderSilenceElectionTimeouts`
   * election timeouts is not ready, nor a leader that has not heard from a
   * majority of voters for as long. `reason` says which bound failed, with
   * the numbers. A log without `replication()` is compared with its own
   * commit index only.
   */
  ready(): { ready: boolean; reason?: string } {
    if (this.#state !== 'open') return { ready: false, reason: 'broker not open' };
    const log = this.#log;
    if (!log) return { ready: false, reason: 'no log attached' };
    const rep = log.replication?.();
    if (!rep) {
      if (log.leader() === undefined) return { ready: false, reason: 'no leader known' };
      if (this.#applied < log.commitIndex) return { ready: false, reason: `applied index ${this.#applied} behind commit index ${log.commitIndex}` };
      return { ready: true };
    }
    const bounds = this.#readiness;
    const silenceMs = bounds.maxLeaderSilenceElectionTimeouts * rep.electionTimeoutMs;
    const silenceBound = `bound ${silenceMs} ms: ${bounds.maxLeaderSilenceElectionTimeouts} election timeouts of ${rep.electionTimeoutMs} ms`;
    if (rep.role === 'leader') {
      if (rep.quorumContactMs === null) return { ready: false, reason: 'leader has not heard from a majority of voters yet' };
      if (rep.quorumContactMs > silenceMs) return { ready: false, reason: `leader has not heard from a majority of voters for ${rep.quorumContactMs} ms (${silenceBound})` };
    } else {
      if (rep.role !== 'follower' && rep.role !== 'learner') return { ready: false, reason: `raft node is ${rep.role}` };
      if (log.leader() === undefined) return { ready: false, reason: 'no leader known' };
      if (rep.lastLeaderContactMs === null) return { ready: false, reason: 'no message from a leader yet' };
      if (rep.lastLeaderContactMs > silenceMs) return { ready: false, reason: `no message from the leader for ${rep.lastLeaderContactMs} ms (${silenceBound})` };
    }
    const lag = Math.max(0, rep.leaderCommitIndex - this.#applied);
    if (lag > bounds.maxLagEntries) {
      return { ready: false, reason: `applied index ${this.#applied} is ${lag} entries behind the leader's commit index ${rep.leaderCommitIndex} (bound ${bounds.maxLagEntries} entries)` };
    }
    if (lag > 0 && rep.lagSeconds > bounds.maxLagSeconds) {
      return { ready: false, reason: `applied index ${this.#applied} has been behind the leader's commit index ${rep.leaderCommitIndex} for ${rep.lagSeconds} s (bound ${bounds.maxLagSeconds} s)` };
    }
    return { ready: true };
  }

  /** Numbers for a metrics route (bigints for indexes and counters). */
  metrics(): BrokerMetrics {
    const log = this.#log;
    const replication = this.#replicationView();
    return {
      term: BigInt(log?.term ?? 0),
      commitIndex: BigInt(log?.commitIndex ?? 0),
      appliedIndex: BigInt(this.#applied),
      messagesApplied: BigInt(this.#counters.messagesApplied),
      bytesApplied: BigInt(this.#counters.bytesApplied),
      messagesPublished: BigInt(this.#counters.messagesPublished),
      bytesPublished: BigInt(this.#counters.bytesPublished),
      topics: this.topicIDs().map((topicID) => {
        const topic = this.#topics.get(topicID)!;
        const stats = this.#statsOf(topicID);
        const readers = [...(this.#readers.get(topicID) ?? new Map<string, bigint>())].map(([id, index]) => ({ id, index }));
        return { topicID, lastIndex: topic.lastIndex, bytes: topic.size, messagesApplied: stats.messages, bytesApplied: stats.bytes, openStreams: stats.openReaders, readers };
      }),
      checkpointFsync: fsyncHistogram(this.#fsync),
      snapshots: { ...this.#snapshots },
      producers: { held: this.#producers.size, duplicates: this.#counters.duplicates, refused: this.#counters.sequenceRefused, forgotten: this.#producers.forgotten },
      ...(replication.rep === undefined ? {} : { raft: { replication: replication.view, electionTimeoutMs: replication.rep.electionTimeoutMs, stats: log?.stats?.() } }),
    };
  }

  /** Status for the HTTP layer's JSON status route. */
  status(): BrokerStatus {
    const log = this.#log;
    const now = this.#clock.now();
    return {
      isLeader: log?.isLeader() ?? false,
      leader: log?.leader(),
      members: log?.urls() ?? [],
      term: log?.term ?? 0,
      commitIndex: log?.commitIndex ?? 0,
      appliedIndex: this.#applied,
      durableIndex: this.appliedIndex(),
      topics: this.topicIDs().map((id) => {
        const topic = this.#topics.get(id)!;
        const stats = this.#statsOf(id);
        return {
          id,
          firstIndex: topic.firstIndex,
          lastIndex: topic.lastIndex,
          bytes: topic.size,
          segments: topic.segments().length,
          ...this.#readersStatus(id),
          messages: stats.messages,
          publishRate: stats.rate(now),
          openStreams: stats.openReaders,
        };
      }),
      counters: { ...this.#counters },
      fsync: { ...this.#fsync, bucketCounts: [...this.#fsync.bucketCounts] },
      replication: this.#replicationView().view,
    };
  }

  /** The log's replication status (when it reports one) and the {@link ReplicationView} of it, lag counted against this broker's applied index. */
  #replicationView(): { rep: ReplicationStatus | undefined; view: ReplicationView } {
    const log = this.#log;
    const rep = log?.replication?.();
    if (!rep) {
      const commit = log?.commitIndex ?? 0;
      const role = log === undefined ? 'none' : log.isLeader() ? 'leader' : 'follower';
      return { rep, view: { role, leaderCommitIndex: commit, lagEntries: Math.max(0, commit - this.#applied), lagSeconds: 0, lastLeaderContactMs: role === 'leader' ? 0 : null, followers: [] } };
    }
    return {
      rep,
      view: {
        role: rep.role,
        leaderCommitIndex: rep.leaderCommitIndex,
        lagEntries: Math.max(0, rep.leaderCommitIndex - this.#applied),
        lagSeconds: rep.lagSeconds,
        lastLeaderContactMs: rep.lastLeaderContactMs,
        followers: rep.followers.map((f) => ({ url: f.url, matchIndex: f.matchIndex, lagEntries: f.lagEntries, lagSeconds: f.lagSeconds, lastContactMs: f.lastContactMs, snapshot: f.snapshot === null ? null : { ...f.snapshot } })),
      },
    };
  }

  /** The in-memory numbers of topic `id` (made on first use). */
  #statsOf(id: bigint): TopicStats {
    let stats = this.#topicStats.get(id);
    if (!stats) this.#topicStats.set(id, (stats = new TopicStats()));
    return stats;
  }

  // ---------------------------------------------------------------- reclamation

  /**
   * Runs a retention pass now (it also runs every `retentionIntervalMs`):
   * every topic drops its oldest segments beyond the retention policy (never
   * the active one). Resolves with the number of segments deleted.
   */
  async enforceRetention(): Promise<number> {
    return this.#exclusive(async () => {
      if (this.#state !== 'open') throw new BrokerError('BROKER_CLOSED');
      if (this.#failure) throw this.#failure;
      const { maxBytes, maxAgeMs } = this.#retention;
      if (maxBytes === undefined && maxAgeMs === undefined) return 0;
      if (this.#reclamationHeld()) {
        this.#reclaimDeferred = true;
        return 0;
      }
      // Checkpoint first, so that a roll-back on open never reaches behind a reclamation.
      await this.#checkpoint();
      let deleted = 0;
      for (const [id, topic] of this.#topics) {
        let n: number;
        try {
          n = await topic.enforceRetention({ ...(maxBytes === undefined ? {} : { maxBytes }), ...(maxAgeMs === undefined ? {} : { maxAgeMs }) });
        } catch (error) {
          // The reclaim mark or the folder could not be made durable: the topic's state is uncertain.
          throw this.#fail(error, 'retention');
        }
        if (n > 0) this.#logger.info('retention reclaimed segments', { topicID: id, segments: n, firstIndex: topic.firstIndex });
        deleted += n;
      }
      this.#counters.segmentsReclaimed += deleted;
      return deleted;
    });
  }

  #readersStatus(topicID: bigint): Pick<TopicStatus, 'readers' | 'anonymous'> {
    const byReader = this.#readers.get(topicID) ?? new Map<string, bigint>();
    const readers = [...byReader].filter(([rid]) => rid !== '').map(([rid, index]) => ({ id: rid, index }));
    const anonymous = byReader.get('');
    if (anonymous === undefined) return { readers };
    const atMs = this.#anonymousAt.get(topicID);
    return { readers, anonymous: atMs === undefined ? { index: anonymous } : { index: anonymous, atMs } };
  }

  /**
   * Reclaims the segments every identified reader of the topic has passed,
   * and the anonymous report too when there is one (it holds back, never
   * drives: without an identified reader nothing is reclaimed).
   */
  async #reclaimRead(topicID: bigint): Promise<void> {
    const topic = this.#topics.get(topicID);
    const byReader = this.#readers.get(topicID);
    if (!topic || !byReader || ![...byReader.keys()].some((rid) => rid !== '')) return;
    if (this.#reclamationHeld()) {
      this.#reclaimDeferred = true;
      return;
    }
    let min: bigint | undefined;
    for (const index of byReader.values()) if (min === undefined || index < min) min = index;
    const segments = topic.segments();
    if (!segments.slice(0, -1).some((s) => s.lastIndex <= min!)) return;
    // Checkpoint first, so that a roll-back on open never reaches behind a reclamation.
    await this.#checkpoint();
    const n = await topic.reclaimBefore(min! + 1n);
    if (n > 0) {
      this.#counters.segmentsReclaimed += n;
      this.#logger.info('reclaimed segments every reader has stored', { topicID, segments: n, firstIndex: topic.firstIndex });
    }
  }

  #scheduleRetention(): void {
    if (this.#retention.maxBytes === undefined && this.#retention.maxAgeMs === undefined) return;
    this.#retentionTimer = this.#clock.setTimeout(() => {
      if (this.#state !== 'open') return;
      this.enforceRetention().then(
        () => this.#scheduleRetention(),
        (error: unknown) => {
          if (this.#state === 'open') this.#logger.error('retention pass failed', { error: describe(error) });
          if (!this.#failure) this.#scheduleRetention();
        },
      );
    }, this.#retentionIntervalMs);
  }

  // ---------------------------------------------------------------- internals

  #scheduleCheckpoint(): void {
    if (this.#checkpointTimer !== undefined) return;
    this.#checkpointTimer = this.#clock.setTimeout(() => {
      this.#checkpointTimer = undefined;
      if (this.#state !== 'open') return;
      let durable: Promise<void> | undefined;
      const started = this.#exclusive(async () => {
        if (this.#state === 'open' && !this.#failure) durable = (await this.#startCheckpoint()).durable;
      });
      this.#onCheckpointFailure(started.then(() => durable));
    }, this.#checkpointIntervalMs);
  }

  /** Logs the failure of a checkpoint nobody waits for (it failed the broker, for good: never retried; the error says so). */
  #onCheckpointFailure(checkpoint: Promise<void>): void {
    checkpoint.catch((error: unknown) => {
      this.#logger.error('checkpoint failed', { error: describe(error) });
    });
  }

  /**
   * Makes the applied state durable: each topic written since the last
   * checkpoint fsyncs what it wrote (`Topic.checkpoint()`, through its own
   * handles) and says where its durable data ends; then `meta` is rewritten.
   * Any failure fails the broker for good, before `meta` is written.
   */
  async #checkpoint(): Promise<void> {
    await (await this.#startCheckpoint()).durable;
  }

  /**
   * {@link Broker.#checkpoint} in two steps, for a caller inside `#exclusive`
   * (no apply under way): resolves once the state as of now is fixed (the
   * applied index, the readers, and each written topic's point, taken by
   * `Topic.startCheckpoint()`: no fsync waited for); its `durable` resolves
   * once those topics are fsynced and `meta` records them, after the
   * checkpoint before it. Applies go on meanwhile. Any failure fails the
   * broker for good, before `meta` is written.
   */
  async #startCheckpoint(): Promise<{ durable: Promise<void> }> {
    if (this.#failure) throw this.#failure;
    if (this.#applied === this.#checkpointedUpTo && !this.#readersDirty && this.#dirtyTopics.size === 0) {
      // Nothing new: the state as of now is the one a checkpoint under way records (or recorded). It must not pass
      // for durable when that checkpoint failed.
      return {
        durable: this.#checkpointsDone.then(() => {
          if (this.#failure) throw this.#failure;
        }),
      };
    }
    const applied = this.#applied;
    const readers = cloneReaders(this.#readers);
    const producers = this.#producers.toJSON();
    const dirty = this.#dirtyTopics;
    const newTopics = this.#newTopics;
    const ids = [...this.#topics.keys()];
    this.#dirtyTopics = new Set();
    this.#readersDirty = false;
    this.#newTopics = false;
    this.#checkpointedUpTo = applied;
    this.#lastCheckpointAt = this.#clock.now();
    let points: Map<bigint, Promise<TopicCheckpoint>>;
    try {
      const starts = [...dirty].map(async (id) => {
        const { durable } = await this.#topics.get(id)!.startCheckpoint();
        durable.catch(() => undefined); // awaited below, after the previous checkpoint: not unhandled meanwhile
        return [id, durable] as const;
      });
      points = new Map(await Promise.all(starts));
    } catch (error) {
      throw this.#fail(error, 'checkpoint');
    }
    const previous = this.#checkpointsDone;
    const durable = (async () => {
      await previous;
      if (this.#failure) throw this.#failure;
      try {
        const meta = this.#meta!;
        const topics = new Map<bigint, TopicCheckpoint>();
        for (const id of ids) {
          const point = points.get(id);
          const recorded = point === undefined ? meta.topics.get(id) : await point;
          // Every topic is written (dirty) before a checkpoint records it; one recorded nowhere would be deleted on open.
          if (recorded === undefined) throw new Error(`topic ${id} has no checkpoint to record`);
          topics.set(id, recorded);
        }
        if (newTopics) await fsyncPath(this.#stateDir, this.#fsync, false, this.#fs);
        const next: BrokerMeta = { state: meta.state, appliedIndex: applied, readers, topics, producers };
        await writeMeta(this.#dir, next, this.#fsync, this.#fs);
        this.#meta = next;
      } catch (error) {
        throw this.#fail(error, 'checkpoint');
      }
      this.#counters.checkpoints++;
    })();
    this.#checkpointsDone = durable.then(
      () => undefined,
      () => undefined,
    );
    return { durable };
  }


  /**
   * Fails the broker for good (see {@link Broker.failure}) with the first
   * storage error; later calls return that same failure.
   */
  #fail(error: unknown, during: string): BrokerStateError {
    if (isBrokerStateError(error, 'STORAGE_FAILED')) return error;
    if (!this.#failure) {
      this.#failure = new BrokerStateError('STORAGE_FAILED', `storage failed during ${during}: ${describe(error)}`, { cause: error });
      this.#clock.clearTimeout(this.#checkpointTimer);
      this.#checkpointTimer = undefined;
      this.#logger.error('storage failed: the broker stops applying and checkpointing', { during, error: describe(error) });
    }
    return this.#failure;
  }

  async #openTopic(stateDir: string, id: bigint, open: TopicOpenOptions = {}): Promise<Topic> {
    const topic = new Topic(join(stateDir, String(id)), {
      sync: 'never',
      ...(this.#maxSegmentSize === undefined ? {} : { maxSegmentSize: this.#maxSegmentSize }),
      clock: this.#clock,
      fs: this.#topicFs,
      onRecovery: (event: RecoveryEvent) =>
        event.kind === 'rolled-back'
          ? this.#logger.info('rolled a segment back to the last checkpoint', { topicID: id, ...event })
          : this.#logger.warn('topic recovered a torn tail', { topicID: id, ...event }),
    });
    await topic.open(open);
    return topic;
  }

  /**
   * Removes the topics created after the checkpoint (not in `meta`): raft
   * applies their messages again. The others are rolled back to their
   * checkpoint when opened (`Topic.open({ rollBackTo })`).
   */
  async #removeUncheckpointedTopics(stateDir: string, checkpoints: Map<bigint, TopicCheckpoint>): Promise<void> {
    let removed = false;
    for (const id of await listTopicIDs(stateDir, { fs: this.#fs })) {
      if (checkpoints.has(id)) continue;
      this.#logger.info('removing a topic created after the last checkpoint', { topicID: id });
      await this.#fs.removeTree(join(stateDir, String(id)));
      removed = true;
    }
    if (removed) await fsyncPath(stateDir, this.#fsync, false, this.#fs);
  }

  async #removeStaleStates(live: string): Promise<void> {
    for (const name of await this.#fs.list(this.#dir)) {
      if (name !== live && (name.startsWith(STATE_PREFIX) || name === '.meta.tmp')) {
        this.#logger.info('removing a stale state folder', { name });
        await this.#fs.removeTree(join(this.#dir, name));
      }
    }
  }

  #waitForTopic(topicID: bigint): { promise: Promise<void>; cancel(): void } {
    let waiter: Waiter = () => undefined;
    const promise = new Promise<void>((resolve) => {
      waiter = resolve;
    });
    if (this.#state !== 'open' || this.#topics.has(topicID)) {
      waiter();
      return { promise, cancel: () => undefined };
    }
    let set = this.#waiters.get(topicID);
    if (!set) this.#waiters.set(topicID, (set = new Set()));
    set.add(waiter);
    const cancel = (): void => {
      set.delete(waiter);
      if (set.size === 0 && this.#waiters.get(topicID) === set) this.#waiters.delete(topicID);
      waiter();
    };
    return { promise, cancel };
  }

  #wake(topicID: bigint): void {
    const set = this.#waiters.get(topicID);
    if (!set) return;
    this.#waiters.delete(topicID);
    for (const waiter of set) waiter();
  }

  #wakeAll(): void {
    for (const id of [...this.#waiters.keys()]) this.#wake(id);
  }

  #ignore(msg: string, fields: Record<string, unknown>): void {
    this.#counters.ignored++;
    this.#logger.warn(msg, fields);
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn, fn);
    this.#chain = run.catch(() => undefined);
    return run;
  }
}

const realClock: BrokerClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout> | undefined),
};

function toBrokerError(error: unknown): unknown {
  if (isBrokerError(error)) return error;
  if (isRaftError(error)) {
    switch (error.code) {
      case 'NOT_LEADER':
        return error.leaderURL === undefined
          ? new BrokerError('NO_LEADER', { cause: error })
          : new BrokerError('NOT_LEADER', { cause: error, details: { leaderURL: error.leaderURL } });
      case 'NO_LEADER':
        return new BrokerError('NO_LEADER', { cause: error });
      case 'CLOSED':
        return new BrokerError('BROKER_CLOSED', { cause: error });
      case 'LEADERSHIP_LOST':
        // In the log, not applied: another leader may still commit it. Never "unavailable", which says nothing was written.
        return new BrokerError('OUTCOME_UNKNOWN', { message: `outcome unknown: ${error.message}`, cause: error });
      case 'UNREACHABLE':
        return new BrokerError('UNAVAILABLE', { message: `unavailable: ${error.message}`, cause: error });
      default:
        return new BrokerError('INTERNAL', { message: `internal error: ${error.message}`, cause: error });
    }
  }
  return error;
}

function cloneReaders(readers: Map<bigint, Map<string, bigint>>): Map<bigint, Map<string, bigint>> {
  return new Map([...readers].map(([id, byReader]) => [id, new Map(byReader)]));
}

function everyDefined<T>(values: (T | undefined)[]): values is T[] {
  return values.every((value) => value !== undefined);
}

/** The range of a batch's `indexes` (`indexes` itself only when they are not consecutive). */
function rangeOf(indexes: bigint[], duplicates: number): PublishedRange {
  const firstIndex = indexes[0]!;
  const lastIndex = indexes.at(-1)!;
  const consecutive = indexes.every((index, i) => index === firstIndex + BigInt(i));
  return consecutive ? { firstIndex, lastIndex, duplicates } : { firstIndex, lastIndex, duplicates, indexes };
}

function compareBigint(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function describe(error: unknown): string {
  if (error instanceof Error) return 'code' in error ? `${String(error.code)}: ${error.message}` : error.message;
  return String(error);
}

const CHUNK = 1024 * 1024;

/** Topic fsyncs of a checkpoint run at most this many at a time: the rest of Node's thread pool stays free for the raft log. */
const TOPIC_SYNC_SLOTS = 2;

/**
 * How long a snapshot stream that nobody reads holds reclamation back, ms: a
 * stream read on is waited for however long it takes; one abandoned unread
 * (its consumer failed before reading) stops holding after this long.
 */
export const SNAPSHOT_HOLD_MS = 30_000;

/** A segment file a snapshot stream copies: its first `size` bytes. */
interface SnapshotFile {
  path: string;
  size: number;
}

/** What a snapshot stream holds while it is read: see `Broker.#holdReclamation`. */
interface ReclamationHold {
  readonly touchedAt: number;
  touch(): void;
  release(): void;
}

/** The header, then each file's first `size` bytes; one file open at a time, each opened when it is reached. */
async function* snapshotStream(header: Uint8Array, files: readonly SnapshotFile[], fs: FileSystem, hold?: ReclamationHold): AsyncGenerator<Uint8Array, void, undefined> {
  try {
    yield header;
    for (const { path, size } of files) {
      hold?.touch();
      let handle: FileHandle;
      try {
        handle = await fs.open(path, { readOnly: true });
      } catch (error) {
        throw new BrokerStateError('CORRUPT_SNAPSHOT', `segment file ${path} of the snapshot cannot be read: ${describe(error)}`, { cause: error });
      }
      try {
        let position = 0;
        while (position < size) {
          const bytes = await handle.read(position, Math.min(CHUNK, size - position));
          if (bytes.byteLength === 0) throw new BrokerStateError('CORRUPT_SNAPSHOT', `segment file ${path} shorter than its recorded size ${size}`);
          position += bytes.byteLength;
          hold?.touch();
          yield bytes;
        }
      } finally {
        await handle.close();
      }
    }
  } finally {
    hold?.release();
  }
}

/** A snapshot stream (original format) of an original broker's data directory. */
async function originalDirSnapshot(sourceDir: string, fs: FileSystem): Promise<AsyncIterable<Uint8Array>> {
  const header: SnapshotHeader = { index: 0, topics: [], readers: new Map() };
  const paths: { path: string; size: number }[] = [];
  for (const id of await listTopicIDs(sourceDir, { fs })) {
    const topicDir = join(sourceDir, String(id));
    const segments: SnapshotSegment[] = [];
    const names = (await fs.list(topicDir)).filter((n) => /^[0-9]{1,20}$/.test(n) && isU64(BigInt(n)));
    names.sort((a, b) => compareBigint(BigInt(a), BigInt(b)));
    for (const name of names) {
      const path = join(topicDir, name);
      const stats = await fs.stat(path);
      if (stats === undefined || stats.isDirectory) continue;
      const size = stats.size;
      segments.push({ index: BigInt(name), size, name });
      paths.push({ path, size });
    }
    header.topics.push({ id, segments });
  }
  return snapshotStream(encodeSnapshotHeader(header), paths, fs);
}

/** `value` without its `undefined` properties (so that they do not override defaults). */
function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A topic reader counted in its topic's open readers until it is closed (or ends). */
class CountedTopicReader extends BrokerTopicReader {
  #stats: TopicStats | undefined;

  constructor(source: ReaderSource, streaming: boolean, stats: TopicStats) {
    super(source, streaming);
    stats.openReaders++;
    this.#stats = stats;
  }

  override async close(): Promise<void> {
    if (this.#stats) {
      this.#stats.openReaders--;
      this.#stats = undefined;
    }
    await super.close();
  }
}
