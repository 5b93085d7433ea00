import type { ServerResponse } from 'node:http';
import { BrokerError, ErrorCodes, type ErrorCode } from '@msg/wire';

/**
 * Header names as this handler writes them: the canonical capitalisation the
 * original (Go) broker sent. Their lower-case forms are `@msg/wire`'s `Headers`.
 */
export const ResponseHeaders = {
  error: 'X-Broker-Error',
  errorCode: 'X-Broker-Error-Code',
  index: 'X-Broker-Index',
  lastIndex: 'X-Broker-Last-Index',
  firstIndex: 'X-Broker-First-Index',
  leader: 'X-Broker-Leader',
  members: 'X-Broker-Members',
  producerNext: 'X-Broker-Producer-Next',
  duplicates: 'X-Broker-Duplicates',
  indexes: 'X-Broker-Indexes',
} as const;

/** Codes whose text is the original broker's: their header text never changes. */
const ORIGINAL_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'PATH_REQUIRED',
  'BROKER_CLOSED',
  'CLIENT_ALREADY_OPEN',
  'CLIENT_CLOSED',
  'CONNECTION_ALREADY_OPEN',
  'CONNECTION_CLOSED',
  'CANNOT_REUSE_CONNECTION',
  'MESSAGE_TYPE_REQUIRED',
  'TOPIC_REQUIRED',
  'NO_LEADER',
  'INDEX_REQUIRED',
  'TOPIC_ALREADY_OPEN',
  'SEGMENT_RECLAIMED',
  'STALE_WRITE',
  'READER_CLOSED',
  'MESSAGE_DATA_REQUIRED',
  'NOT_LEADER',
]);

/** Printable ASCII only, at most 200 characters: safe in a header line. */
function headerSafe(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]+/g, ' ').trim();
  return clean.length > 200 ? `${clean.slice(0, 197)}...` : clean;
}

/**
 * The text sent for `error`: the original's text for the original's codes
 * (clients of the original match on it), else the error's own message (which
 * starts with the table's text by `@msg/wire` convention).
 */
export function errorText(error: BrokerError): string {
  const tableText = ErrorCodes[error.code].text;
  if (ORIGINAL_CODES.has(error.code)) return tableText;
  return headerSafe(error.message) || tableText;
}

/**
 * Answers `error` the original's way: its status, `X-Broker-Error: <text>`,
 * `X-Broker-Error-Code: <CODE>`, and `<text>\n` as a `text/plain` body (Go's
 * `http.Error`). `SEGMENT_RECLAIMED` adds `X-Broker-First-Index`,
 * `NOT_LEADER` adds `X-Broker-Leader` when the leader is known. Extra headers
 * (`Allow`, `Connection`) may be given. Does nothing once headers are sent or
 * the socket is gone.
 */
export function sendError(res: ServerResponse, error: BrokerError, extraHeaders?: Record<string, string>): void {
  if (res.headersSent || res.destroyed) return;
  const text = errorText(error);
  const body = `${text}\n`;
  const headers: Record<string, string> = {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    'X-Content-Type-Options': 'nosniff',
    [ResponseHeaders.error]: text,
    [ResponseHeaders.errorCode]: error.code,
    ...extraHeaders,
  };
  if (error.code === 'SEGMENT_RECLAIMED' && error.firstIndex !== undefined) {
    headers[ResponseHeaders.firstIndex] = error.firstIndex.toString();
  }
  if (error.code === 'NOT_LEADER' && error.leaderURL !== undefined) {
    headers[ResponseHeaders.leader] = headerSafe(error.leaderURL);
  }
  if (error.producerNext !== undefined) headers[ResponseHeaders.producerNext] = error.producerNext.toString();
  res.writeHead(error.status, headers);
  res.end(body);
}

/** A `BrokerError` of `code` with the table's text. */
export function brokerError(code: ErrorCode, message?: string): BrokerError {
  return new BrokerError(code, message === undefined ? {} : { message });
}

/** Answers 200 with `value` as JSON (bigints as decimal strings) and a newline. */
export function sendJSON(res: ServerResponse, status: number, value: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const body = `${JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`;
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    'Cache-Control': 'no-store',
  });
  res.end(body);
}
