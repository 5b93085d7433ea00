import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  InstallSnapshotRequest,
  InstallSnapshotResponse,
  JoinRequest,
  JoinResponse,
  LeaveRequest,
  LeaveResponse,
  RequestVoteRequest,
  RequestVoteResponse,
  TimeoutNowRequest,
  TimeoutNowResponse,
} from './types.js';

/**
 * How a node reaches its peers. Each call resolves with the peer's answer or
 * rejects with a {@link RaftError}: `UNREACHABLE` when the peer cannot be
 * reached or does not answer in time, or the error the peer's handler threw
 * (its code preserved, for example `NOT_LEADER` with `leaderURL`).
 * Implementations: `HttpTransport` (production) and the simulation's network.
 */
export interface Transport {
  requestVote(target: string, request: RequestVoteRequest, signal?: AbortSignal): Promise<RequestVoteResponse>;
  appendEntries(target: string, request: AppendEntriesRequest, signal?: AbortSignal): Promise<AppendEntriesResponse>;
  installSnapshot(target: string, request: InstallSnapshotRequest, signal?: AbortSignal): Promise<InstallSnapshotResponse>;
  timeoutNow(target: string, request: TimeoutNowRequest, signal?: AbortSignal): Promise<TimeoutNowResponse>;
  join(target: string, request: JoinRequest, signal?: AbortSignal): Promise<JoinResponse>;
  leave(target: string, request: LeaveRequest, signal?: AbortSignal): Promise<LeaveResponse>;
  /** Releases sockets and timers. */
  close(): Promise<void>;
}

/**
 * What a node offers to incoming RPCs; a transport's server side (for
 * example `createRaftHandler`) decodes requests and calls these. A method
 * rejects with a {@link RaftError} that the transport carries back to the
 * caller.
 */
export interface RpcHandler {
  handleRequestVote(request: RequestVoteRequest): Promise<RequestVoteResponse>;
  handleAppendEntries(request: AppendEntriesRequest): Promise<AppendEntriesResponse>;
  handleInstallSnapshot(request: InstallSnapshotRequest): Promise<InstallSnapshotResponse>;
  handleTimeoutNow(request: TimeoutNowRequest): Promise<TimeoutNowResponse>;
  handleJoin(request: JoinRequest): Promise<JoinResponse>;
  handleLeave(request: LeaveRequest): Promise<LeaveResponse>;
}
