/** Stable codes of {@link ServerError}. */
export const ServerErrorCodes = {
  /** `close()` was called a second time. */
  ALREADY_CLOSED: { retriable: false },
  /** Every `--join` URL refused or could not be reached; `cause` is the last error. */
  JOIN_FAILED: { retriable: true },
  /** The cluster refused this node's join token (its peers answered `UNAUTHENTICATED`); `cause` is their answer. */
  JOIN_REFUSED: { retriable: false },
  /** `<data dir>/join-token` does not hold a valid token (damaged or edited). */
  JOIN_TOKEN_CORRUPT: { retriable: false },
  /** `<data dir>/join-token` exists but cannot be read; `cause` is the system error. */
  JOIN_TOKEN_UNREADABLE: { retriable: false },
  /** `<data dir>/join-token` could not be written durably; `cause` is the system error. */
  JOIN_TOKEN_WRITE_FAILED: { retriable: false },
} as const satisfies Record<string, { retriable: boolean }>;

/** A key of {@link ServerErrorCodes}. */
export type ServerErrorCode = keyof typeof ServerErrorCodes;

/** Errors of the broker server's own lifecycle. Branch on `code`. */
export class ServerError extends Error {
  override readonly name = 'ServerError';
  /** The stable code. */
  readonly code: ServerErrorCode;
  /** Whether retrying can help. */
  readonly retriable: boolean;

  constructor(code: ServerErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retriable = ServerErrorCodes[code].retriable;
  }
}
