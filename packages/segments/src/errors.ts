/**
 * The error family of `@msg/segments`, for conditions the messaging protocol
 * has no code for. Protocol conditions (stale write, reclaimed segment, reader
 * closed, topic already open) are `BrokerError`s of `@msg/wire` instead.
 */
export const SegmentErrorCodes = {
  /** A record failed its checksum or is malformed; `segment` and `offset` say where. */
  CORRUPT_SEGMENT: { text: 'corrupt segment', retriable: false },
  /** The topic is closed (or closing): no more appends, no new readers, no second close. */
  TOPIC_CLOSED: { text: 'topic closed', retriable: false },
  /** The topic was used before `open()` resolved. */
  NOT_OPEN: { text: 'topic not open', retriable: false },
  /** `open()` was called a second time on the same `Topic` object. */
  ALREADY_OPEN: { text: 'topic object already opened', retriable: false },
  /** A write was attempted on a topic opened with `readOnly: true`. */
  READ_ONLY: { text: 'topic opened read-only', retriable: false },
  /** A write or fsync failed; the topic refuses further appends until it is reopened. */
  WRITE_FAILED: { text: 'write failed', retriable: false },
  /** A reader was iterated a second time (a reader is a one-pass cursor). */
  READER_IN_USE: { text: 'reader already iterated', retriable: false },
  /** An argument or option is out of range or of the wrong type. */
  INVALID_ARGUMENT: { text: 'invalid argument', retriable: false },
} as const satisfies Record<string, { text: string; retriable: boolean }>;

/** A stable code of {@link SegmentError}: a key of {@link SegmentErrorCodes}. */
export type SegmentErrorCode = keyof typeof SegmentErrorCodes;

/** Where a {@link SegmentError} happened, when it concerns a file. */
export interface SegmentErrorDetails {
  /** Path of the segment file. */
  segment?: string;
  /** Byte offset in that file of the record (or frame) at fault. */
  offset?: number;
}

/**
 * An error of the segmented log with a stable `code` (branch on it, never on
 * the message), a `cause` when one exists, and for `CORRUPT_SEGMENT` the
 * segment path and byte offset of the bad record.
 */
export class SegmentError extends Error {
  override readonly name = 'SegmentError';
  /** The stable code. */
  readonly code: SegmentErrorCode;
  /** Whether retrying the same call can succeed. */
  readonly retriable: boolean;
  /** Segment file concerned, when any. */
  readonly segment: string | undefined;
  /** Byte offset in {@link SegmentError.segment}, when known. */
  readonly offset: number | undefined;

  constructor(code: SegmentErrorCode, options: { message?: string; cause?: unknown; details?: SegmentErrorDetails } = {}) {
    const entry = SegmentErrorCodes[code];
    super(options.message ?? entry.text, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retriable = entry.retriable;
    this.segment = options.details?.segment;
    this.offset = options.details?.offset;
  }
}

/** True when `value` is a {@link SegmentError}, optionally of the given code. */
export function isSegmentError(value: unknown, code?: SegmentErrorCode): value is SegmentError {
  return value instanceof SegmentError && (code === undefined || value.code === code);
}

/** A `CORRUPT_SEGMENT` error naming the file and offset. */
export function corruptSegment(segment: string, offset: number, reason: string, cause?: unknown): SegmentError {
  return new SegmentError('CORRUPT_SEGMENT', {
    message: `corrupt segment: ${reason} at byte ${offset} of ${segment}`,
    details: { segment, offset },
    cause,
  });
}
