/** Stable codes of {@link BrokerStateError}. */
export const BrokerStateErrorCodes = {
  /** `open()` on an open broker. */
  ALREADY_OPEN: { retriable: false },
  /** A call that needs an open broker before `open()`. */
  NOT_OPEN: { retriable: false },
  /** `publish()`/`heartbeat()` before a log was attached with `attachLog()`. */
  NO_LOG: { retriable: false },
  /** The broker's `meta` file is unreadable or malformed; `message` names it. */
  CORRUPT_META: { retriable: false },
  /** A snapshot stream is malformed or ends early; `message` says where. */
  CORRUPT_SNAPSHOT: { retriable: false },
  /**
   * On `open()`: a topic holds less than its last checkpoint recorded as
   * durable (a file lost, truncated or corrupted after its fsync), so the
   * applied index cannot be trusted and raft would not re-apply the missing
   * entries. `message` names the topic folder. Start the node from an empty
   * data dir: it catches up from the cluster through a snapshot.
   */
  DATA_LOST: { retriable: false },
  /**
   * A write or fsync of data that is, or will be, applied or checkpointed
   * failed (`cause` is the file system's error). The broker is failed for
   * good: `apply()`, checkpoints, snapshots, restores and retention reject
   * with this error from then on, and `meta` never covers data that is not
   * durable. Stop the process; on restart it recovers from its last
   * checkpoint and raft applies the rest again. See `Broker.failure`.
   */
  STORAGE_FAILED: { retriable: false },
} as const satisfies Record<string, { retriable: boolean }>;

/** A key of {@link BrokerStateErrorCodes}. */
export type BrokerStateErrorCode = keyof typeof BrokerStateErrorCodes;

/**
 * Errors of the broker's own state (lifecycle, metadata, snapshots): the
 * conditions the protocol's `BrokerError` table has no code for. Branch on `code`.
 */
export class BrokerStateError extends Error {
  override readonly name = 'BrokerStateError';
  /** The stable code. */
  readonly code: BrokerStateErrorCode;
  /** Whether retrying can help. */
  readonly retriable: boolean;

  constructor(code: BrokerStateErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retriable = BrokerStateErrorCodes[code].retriable;
  }
}

/** True when `value` is a {@link BrokerStateError}, optionally of the given code. */
export function isBrokerStateError(value: unknown, code?: BrokerStateErrorCode): value is BrokerStateError {
  return value instanceof BrokerStateError && (code === undefined || value.code === code);
}
