import type { IncomingMessage, ServerResponse } from 'node:http';
import { RaftError } from '../errors.js';
import type { RpcHandler } from '../transport.js';
import { decodeAppendEntriesRequest } from './append-entries-codec.js';
import { encodeErrorBody, RaftHttpStatus } from './error-body.js';
import { decodeInstallSnapshotRequest } from './install-snapshot-codec.js';
import {
  checkAppendEntriesResponse,
  checkInstallSnapshotResponse,
  checkJoinRequest,
  checkJoinResponse,
  checkLeaveRequest,
  checkLeaveResponse,
  checkRequestVoteRequest,
  checkRequestVoteResponse,
  checkTimeoutNowRequest,
  checkTimeoutNowResponse,
  parseJson,
} from './json-codec.js';
import { DEFAULT_RAFT_PATH_PREFIX, JSON_CONTENT_TYPE, normalizePathPrefix, RaftPaths } from './paths.js';
import { PeerAuth, type PeerAuthRejection, type PeerAuthResult } from './peer-auth.js';

/** A request {@link createRaftHandler} refused because it was not signed by a peer: what `onRefused` gets. */
export interface RaftRefusal {
  /** The RPC's path segment (`append`, `join`, ...). */
  rpc: string;
  /** Why. */
  reason: PeerAuthRejection;
  /** The client's address, when known. */
  remoteAddress: string | undefined;
}

/** Options of {@link createRaftHandler}. */
export interface RaftHandlerOptions {
  /**
   * Verifies that each request was signed by a peer (required: there is no
   * unauthenticated mode). A request without a valid signature is answered
   * 401 `UNAUTHENTICATED` before its body is decoded, and the node is not
   * called. Give the node's transport the same instance.
   */
  auth: PeerAuth;
  /**
   * This node's URL (its identity), or a function returning it: requests
   * other than join and leave signed for another target are refused
   * (`wrong-target`), so an RPC captured on its way to one node cannot be
   * replayed to another. Default: not checked.
   */
  url?: string | (() => string | undefined);
  /**
   * A header that names the error code of every error answer (for example
   * `x-broker-error-code`). Default `x-raft-error-code`.
   */
  errorCodeHeader?: string;
  /** Called with every request refused for its signature (for logs and counters); must not throw. */
  onRefused?: (refusal: RaftRefusal) => void;
  /**
   * The largest request body accepted, in bytes; a bigger one is answered
   * 413 without being buffered. Must cover the leader's largest
   * AppendEntries batch and InstallSnapshot chunk. Default 64 MiB.
   */
  maxBodyBytes?: number;
  /**
   * The path prefix the handler serves under when it sees full paths. Default
   * `'/raft'`. Requests whose path does not start with it are matched as if
   * the prefix had already been stripped (a router mount such as express's
   * `app.use('/raft', handler)`), so both `/raft/append` and `/append` reach
   * AppendEntries.
   */
  pathPrefix?: string;
}

/** Default of {@link RaftHandlerOptions.maxBodyBytes}: 64 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;

/** How long a connection may keep sending an oversized body after the 413 went out, in ms. */
const OVERSIZE_GRACE_MS = 1000;

/** A request body: raw bytes, or a value a body-parsing middleware already made of them. */
type Body = { bytes: Uint8Array } | { value: unknown };

/** One RPC as served: decode the body, call the node, validate and serialize its answer. */
interface Route {
  serve(body: Body): Promise<string>;
}

function jsonOf(body: Body, what: string): unknown {
  return 'bytes' in body ? parseJson(body.bytes, what) : body.value;
}

function bytesOf(body: Body, what: string): Uint8Array {
  if ('bytes' in body) return body.bytes;
  throw new RaftError('BAD_REQUEST', `invalid ${what}: a binary body is required`);
}

