import { RaftError, RaftErrorCodes, type RaftErrorCode } from '../errors.js';

/**
 * The HTTP status `createRaftHandler` answers a thrown {@link RaftError} with,
 * by code. `HttpTransport` does not rely on it: it reads the code from the
 * error body, so any non-2xx status with a valid error body comes back as
 * the same `RaftError`.
 */
export const RaftHttpStatus = {
  NOT_LEADER: 503,
  NO_LEADER: 503,
  CLOSED: 503,
  ALREADY_OPEN: 500,
  NOT_INITIALIZED: 503,
  ALREADY_INITIALIZED: 409,
  CLUSTER_MISMATCH: 409,
  CONFIG_CHANGE_IN_PROGRESS: 409,
  UNKNOWN_MEMBER: 422,
  CORRUPT: 500,
  BAD_REQUEST: 400,
  UNAUTHENTICATED: 401,
  UNREACHABLE: 502,
  ABORTED: 500,
  LEADERSHIP_LOST: 503,
  APPLY_FAILED: 500,
} as const satisfies Record<RaftErrorCode, number>;

/**
 * The body of every error response of the handler:
 * `{"error":{"code":"NOT_LEADER","message":"...","leaderURL":"http://..."}}`.
 * `code` is absent when the handler failed with something other than a
 * `RaftError` (status 500); the transport then reports `UNREACHABLE`.
 */
export interface RaftErrorBody {
  error: { code?: RaftErrorCode; message: string; leaderURL?: string };
}

/** Serializes `error` (a `RaftError` keeps code, message and leaderURL; anything else only a message). */
export function encodeErrorBody(error: unknown): string {
  if (error instanceof RaftError) {
    const body: RaftErrorBody = { error: { code: error.code, message: error.message } };
    if (error.leaderURL !== undefined) body.error.leaderURL = error.leaderURL;
    return JSON.stringify(body);
  }
  return JSON.stringify({ error: { message: error instanceof Error ? error.message : String(error) } } satisfies RaftErrorBody);
}

/**
 * Rebuilds the `RaftError` an error body carries, or returns `undefined` when
 * `value` is not an error body with a known code (a proxy's page, a non-raft
 * server, an internal failure of the peer).
 */
export function decodeErrorBody(value: unknown): RaftError | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const error = (value as { error?: unknown }).error;
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, message, leaderURL } = error as { code?: unknown; message?: unknown; leaderURL?: unknown };
  if (typeof code !== 'string' || !Object.hasOwn(RaftErrorCodes, code) || typeof message !== 'string') return undefined;
  if (leaderURL !== undefined && typeof leaderURL !== 'string') return undefined;
  return new RaftError(code as RaftErrorCode, message, leaderURL === undefined ? {} : { leaderURL });
}
