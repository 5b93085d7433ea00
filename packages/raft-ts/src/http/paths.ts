/** The path prefix under which the handler serves and the transport posts, unless configured. */
export const DEFAULT_RAFT_PATH_PREFIX = '/raft';

/**
 * The last path segment of each RPC: the transport POSTs to
 * `<target><prefix>/<segment>` (for example `http://10.0.0.2:8086/raft/append`).
 */
export const RaftPaths = {
  requestVote: 'vote',
  appendEntries: 'append',
  installSnapshot: 'snapshot',
  timeoutNow: 'timeout-now',
  join: 'join',
  leave: 'leave',
} as const;

/** The name of one RPC: a key of {@link RaftPaths}. */
export type RaftRpc = keyof typeof RaftPaths;

/**
 * Header of a 404 answer to a raft path at a node's client address when the
 * node serves raft on a separate peer listener: that listener's URL.
 * {@link HttpTransport} then sends the request there (and later ones too).
 */
export const PEER_URL_HEADER = 'x-raft-peer-url';

/** Content type of the binary bodies (AppendEntries and InstallSnapshot requests). */
export const BINARY_CONTENT_TYPE = 'application/octet-stream';

/** Content type of the JSON bodies (small requests, every response). */
export const JSON_CONTENT_TYPE = 'application/json';

/**
 * Normalizes a path prefix: `''` and `'/'` mean none; otherwise one leading
 * slash and no trailing slash (`'raft/'` becomes `'/raft'`).
 */
export function normalizePathPrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+/, '').replace(/\/+$/, '');
  return trimmed === '' ? '' : `/${trimmed}`;
}
