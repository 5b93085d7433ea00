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
export * from './http/index.js';
