import type { RaftStats, ReplicationStatus } from 'raft-ts';

/**
 * The replicated log the broker publishes into and is applied from: the
 * narrow part of raft-ts's `RaftNode` the broker uses (a `RaftNode`
 * satisfies it as is). Tests use a few-line in-process fake.
 */
export interface BrokerLog {
  /**
   * Appends one entry; resolves with its index once it is committed and
   * applied to the state machine (this broker). Rejects with raft-ts's
   * `RaftError` (`NOT_LEADER` with `leaderURL`, `NO_LEADER`, ...).
   */
  apply(data: Uint8Array): Promise<number>;
  /** Appends entries at consecutive indexes; resolves with the first index once all are committed and applied. */
  applyBatch(datas: Uint8Array[]): Promise<number>;
  /** True when this node is the leader. */
  isLeader(): boolean;
  /** The leader's URL, when known. */
  leader(): string | undefined;
  /** URLs of every member of the cluster. */
  urls(): string[];
  /** The current term. */
  readonly term: number;
  /** Highest index known to be committed. */
  readonly commitIndex: number;
  /**
   * Index of the last entry in the log, committed or not. On a leader it is
   * at least every index ever committed (a new leader's commit index may lag
   * behind for a moment; this never does).
   */
  readonly lastIndex: number;
  /**
   * Optional: how far this node is behind the leader's commit index as it
   * last learned it, and on the leader each follower's lag (raft-ts's
   * `RaftNode.replication()`). Without it, readiness compares the applied
   * index with {@link commitIndex} only, and status and metrics show no lag.
   */
  replication?(): ReplicationStatus;
  /** Optional: the log's counters and latency histograms (raft-ts's `RaftNode.stats()`), shown in metrics. */
  stats?(): RaftStats;
}
