import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Frame } from '@msg/wire';

/**
 * A message to publish: what a producer chooses. The broker assigns the index.
 */
export interface PublishMessage {
  /** Message type, 0..65535. */
  type: number;
  /** Topic id, 0..2^64-1. */
  topicID: bigint;
  /** The payload (never empty when it comes from this handler). */
  data: Uint8Array;
  /**
   * The message as one frame (`@msg/wire`'s encoding: the 22-byte header
   * with index field 0, then `data`), as this handler validated it: for a
   * batch, a view of the frame in the request body; for a single publish,
   * encoded once from the query and the body. Always set by this handler. A
   * broker can put these bytes into its log as they are instead of encoding
   * the fields again; one that ignores it loses nothing. Do not modify it.
   */
  frame?: Frame;
  /**
   * Exactly-once publish: from the request's `X-Broker-Producer-Id` and `X-Broker-Producer-Seq` headers (a
   * batch's message `i` gets the header's sequence plus `i`). `id` is the producer id prefixed with the
   * authenticated identity and `/` when there is one. Absent without the headers.
   */
  producer?: { id: string; seq: bigint };
}

/** The index range a batch of messages was committed at. */
export interface IndexRange {
  /** Index of the first message of the batch. */
  firstIndex: bigint;
  /** Index of the last message; `lastIndex - firstIndex + 1` equals the batch length unless {@link indexes} is given. */
  lastIndex: bigint;
  /** Messages with a producer that were committed before (answered with their original indexes). */
  duplicates?: number;
  /** Each message's index, when they are not consecutive (some were committed before, elsewhere in the log). */
  indexes?: readonly bigint[];
}

/**
 * The frames of one topic, from a start index on: encoded messages (the
 * original's 22-byte-header encoding, see `@msg/wire`) back to back, cut into
 * chunks anywhere the broker likes (a chunk may hold many frames; the handler
 * sends the bytes unchanged and never parses them).
 *
 * Non-streaming readers end at the current end of the topic (an unknown topic
 * ends at once). Streaming readers wait for new messages and never end on
 * their own.
 *
 * The handler pulls one chunk at a time and pulls the next only once the
 * previous one has been handed to the socket (backpressure): a reader must
 * not read ahead without bound on its own.
 */
export interface TopicFrames extends AsyncIterable<Uint8Array> {
  /**
   * Releases the reader (file handles, subscriptions). Called exactly once
   * per reader, when the response ends or the client goes away. A pending
   * `next()` should then settle with `{ done: true }`; the handler does not
   * rely on it and stops waiting either way.
   */
  close(): void | Promise<void>;
  /**
   * Optional: takes back a chunk this reader yielded, once the response is
   * done with its bytes (from the chunk's write callback; never for a write
   * that failed). The reader may then read later chunks into its memory
   * instead of allocating new ones.
   */
  release?(chunk: Uint8Array): void;
}

/** Options of {@link HandlerBroker.openTopicReader}. */
export interface TopicReaderOptions {
  /** Keep the reader open and yield new messages as they are committed. */
  streaming: boolean;
}

/** Whether the broker can usefully serve traffic. */
export interface Readiness {
  /** True when a leader is known and this broker has caught up. */
  ready: boolean;
  /** Why not, when not ready (human readable). */
  reason?: string;
}

/** Per-topic numbers of {@link BrokerMetrics}; the optional ones are left out of the output when absent. */
export interface TopicMetrics {
  topicID: bigint;
  /** Index of the last message stored in the topic (0 when empty). */
  lastIndex: bigint;
  /** Bytes the topic takes on disk. */
  bytes: number;
  /** Counter: messages applied to the topic since the broker started. */
  messagesApplied?: number;
  /** Counter: data bytes applied to the topic since the broker started. */
  bytesApplied?: number;
  /** Readers of the topic open now. */
  openStreams?: number;
  /** Readers' reported indexes (`id` `''`: the anonymous report). */
  readers?: readonly { readonly id: string; readonly index: bigint }[];
}

