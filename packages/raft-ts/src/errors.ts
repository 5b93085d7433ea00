/** Stable codes of {@link RaftError}. */
export const RaftErrorCodes = {
  /** This node is not the leader; `leaderURL` says who is, when known. Retry there. */
  NOT_LEADER: { retriable: true },
  /** No leader is known right now (election in progress). Retry later. */
  NO_LEADER: { retriable: true },
  /** The node is closed (or was closed while the call waited). */
  CLOSED: { retriable: false },
  /** `open()` on an open node. */
  ALREADY_OPEN: { retriable: false },
  /** The node has no cluster yet: call `initialize()` or `join()`. */
  NOT_INITIALIZED: { retriable: false },
  /** `initialize()` or `join()` on a node that already belongs to a cluster. */
  ALREADY_INITIALIZED: { retriable: false },
  /** A peer belongs to another cluster (cluster ids differ). */
  CLUSTER_MISMATCH: { retriable: false },
  /** A membership change is already in progress; one at a time. */
  CONFIG_CHANGE_IN_PROGRESS: { retriable: true },
  /** The node asked to leave or be removed is not a member. */
  UNKNOWN_MEMBER: { retriable: false },
  /** A stored file failed its checksum or is malformed; `message` names file and offset. */
  CORRUPT: { retriable: false },
  /** A request or response of the transport was malformed. */
  BAD_REQUEST: { retriable: false },
  /**
   * A peer RPC without a valid signature of the cluster secret (missing,
   * forged, stale, replayed, or made for another node); or this node has no
   * secret yet. Retrying the same request cannot help.
   */
  UNAUTHENTICATED: { retriable: false },
  /** The transport could not reach the peer, or it timed out. */
  UNREACHABLE: { retriable: true },
  /** The caller's AbortSignal fired. */
  ABORTED: { retriable: false },
  /** Leadership was lost before the entry was known to be committed; it may or may not commit. */
  LEADERSHIP_LOST: { retriable: true },
  /** The state machine threw while applying; the node stops applying. */
  APPLY_FAILED: { retriable: false },
} as const satisfies Record<string, { retriable: boolean }>;

/** A key of {@link RaftErrorCodes}. */
export type RaftErrorCode = keyof typeof RaftErrorCodes;

/** The one error type of raft-ts. Branch on `code`, never on `message`. */
export class RaftError extends Error {
  override readonly name = 'RaftError';
  readonly code: RaftErrorCode;
  /** Whether retrying (maybe on another node) can succeed. */
  readonly retriable: boolean;
  /** With `NOT_LEADER`: the leader's URL when known. */
  readonly leaderURL: string | undefined;

  constructor(code: RaftErrorCode, message: string, options: { cause?: unknown; leaderURL?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retriable = RaftErrorCodes[code].retriable;
    this.leaderURL = options.leaderURL;
  }
}

/** True when `value` is a {@link RaftError}, optionally of the given code. */
export function isRaftError(value: unknown, code?: RaftErrorCode): value is RaftError {
  return value instanceof RaftError && (code === undefined || value.code === code);
}
