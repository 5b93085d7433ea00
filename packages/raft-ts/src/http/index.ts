export { HttpTransport, type HttpTransportOptions } from './http-transport.js';
export { createRaftHandler, DEFAULT_MAX_BODY_BYTES, type RaftHandlerOptions } from './handler.js';
export { encodeAppendEntriesRequest, decodeAppendEntriesRequest } from './append-entries-codec.js';
export { encodeInstallSnapshotRequest, decodeInstallSnapshotRequest } from './install-snapshot-codec.js';
export { RaftHttpStatus, type RaftErrorBody } from './error-body.js';
export { RaftPaths, DEFAULT_RAFT_PATH_PREFIX, type RaftRpc } from './paths.js';
