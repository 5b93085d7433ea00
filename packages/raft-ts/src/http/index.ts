export { HttpTransport, type HttpTransportOptions, type TransportTls } from './http-transport.js';
export { createRaftHandler, DEFAULT_MAX_BODY_BYTES, type RaftHandlerOptions, type RaftRefusal } from './handler.js';
export {
  PeerAuth,
  PeerAuthHeaders,
  PeerAuthRejections,
  MIN_SECRET_BYTES,
  type PeerAuthOptions,
  type PeerAuthRejection,
  type PeerAuthResult,
} from './peer-auth.js';
export { encodeAppendEntriesRequest, decodeAppendEntriesRequest } from './append-entries-codec.js';
export { encodeInstallSnapshotRequest, decodeInstallSnapshotRequest } from './install-snapshot-codec.js';
export { RaftHttpStatus, type RaftErrorBody } from './error-body.js';
export { RaftPaths, DEFAULT_RAFT_PATH_PREFIX, PEER_URL_HEADER, type RaftRpc } from './paths.js';
