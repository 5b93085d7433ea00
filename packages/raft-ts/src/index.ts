export { RaftError, RaftErrorCodes, isRaftError, type RaftErrorCode } from './errors.js';
export {
  EntryType,
  type LogEntry,
  type ClusterConfig,
  type RpcBase,
  type RequestVoteRequest,
  type RequestVoteResponse,
  type AppendEntriesRequest,
  type AppendEntriesResponse,
  type InstallSnapshotRequest,
  type InstallSnapshotResponse,
  type TimeoutNowRequest,
  type TimeoutNowResponse,
  type JoinRequest,
  type JoinResponse,
  type LeaveRequest,
  type LeaveResponse,
} from './types.js';
export type { Transport, RpcHandler } from './transport.js';
export type { StateMachine } from './state-machine.js';
export { RaftNode, type RaftNodeOptions, type RaftState, type LeaderChangeListener, type LeaderChange, type StateChange } from './raft-node.js';
export {
  LATENCY_BUCKETS_SECONDS,
  TRANSFER_BUCKETS_SECONDS,
  type ReplicationStatus,
  type FollowerReplication,
  type SnapshotTransfer,
  type RaftStats,
  type HistogramSnapshot,
} from './replication.js';
export { systemClock, silentLogger, type Clock, type Logger } from './clock.js';
export { NodeFileSystem, type FileSystem, type FileHandle } from './file-system.js';
export * from './http/index.js';
