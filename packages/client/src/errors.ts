import { BrokerError, ErrorCodes, Headers, errorCodeForText, isErrorCode, parseU64, type ErrorCode } from '@msg/wire';

/**
 * Codes of errors raised by the client itself that have no counterpart in the
 * broker's table ({@link ErrorCodes} of `@msg/wire`). Protocol conditions
 * (`client closed`, `not leader`, ...) are {@link BrokerError}s instead.
 */
export const ClientErrorCodes = {
  /** The config file does not exist and no URL was given another way. */
  CONFIG_NOT_FOUND: { text: 'config file not found', retriable: false },
  /** The config file exists but could not be read (permissions, a directory, ...). */
  CONFIG_UNREADABLE: { text: 'config file unreadable', retriable: false },
  /** The config file is not JSON. */
  CONFIG_NOT_JSON: { text: 'config file is not JSON', retriable: false },
  /** The config file is JSON of the wrong shape (it must be `{"urls":["http://host:port", ...]}`). */
  CONFIG_INVALID: { text: 'config file invalid', retriable: false },
  /** The config file could not be written. */
  CONFIG_WRITE_FAILED: { text: 'config file write failed', retriable: true },
  /** A URL given to the client is not an absolute http(s) URL. */
  INVALID_URL: { text: 'invalid url', retriable: false },
  /** A client option is out of range. */
  INVALID_OPTIONS: { text: 'invalid options', retriable: false },
  /** A request was made while the client knows no broker URL. */
  NO_URLS: { text: 'no broker urls', retriable: false },
  /** The call was cancelled through its `AbortSignal`; `cause` is the signal's reason. */
  ABORTED: { text: 'aborted', retriable: false },
  /**
   * A broker redirected the call (307 `Location`, or the `X-Broker-Leader`
   * hint of a `not leader` answer) to a URL that is not a known member of the
   * cluster (a URL the client was given, or one a member's ping reported):
   * the redirect was not followed and the call moved to the next known
   * member. Retriable: another member may take the call, and a leader that
   * is a new member is trusted once a member's ping reports it.
   */
  UNTRUSTED_REDIRECT: { text: 'untrusted redirect', retriable: true },
  /** A broker answered something the protocol does not allow (bad index header, bad ping body, bad redirect). */
  BAD_RESPONSE: { text: 'bad response', retriable: true },
} as const satisfies Record<string, { text: string; retriable: boolean }>;

/** A stable code of a {@link ClientError}: a key of {@link ClientErrorCodes}. */
export type ClientErrorCode = keyof typeof ClientErrorCodes;

/**
 * An error raised by the client itself (bad config file, bad option, a
 * cancelled call, a broker answer that breaks the protocol). Branch on `code`,
 * never on `message`.
 */
export class ClientError extends Error {
  override readonly name = 'ClientError';
  /** The stable code. */
  readonly code: ClientErrorCode;
  /** Whether retrying the same call can succeed. */
  readonly retriable: boolean;

  constructor(code: ClientErrorCode, options: { message?: string; cause?: unknown } = {}) {
    const entry = ClientErrorCodes[code];
    super(options.message ?? entry.text, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retriable = entry.retriable;
  }
}

/** True when `value` is a {@link ClientError}, optionally of the given code. */
export function isClientError(value: unknown, code?: ClientErrorCode): value is ClientError {
  return value instanceof ClientError && (code === undefined || value.code === code);
}

/** The headers of an answer, as Node presents them (lower-case names). */
export type ResponseHeaders = Record<string, string | string[] | undefined>;

function header(headers: ResponseHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'INVALID_MESSAGE';
    case 401:
      return 'UNAUTHENTICATED';
    case 403:
      return 'FORBIDDEN';
    case 404:
      return 'NOT_FOUND';
    case 405:
      return 'METHOD_NOT_ALLOWED';
    case 409:
      return 'STALE_WRITE';
    case 410:
      return 'SEGMENT_RECLAIMED';
    case 413:
      return 'BODY_TOO_LARGE';
    case 503:
      return 'UNAVAILABLE';
    case 504:
      return 'TIMEOUT';
    default:
      return 'INTERNAL';
  }
}

/**
 * Maps a broker's error answer to a {@link BrokerError}: the code comes from
 * `X-Broker-Error-Code` when it names a known code, else from the original's
 * text in `X-Broker-Error` (or the body), else from the HTTP status. The
 * broker's text becomes the message; `X-Broker-First-Index` and
 * `X-Broker-Leader` become `firstIndex` and `leaderURL`, `X-Broker-Producer-Next` `producerNext`.
 */
export function brokerErrorFromResponse(status: number, headers: ResponseHeaders, body?: Uint8Array): BrokerError {
  const headerText = header(headers, Headers.error)?.trim();
  const bodyText = body && body.byteLength > 0 && body.byteLength <= 4096 ? new TextDecoder().decode(body).trim() : undefined;
  const text = headerText || bodyText || undefined;
  const codeHeader = header(headers, Headers.errorCode)?.trim();
  const code: ErrorCode =
    (isErrorCode(codeHeader) ? codeHeader : undefined) ??
    (headerText ? errorCodeForText(headerText) : undefined) ??
    (bodyText ? errorCodeForText(bodyText) : undefined) ??
    codeForStatus(status);
  const firstIndex = parseU64(header(headers, Headers.firstIndex));
  const leaderURL = header(headers, Headers.leader) || undefined;
  const producerNext = parseU64(header(headers, Headers.producerNext));
  return new BrokerError(code, {
    message: text ?? `${ErrorCodes[code].text} (HTTP ${status})`,
    details: { firstIndex, leaderURL, producerNext },
  });
}

/** The error a call rejects with once `signal` is aborted. */
export function abortError(signal: AbortSignal): ClientError {
  return new ClientError('ABORTED', { cause: signal.reason });
}

/** Throws {@link abortError} when `signal` is already aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}
