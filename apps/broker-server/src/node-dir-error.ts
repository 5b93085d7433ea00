/** Stable codes of {@link NodeDirError}. */
export const NodeDirErrorCodes = {
  /** Another live process holds the data dir's lock; the message names the dir and its PID. */
  DATA_DIR_LOCKED: { retriable: true },
  /** This start would give the data dir's node another URL than the one it recorded. */
  NODE_IDENTITY_CHANGED: { retriable: false },
  /** `<data dir>/node.json` is damaged or disagrees with the raft log; the message names the file. */
  NODE_IDENTITY_CORRUPT: { retriable: false },
  /** `<data dir>/node.json` exists but cannot be read; `cause` is the system error. */
  NODE_IDENTITY_UNREADABLE: { retriable: false },
  /** `<data dir>/node.json` could not be written durably; `cause` is the system error. */
  NODE_IDENTITY_WRITE_FAILED: { retriable: false },
  /** The data dir's node was removed from its cluster: it can never serve again. */
  NODE_REMOVED: { retriable: false },
} as const satisfies Record<string, { retriable: boolean }>;

/** A key of {@link NodeDirErrorCodes}. */
export type NodeDirErrorCode = keyof typeof NodeDirErrorCodes;

/** Why a node's data dir cannot be used by this start. Branch on `code`. */
export class NodeDirError extends Error {
  override readonly name = 'NodeDirError';
  /** The stable code. */
  readonly code: NodeDirErrorCode;
  /** Whether retrying can help (a lock may be released). */
  readonly retriable: boolean;
  /** The data dir. */
  readonly dataDir: string;

  constructor(code: NodeDirErrorCode, dataDir: string, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retriable = NodeDirErrorCodes[code].retriable;
    this.dataDir = dataDir;
  }
}