/** One follower as the leader sees it, in {@link RaftMetrics}. */
export interface FollowerMetrics {
  /** The follower's URL. */
  url: string;
  /** Highest raft index known replicated on it. */
  matchIndex: number;
  /** Committed entries it lacks. */
  lagEntries: number;
  /** Seconds since the leader committed the first entry it lacks (0 when none). */
  lagSeconds: number;
  /** Milliseconds since it last answered, `null` when it has not yet. */
  lastContactMs: number | null;
  /** The snapshot being sent to it, `null` when none is. */
  snapshot: { sentBytes: number; totalBytes: number } | null;
}

/** Counters and latency histograms of the raft node (raft-ts's `RaftStats`), in {@link RaftMetrics}. */
export interface RaftCounters {
  /** Latency of the raft log's fsyncs. */
  logFsync: HistogramSnapshot;
  /** Leader: time from appending proposed entries to their commit. */
  commitLatency: HistogramSnapshot;
  /** Leader: time each snapshot sent in full took. */
  snapshotSendDuration: HistogramSnapshot;
  electionsStarted: number;
  leaderChanges: number;
  snapshotsSent: number;
  snapshotBytesSent: number;
}

/** Replication lag and raft counters, in {@link BrokerMetrics}. */
export interface RaftMetrics {
  replication: {
    /** The raft role (`leader`, `follower`, ...). */
    role: string;
    /** On a follower the leader's commit index as last received; on the leader its own. */
    leaderCommitIndex: number;
    /** Entries this node has yet to apply of what the leader committed. */
    lagEntries: number;
    /** Seconds this node's applied index has been behind the leader's commit index. */
    lagSeconds: number;
    /** Milliseconds since the last message from the leader (0 on the leader), `null` when none came. */
    lastLeaderContactMs: number | null;
    /** Leader only: its followers. */
    followers: readonly FollowerMetrics[];
  };
  /** The node's counters and histograms, when it reports them. */
  stats?: RaftCounters | undefined;
}

/**
 * A latency histogram with cumulative buckets, as Prometheus exposes one.
 * Bucket bounds are in seconds, ascending; counts are cumulative (the count
 * of observations `<= le`); `count` and `sumSeconds` cover every observation.
 */
export interface HistogramSnapshot {
  buckets: readonly { le: number; count: number }[];
  count: number;
  sumSeconds: number;
}

/**
 * What the broker reports for `GET /metrics`: a snapshot read synchronously
 * from memory. Every field but `term`, `commitIndex`, `appliedIndex` and
 * `topics` is optional and left out of the output when absent.
 */
export interface BrokerMetrics {
  /** Current raft term. */
  term: bigint;
  /** Highest raft log index known committed. */
  commitIndex: bigint;
  /** Highest raft log index applied to the topics. */
  appliedIndex: bigint;
  /** Counter: messages applied to topics since the process started. */
  messagesApplied?: bigint;
  /** Counter: data bytes applied to topics since the process started. */
  bytesApplied?: bigint;
  /** One entry per topic. */
  topics: readonly TopicMetrics[];
  /**
   * Latency of the broker's checkpoint fsyncs (topic segments and its own
   * metadata; not the raft log's): `msg_broker_checkpoint_fsync_duration_seconds`.
   */
  checkpointFsync?: HistogramSnapshot;
  /**
   * @deprecated The old name of {@link checkpointFsync} (it was shown as
   * `msg_fsync_duration_seconds`, "log fsyncs", which it never measured);
   * rendered as `checkpointFsync` when that is absent.
   */
  fsync?: HistogramSnapshot;
  /** Counters of the broker's snapshots: taken (streamed for raft) and restored, their bytes and seconds. */
  snapshots?: { taken: number; takenBytes: number; takenSeconds: number; restored: number; restoredBytes: number; restoredSeconds: number };
  /** Replication lag and the raft node's counters. */
  raft?: RaftMetrics;
  /** The producer table of exactly-once publish: producers held, and counters since the process started. */
  producers?: { held: number; duplicates: number; refused: number; forgotten: number };
}

