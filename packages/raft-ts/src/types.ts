/**
 * The vocabulary of raft-ts: log entries, cluster configuration and the RPCs
 * nodes exchange. Indexes and terms are JavaScript numbers, always safe
 * integers (>= 0; index 0 means "none"); decoders reject anything else.
 * A node is identified by its URL (for example `http://127.0.0.1:8086`).
 */

/** Kinds of log entries. */
export const EntryType = {
  /** Data for the state machine, given to `apply()`. */
  Command: 0,
  /** Appended by a new leader to commit entries of earlier terms. Not given to the state machine. */
  Noop: 1,
  /** A cluster configuration (see {@link ClusterConfig}), JSON in `data`. Takes effect when appended. */
  Config: 2,
} as const;

/** One of {@link EntryType}'s values. */
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** One entry of the replicated log. */
export interface LogEntry {
  index: number;
  term: number;
  type: EntryType;
  data: Uint8Array;
}

/** Who is in the cluster. Voters count toward elections and commit; learners only receive the log. */
export interface ClusterConfig {
  /** URLs of voting members. */
  voters: string[];
  /** URLs of non-voting members catching up before they vote. */
  learners: string[];
}

/** Fields every RPC request carries. */
export interface RpcBase {
  /** The sender's current term. */
  term: number;
  /** The sender's URL. */
  from: string;
  /** The cluster the sender belongs to; a mismatch is refused with CLUSTER_MISMATCH. */
  clusterId: string;
}

/** RequestVote (and PreVote when `preVote` is true: no state changes on the receiver). */
export interface RequestVoteRequest extends RpcBase {
  lastLogIndex: number;
  lastLogTerm: number;
  preVote: boolean;
  /** Set when the election follows a leadership transfer: voters ignore their leader lease. */
  transfer: boolean;
}

/** The answer to a (pre-)vote request: the voter's term and whether it granted its vote. */
export interface RequestVoteResponse {
  /** The voter's current term (the candidate steps down if it is higher). */
  term: number;
  voteGranted: boolean;
}

/** AppendEntries, also the heartbeat when `entries` is empty. */
export interface AppendEntriesRequest extends RpcBase {
  prevLogIndex: number;
  prevLogTerm: number;
  entries: LogEntry[];
  leaderCommit: number;
}

/** A follower's answer to AppendEntries. */
export interface AppendEntriesResponse {
  /** The follower's current term (the leader steps down if it is higher). */
  term: number;
  /** True when the follower's log matched at `prevLogIndex` and it appended (and fsynced) the entries. */
  success: boolean;
  /**
   * On success: the index of the last entry now known to match the leader.
   * On failure: a hint for where to retry (the follower's last index, or the
   * first index of the conflicting term), so the leader skips back fast.
   */
  matchIndex: number;
}

/** One chunk of a snapshot stream (InstallSnapshot). Chunks arrive in offset order. */
export interface InstallSnapshotRequest extends RpcBase {
  lastIncludedIndex: number;
  lastIncludedTerm: number;
  /** The configuration as of `lastIncludedIndex`. */
  config: ClusterConfig;
  /** Byte offset of `data` in the snapshot. */
  offset: number;
  data: Uint8Array;
  /** True on the last chunk. */
  done: boolean;
}

/** A follower's answer to one InstallSnapshot chunk. */
export interface InstallSnapshotResponse {
  /** The receiver's current term. */
  term: number;
  /** Bytes of this snapshot the receiver holds so far (the next offset it expects). */
  received: number;
}

/** Sent by a leader handing over leadership: the target starts an election at once. */
export type TimeoutNowRequest = RpcBase;

/** The answer to TimeoutNow: the target's term as it starts its election. */
export interface TimeoutNowResponse {
  term: number;
}

/** Asks a member (redirected to the leader) to add `url` to the cluster. */
export interface JoinRequest {
  url: string;
  /** Set when the joiner already knows the cluster it expects. */
  clusterId?: string;
}

/** The leader's answer once the joiner was added (as a learner, promoted to voter when caught up). */
export interface JoinResponse {
  /** The id of the cluster the node joined. */
  clusterId: string;
  /** The URL of the leader that added it. */
  leader: string;
  /** The configuration that includes the joiner. */
  config: ClusterConfig;
}

/** Asks the leader to remove `url` from the cluster. */
export interface LeaveRequest {
  url: string;
  clusterId: string;
}

/** The leader's answer once the removal is committed. */
export interface LeaveResponse {
  /** The configuration without the removed member. */
  config: ClusterConfig;
}
