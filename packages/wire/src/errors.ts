/**
 * The error family shared by every package that speaks the protocol: one table
 * of stable codes, each with the original broker's text (where it had one), the
 * HTTP status a broker answers with, and whether retrying can help.
 */
export const ErrorCodes = {
  PATH_REQUIRED: { text: 'path required', status: 500, retriable: false },
  BROKER_CLOSED: { text: 'broker already closed', status: 503, retriable: true },
  CLIENT_ALREADY_OPEN: { text: 'client already open', status: 500, retriable: false },
  CLIENT_CLOSED: { text: 'client closed', status: 500, retriable: false },
  CONNECTION_ALREADY_OPEN: { text: 'connection already open', status: 500, retriable: false },
  CONNECTION_CLOSED: { text: 'connection closed', status: 500, retriable: false },
  CANNOT_REUSE_CONNECTION: { text: 'cannot reuse connection', status: 500, retriable: false },
  MESSAGE_TYPE_REQUIRED: { text: 'message type required', status: 400, retriable: false },
  TOPIC_REQUIRED: { text: 'topic required', status: 400, retriable: false },
  NO_LEADER: { text: 'no leader', status: 503, retriable: true },
  INDEX_REQUIRED: { text: 'index required', status: 400, retriable: false },
  TOPIC_ALREADY_OPEN: { text: 'topic already open', status: 500, retriable: false },
  SEGMENT_RECLAIMED: { text: 'segment reclaimed', status: 410, retriable: false },
  STALE_WRITE: { text: 'stale write', status: 409, retriable: false },
  READER_CLOSED: { text: 'reader closed', status: 500, retriable: false },
  MESSAGE_DATA_REQUIRED: { text: 'message data required', status: 400, retriable: false },
  NOT_LEADER: { text: 'not leader', status: 503, retriable: true },
  // Beyond the original.
  BODY_TOO_LARGE: { text: 'body too large', status: 413, retriable: false },
  INVALID_BATCH: { text: 'invalid batch', status: 400, retriable: false },
  INVALID_MESSAGE: { text: 'invalid message', status: 400, retriable: false },
  FRAME_TOO_LARGE: { text: 'frame too large', status: 400, retriable: false },
  TRUNCATED_FRAME: { text: 'unexpected EOF', status: 400, retriable: false },
  NOT_FOUND: { text: 'not found', status: 404, retriable: false },
  METHOD_NOT_ALLOWED: { text: 'method not allowed', status: 405, retriable: false },
  /** The broker cannot serve the request now; nothing was written. */
  UNAVAILABLE: { text: 'unavailable', status: 503, retriable: true },
  /**
   * A write reached the log, but the broker lost its leadership (or closed, or failed) before it was
   * applied: another leader may still commit it, or not. Retrying may write it twice; a client must
   * check (read the topic) or deduplicate before it counts this as "not written".
   */
  OUTCOME_UNKNOWN: { text: 'outcome unknown', status: 503, retriable: true },
  TIMEOUT: { text: 'timeout', status: 504, retriable: true },
  INTERNAL: { text: 'internal error', status: 500, retriable: true },
  /** The broker holds as many connections as it is configured to (in total, or from this client): retry after `Retry-After`. */
  TOO_MANY_CONNECTIONS: { text: 'too many connections', status: 503, retriable: true },
  /** The broker serves as many streams as it is configured to (in total, or to this client): retry after `Retry-After`. */
  TOO_MANY_STREAMS: { text: 'too many streams', status: 503, retriable: true },
  /** No valid credential: a missing or unknown token, or a peer RPC without a valid signature. */
  UNAUTHENTICATED: { text: 'unauthenticated', status: 401, retriable: false },
  /** A valid credential without the permission the request needs. */
  FORBIDDEN: { text: 'forbidden', status: 403, retriable: false },
  /** A producer id or sequence header that is missing its pair, malformed or out of range. */
  INVALID_PRODUCER: { text: 'invalid producer', status: 400, retriable: false },
  /**
   * The publish's producer sequence skips ahead of the next one the broker expects (`X-Broker-Producer-Next`):
   * nothing was written. A client renumbers from that sequence and sends again.
   */
  SEQUENCE_GAP: { text: 'producer sequence gap', status: 409, retriable: false },
  /**
   * The publish's producer sequence is below the next one expected and older than the deduplication window:
   * whether it was written cannot be told any more; nothing was written now.
   */
  SEQUENCE_TOO_OLD: { text: 'producer sequence too old', status: 409, retriable: false },
} as const satisfies Record<string, { text: string; status: number; retriable: boolean }>;

/** A stable, machine-readable error code: a key of {@link ErrorCodes}. */
export type ErrorCode = keyof typeof ErrorCodes;

/** Extra facts some errors carry. */
export interface BrokerErrorDetails {
  /** `SEGMENT_RECLAIMED`: the first index still available in the topic. */
  firstIndex?: bigint;
  /** `NOT_LEADER`: the leader's base URL, when known. */
  leaderURL?: string;
  /** `SEQUENCE_GAP`, `SEQUENCE_TOO_OLD`: the producer sequence the broker expects next. */
  producerNext?: bigint;
}

/**
 * An error of the messaging protocol. `message` is the original broker's text
 * for `code` (clients of the original match on it); branch on `code`.
 */
export class BrokerError extends Error {
  override readonly name = 'BrokerError';
  /** The stable code. */
  readonly code: ErrorCode;
  /** The HTTP status a broker answers this error with. */
  readonly status: number;
  /** Whether retrying the same request (maybe elsewhere) can succeed. */
  readonly retriable: boolean;
  /** See {@link BrokerErrorDetails}. */
  readonly firstIndex: bigint | undefined;
  /** See {@link BrokerErrorDetails}. */
  readonly leaderURL: string | undefined;
  /** See {@link BrokerErrorDetails}. */
  readonly producerNext: bigint | undefined;

  constructor(code: ErrorCode, options: { message?: string; cause?: unknown; details?: BrokerErrorDetails } = {}) {
    const entry = ErrorCodes[code];
    super(options.message ?? entry.text, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = entry.status;
    this.retriable = entry.retriable;
    this.firstIndex = options.details?.firstIndex;
    this.leaderURL = options.details?.leaderURL;
    this.producerNext = options.details?.producerNext;
  }
}

/** True when `value` is a {@link BrokerError}, optionally of the given code. */
export function isBrokerError(value: unknown, code?: ErrorCode): value is BrokerError {
  return value instanceof BrokerError && (code === undefined || value.code === code);
}

/** True when `code` is a known {@link ErrorCode}. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ErrorCodes, code);
}

const codeByText = new Map<string, ErrorCode>(
  (Object.keys(ErrorCodes) as ErrorCode[]).map((code) => [ErrorCodes[code].text, code]),
);

/**
 * Maps an original broker's error text back to its code (`undefined` if the
 * text is not one of the table's).
 */
export function errorCodeForText(text: string): ErrorCode | undefined {
  return codeByText.get(text.trim());
}