/**
 * A node listener for the raft transport: `(req, res)` as `http.createServer`
 * takes. Mounted under `/raft` the express way: it sees `req.url` relative to
 * the mount point (`/raft/append` arrives as `/append`; `req.originalUrl`
 * keeps the full path).
 */
export type RaftListener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The broker as the HTTP handler sees it: the narrow interface this package
 * needs (the consumer owns it). `@msg/broker` implements it; tests use plain
 * objects.
 *
 * Errors: a method that fails with a `BrokerError` (from `@msg/wire`) gets
 * that error's status, `X-Broker-Error` text and code; any other error is a
 * 500 `INTERNAL` (logged, its details never sent).
 */
export interface HandlerBroker {
  /** True when this broker is the raft leader (publishes are accepted here). */
  isLeader(): boolean;
  /**
   * Base URL of the current leader (`http://host:port`), when one is known;
   * `undefined` otherwise. Only its scheme and host are used, for 307
   * redirects.
   */
  leaderURL(): string | undefined;
  /** Base URLs of every broker of the cluster (the ping answer). */
  urls(): readonly string[];
  /**
   * Publishes one message; resolves with its index once it is committed on a
   * majority and applied. Rejects with `NOT_LEADER` only when the message was
   * certainly not appended (the handler then redirects to the leader). The
   * signal aborts when the client goes away: the broker may stop waiting, and
   * the outcome is then unknown to the client.
   */
  publish(message: PublishMessage, signal?: AbortSignal): Promise<bigint>;
  /**
   * Publishes messages atomically, in order, at consecutive indexes; resolves
   * once all are committed and applied. Same error rules as `publish`.
   */
  publishBatch(messages: readonly PublishMessage[], signal?: AbortSignal): Promise<IndexRange>;
  /**
   * Records (through raft, as a `SetTopicMaxIndex` message) that a reader has
   * stored `topicID` up to `index`. Resolves once committed. `readerId` is the
   * optional `readerID` query parameter (ours; `undefined` when absent, as
   * from every client of the original): which reader reports, so the broker
   * can keep one index per reader. The broker validates it (e.g.
   * `INVALID_MESSAGE` when too long).
   */
  heartbeat(topicID: bigint, index: bigint, signal?: AbortSignal, readerId?: string): Promise<void>;
  /**
   * Opens a reader of `topicID` from the first message whose index is
   * `>= fromIndex`. Throws (or rejects) before yielding anything when it
   * cannot start, e.g. `SEGMENT_RECLAIMED` with `firstIndex` when `fromIndex`
   * is below the first retained index; the client then gets that error as
   * the HTTP status. An unknown topic is not an error: the reader yields
   * nothing (and, streaming, waits for the topic's first message).
   */
  openTopicReader(topicID: bigint, fromIndex: bigint, options: TopicReaderOptions): TopicFrames | Promise<TopicFrames>;
  /** Readiness for `GET /ready`. */
  ready(): Readiness;
  /**
   * Broker-specific status for `GET /status` (members, topics ...): a plain
   * object whose own properties are merged into the answer. Must be
   * JSON-serialisable; bigint values are sent as decimal strings.
   */
  status(): object;
  /** Numbers for `GET /metrics`. */
  metrics(): BrokerMetrics;
  /**
   * Optional (without it `GET /messaging/producers` is 404): the sequence producer `id` (as in
   * {@link PublishMessage.producer}) must send next, or `undefined` for a producer the broker does not hold.
   */
  producerNext?(id: string): bigint | undefined;
  /** The raft transport's listener, mounted under `/raft` when present. */
  raftHandler?: RaftListener;
}