/** Runs `check` on the node's answer; a failure is the node's bug, so it becomes a plain Error (500). */
function answer<T>(value: unknown, check: (value: unknown) => T): string {
  try {
    return JSON.stringify(check(value));
  } catch (cause) {
    throw new Error(`the RpcHandler returned an invalid response: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

function makeRoutes(rpc: RpcHandler): Map<string, Route> {
  return new Map<string, Route>([
    [
      RaftPaths.requestVote,
      {
        serve: async (body) =>
          answer(await rpc.handleRequestVote(checkRequestVoteRequest(jsonOf(body, 'RequestVote request'))), checkRequestVoteResponse),
      },
    ],
    [
      RaftPaths.appendEntries,
      {
        serve: async (body) =>
          answer(
            await rpc.handleAppendEntries(decodeAppendEntriesRequest(bytesOf(body, 'AppendEntries request'))),
            checkAppendEntriesResponse,
          ),
      },
    ],
    [
      RaftPaths.installSnapshot,
      {
        serve: async (body) =>
          answer(
            await rpc.handleInstallSnapshot(decodeInstallSnapshotRequest(bytesOf(body, 'InstallSnapshot request'))),
            checkInstallSnapshotResponse,
          ),
      },
    ],
    [
      RaftPaths.timeoutNow,
      {
        serve: async (body) =>
          answer(await rpc.handleTimeoutNow(checkTimeoutNowRequest(jsonOf(body, 'TimeoutNow request'))), checkTimeoutNowResponse),
      },
    ],
    [
      RaftPaths.join,
      {
        serve: async (body) => answer(await rpc.handleJoin(checkJoinRequest(jsonOf(body, 'Join request'))), checkJoinResponse),
      },
    ],
    [
      RaftPaths.leave,
      {
        serve: async (body) => answer(await rpc.handleLeave(checkLeaveRequest(jsonOf(body, 'Leave request'))), checkLeaveResponse),
      },
    ],
  ]);
}

function send(res: ServerResponse, status: number, json: string, headers: Record<string, string> = {}): void {
  if (res.destroyed || res.writableEnded) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': JSON_CONTENT_TYPE, 'content-length': Buffer.byteLength(json), ...headers });
  res.end(json);
}

/** The header naming the error code of an error answer, unless configured. */
const DEFAULT_ERROR_CODE_HEADER = 'x-raft-error-code';

/**
 * What a CLUSTER_MISMATCH answer says: the node's own message names both
 * cluster ids, and a cluster id is in no answer.
 */
const CLUSTER_MISMATCH_TEXT = 'the request is for another cluster';

function sendError(res: ServerResponse, error: unknown, codeHeader: string): void {
  const status = error instanceof RaftError ? RaftHttpStatus[error.code] : 500;
  const answered = error instanceof RaftError && error.code === 'CLUSTER_MISMATCH' ? new RaftError('CLUSTER_MISMATCH', CLUSTER_MISMATCH_TEXT) : error;
  send(res, status, encodeErrorBody(answered), error instanceof RaftError ? { [codeHeader]: error.code } : {});
}

/** Answers a request refused before (or instead of) reaching the node, with a `BAD_REQUEST` body. */
function refuse(res: ServerResponse, status: number, message: string, codeHeader: string, headers: Record<string, string> = {}): void {
  send(res, status, encodeErrorBody(new RaftError('BAD_REQUEST', message)), { [codeHeader]: 'BAD_REQUEST', ...headers });
}

/**
 * Answers 413 and closes the connection: the rest of the oversized body is
 * read and dropped for a short grace period (so the client gets to read the
 * 413 instead of a reset), then the socket is destroyed.
 */
function refuseOversized(req: IncomingMessage, res: ServerResponse, limit: number, codeHeader: string): void {
  refuse(res, 413, `request body is larger than ${limit} bytes`, codeHeader, { connection: 'close' });
  req.resume();
  const socket = req.socket;
  const timer = setTimeout(() => socket.destroy(), OVERSIZE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/**
 * Reads the whole body, up to `limit` bytes. Resolves `undefined` when the
 * request was answered here (413, or a body already consumed in an unusable
 * form) or the client went away.
 */
function readBody(req: IncomingMessage, res: ServerResponse, limit: number, codeHeader: string): Promise<Body | undefined> {
  if (req.readableEnded) {
    // A body-parsing middleware ran first: use what it left in `req.body`.
    const parsed = (req as { body?: unknown }).body;
    if (parsed instanceof Uint8Array) return Promise.resolve({ bytes: parsed });
    if (typeof parsed === 'object' && parsed !== null) return Promise.resolve({ value: parsed });
    if (typeof parsed === 'string') return Promise.resolve({ bytes: Buffer.from(parsed, 'utf8') });
    send(res, 500, encodeErrorBody(new Error('the request body was consumed before the raft handler ran; mount it before body parsers')));
    return Promise.resolve(undefined);
  }
  const declared = req.headers['content-length'];
  const length = declared === undefined ? undefined : Number(declared);
  if (length !== undefined && length > limit) {
    refuseOversized(req, res, limit, codeHeader);
    return Promise.resolve(undefined);
  }
  return new Promise((resolve) => {
    // Memory grows only with bytes received (a declared length is not trusted for allocation).
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (body: Body | undefined): void => {
      if (done) return;
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onGone);
      resolve(body);
    };
    const onData = (chunk: Buffer): void => {
      if (size + chunk.byteLength > limit) {
        refuseOversized(req, res, limit, codeHeader);
        finish(undefined);
        return;
      }
      chunks.push(chunk);
      size += chunk.byteLength;
    };
    const onEnd = (): void => {
      finish({ bytes: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size) });
    };
    const onGone = (): void => {
      // The client went away (or the socket failed) before the body ended: nobody to answer.
      res.destroy();
      finish(undefined);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onGone);
  });
}

/** Finds the route of a request path (query ignored), with or without the prefix, and its path segment. */
function routeOf(url: string | undefined, prefix: string, routes: Map<string, Route>): [string, Route] | undefined {
  if (url === undefined) return undefined;
  const query = url.indexOf('?');
  let path = query === -1 ? url : url.slice(0, query);
  if (prefix !== '' && path.startsWith(`${prefix}/`)) path = path.slice(prefix.length);
  if (path.length < 2 || path.charCodeAt(0) !== 0x2f || path.indexOf('/', 1) !== -1) return undefined;
  const segment = path.slice(1);
  const route = routes.get(segment);
  return route === undefined ? undefined : [segment, route];
}

/**
 * Makes the server side of {@link HttpTransport}: a node-style request
 * handler serving the RPCs of `rpc` at `<prefix>/vote`, `/append`,
 * `/snapshot`, `/timeout-now`, `/join` and `/leave` (see {@link RaftPaths}).
 * Mount it on a `node:http` server, or in express 5 with
 * `app.use('/raft', handler)` (express strips the mount path; both forms are
 * matched). Mount it before any body parser; if one ran anyway, its
 * `req.body` (bytes or parsed JSON) is used.
 *
 * Only peers get through: the whole body is read (up to `maxBodyBytes`) and
 * its signature verified with `options.auth` (see {@link PeerAuth}) before
 * anything is decoded; a request that is not signed by a peer (missing,
 * forged, stale, replayed, signed for another node) is answered 401
 * `UNAUTHENTICATED`, reported to `onRefused`, and changes nothing.
 *
 * Every request is answered, and bad input never throws:
 * - unknown path: 404; a method other than POST: 405 (with `Allow: POST`);
 * - a body over `maxBodyBytes`: 413 and the connection is closed, without
 *   buffering the body;
 * - no valid peer signature: 401 `UNAUTHENTICATED`;
 * - a malformed body (bad JSON or binary framing, wrong types, integers that
 *   are not safe integers >= 0, checksum mismatch): 400;
 * - a `RaftError` thrown by `rpc`: its status in {@link RaftHttpStatus}
 *   (for example `NOT_LEADER` 503, `CLUSTER_MISMATCH` 409) with the error's
 *   code, message and leaderURL in the body (a `CLUSTER_MISMATCH` message is
 *   replaced by one that names no cluster id);
 * - any other failure of `rpc` (or an invalid answer from it): 500.
 * Refusals (404, 405, 413, 400) carry a `BAD_REQUEST` error body. Every
 * error answer names its code in the `errorCodeHeader` header too. A client
 * that disconnects before its body is complete gets nothing and `rpc` is not
 * called.
 *
 * @throws RaftError `BAD_REQUEST` when `auth` is not a `PeerAuth` or `maxBodyBytes` is not a positive safe integer.
 */
export function createRaftHandler(rpc: RpcHandler, options: RaftHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const auth = (options as Partial<RaftHandlerOptions> | undefined)?.auth;
  if (!(auth instanceof PeerAuth)) throw new RaftError('BAD_REQUEST', 'createRaftHandler needs options.auth (a PeerAuth): peers are always authenticated');
  const limit = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(limit) || limit <= 0) {
    throw new RaftError('BAD_REQUEST', `maxBodyBytes must be a positive safe integer, got ${String(limit)}`);
  }
  const prefix = normalizePathPrefix(options.pathPrefix ?? DEFAULT_RAFT_PATH_PREFIX);
  const codeHeader = (options.errorCodeHeader ?? DEFAULT_ERROR_CODE_HEADER).toLowerCase();
  const selfURL = options.url;
  const onRefused = options.onRefused;
  const routes = makeRoutes(rpc);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const found = routeOf(req.url, prefix, routes);
    if (found === undefined) {
      refuse(res, 404, `no raft rpc at ${req.method ?? '?'} ${(req as { originalUrl?: string }).originalUrl ?? req.url ?? '?'}`, codeHeader);
      req.resume();
      return;
    }
    const [segment, route] = found;
    if (req.method !== 'POST') {
      refuse(res, 405, `method ${req.method ?? '?'} not allowed, use POST`, codeHeader, { allow: 'POST' });
      req.resume();
      return;
    }
    const unauthenticated = (verdict: PeerAuthResult & { ok: false }): void => {
      try {
        onRefused?.({ rpc: segment, reason: verdict.reason, remoteAddress: req.socket.remoteAddress });
      } catch {
        // A listener's failure must not change the answer.
      }
      sendError(res, new RaftError('UNAUTHENTICATED', `${segment}: ${verdict.message}`), codeHeader);
    };
    // A body declared too large is refused for that first (as readBody would), then what can be checked
    // without the body is, so an unsigned request is never buffered.
    const declared = req.readableEnded ? undefined : req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) {
      refuseOversized(req, res, limit, codeHeader);
      return;
    }
    const screened = auth.screen(segment, req.headers);
    if (!screened.ok) {
      unauthenticated(screened);
      if (!req.readableEnded) req.resume();
      return;
    }
    const body = await readBody(req, res, limit, codeHeader);
    if (body === undefined) return;
    const self = typeof selfURL === 'function' ? selfURL() : selfURL;
    const verdict = auth.verify(segment, req.headers, 'bytes' in body ? body.bytes : undefined, self);
    if (!verdict.ok) {
      unauthenticated(verdict);
      return;
    }
    let json: string;
    try {
      json = await route.serve(body);
    } catch (error) {
      sendError(res, error, codeHeader);
      return;
    }
    send(res, 200, json);
  };

  const ignore = (): void => {
    // The client's socket failed: there is nobody left to answer (readBody notices through 'close').
  };
  return (req, res) => {
    req.on('error', ignore);
    res.on('error', ignore);
    handle(req, res).catch((error: unknown) => {
      // Defensive: handle() catches everything it expects; answer anything else with 500.
      try {
        sendError(res, error, codeHeader);
      } catch {
        res.destroy();
      }
    });
  };
}
