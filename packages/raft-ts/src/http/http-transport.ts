import { Agent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { createSecureContext } from 'node:tls';
import { RaftError } from '../errors.js';
import type { Transport } from '../transport.js';
import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  InstallSnapshotRequest,
  InstallSnapshotResponse,
  JoinRequest,
  JoinResponse,
  LeaveRequest,
  LeaveResponse,
  RequestVoteRequest,
  RequestVoteResponse,
  TimeoutNowRequest,
  TimeoutNowResponse,
} from '../types.js';
import { encodeAppendEntriesRequest } from './append-entries-codec.js';
import { decodeErrorBody } from './error-body.js';
import { encodeInstallSnapshotRequest } from './install-snapshot-codec.js';
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
import {
  BINARY_CONTENT_TYPE,
  DEFAULT_RAFT_PATH_PREFIX,
  JSON_CONTENT_TYPE,
  normalizePathPrefix,
  PEER_URL_HEADER,
  RaftPaths,
  type RaftRpc,
} from './paths.js';
import { PeerAuth } from './peer-auth.js';

/** PEM material the transport uses for `https:` targets (see {@link HttpTransportOptions.tls}). */
export interface TransportTls {
  /** The CAs that sign the peers' certificates. Default: Node's trusted CAs. */
  ca?: string | Buffer | readonly (string | Buffer)[] | undefined;
  /** The certificate (chain) presented to peers that ask for one (mutual TLS); needs `key`. */
  cert?: string | Buffer | undefined;
  /** The private key of `cert`. */
  key?: string | Buffer | undefined;
}

/** Options of {@link HttpTransport}. */
export interface HttpTransportOptions {
  /**
   * Signs every request for the peers' handlers (required: peers are always
   * authenticated). Give the node's handler the same instance.
   */
  auth: PeerAuth;
  /**
   * Milliseconds one call may take, from sending to the whole answer (time
   * spent waiting for a free connection included). Default 5000.
   */
  timeoutMs?: number;
  /** Milliseconds one InstallSnapshot chunk may take. Default 30000. */
  snapshotTimeoutMs?: number;
  /**
   * The agent to send through. Default: a keep-alive agent owned by the
   * transport (destroyed by `close()`). A given agent is not destroyed by
   * `close()`, and {@link HttpTransportOptions.maxConnectionsPerPeer} does
   * not apply to it; give it `keepAlive: true`.
   */
  agent?: Agent;
  /**
   * CA, certificate and key for `https:` targets: peers are verified against
   * `ca` and shown `cert` (mutual TLS when they ask for it). `https:`
   * requests always go through a keep-alive agent the transport owns;
   * {@link HttpTransport.setTls} replaces it.
   */
  tls?: TransportTls;
  /** The path prefix the peers' handlers serve under. Default `'/raft'`. */
  pathPrefix?: string;
  /**
   * Most simultaneous connections (so requests in flight) per peer with the
   * default agent; further calls wait for a free connection. Default 32.
   */
  maxConnectionsPerPeer?: number;
  /** The largest response body accepted, in bytes; a bigger one is `BAD_REQUEST`. Default 1 MiB. */
  maxResponseBytes?: number;
}

/** Where one peer's handler is: parsed once per target URL. */
interface Peer {
  hostname: string;
  port: number;
  /** The target URL's own path (no trailing slash) followed by the prefix. */
  base: string;
  /** An `https:` target. */
  https: boolean;
}

/** Errors a reused keep-alive socket gives when the server closed it while idle. */
const STALE_SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE']);

/** Errors that mean nothing listens at a learned peer address any more. */
const GONE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENOTFOUND']);

/** Caps the cache of parsed targets (peers are few; this only bounds misuse). */
const MAX_CACHED_PEERS = 1024;

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RaftError('BAD_REQUEST', `${name} must be a positive safe integer, got ${String(value)}`);
  }
  return value;
}

/**
 * The production {@link Transport}: each call POSTs one request to
 * `<target><prefix>/<rpc>` (see {@link RaftPaths}) over keep-alive HTTP/1.1
 * connections, several in flight per peer. AppendEntries (a whole batch in
 * one request) and InstallSnapshot chunks travel in a compact binary
 * encoding with entry data as raw bytes; the other RPCs and all answers are
 * JSON. The peer serves them with {@link createRaftHandler}.
 *
 * Each call resolves with the peer's validated answer or rejects with a
 * `RaftError`:
 * - `UNREACHABLE` (with `cause`): connection refused or reset, no complete
 *   answer within the timeout, or a non-2xx status without a raft error body;
 * - the peer handler's own error, same `code`, `message` and `leaderURL`;
 * - `BAD_REQUEST`: the request cannot be encoded (a number that is not a safe
 *   integer >= 0, an invalid target URL, ...) or the answer is malformed;
 * - `ABORTED` when `signal` fires (the request is cancelled);
 * - `CLOSED` after (or during) `close()`.
 *
 * A request that fails on a reused keep-alive connection before any answer
 * (the peer closed it while idle) is sent once more on a fresh connection;
 * raft RPCs tolerate duplicates. `http:` and `https:` targets are supported
 * (`https:` with {@link HttpTransportOptions.tls}).
 *
 * Every request is signed with `options.auth` (a new nonce per attempt),
 * bound to the target's URL; a peer that refuses the signature answers
 * `UNAUTHENTICATED` (not retriable). A target that serves raft on a separate
 * peer listener answers 404 with {@link PEER_URL_HEADER} at its client
 * address: the request is sent there instead, once, and later requests to
 * that target go there directly (until nothing listens there any more).
 */
export class HttpTransport implements Transport {
  readonly #agent: Agent;
  readonly #ownsAgent: boolean;
  readonly #maxSockets: number;
  #httpsAgent: HttpsAgent;
  /** Agents replaced by setTls(): their sockets end as peers close them, or at close(). */
  readonly #retired = new Set<HttpsAgent>();
  readonly #timeoutMs: number;
  readonly #snapshotTimeoutMs: number;
  readonly #maxResponseBytes: number;
  readonly #prefix: string;
  readonly #peers = new Map<string, Peer>();
  /** Peer listeners learned from {@link PEER_URL_HEADER}, by target. */
  readonly #peerListeners = new Map<string, Peer>();
  readonly #auth: PeerAuth;
  /** Fails each call in flight; used by close(). */
  readonly #inFlight = new Set<(error: RaftError) => void>();
  #closed = false;

  /**
   * Makes a transport; no I/O happens until the first call.
   * @throws RaftError `BAD_REQUEST` when `auth` is not a `PeerAuth` or a numeric option is not a positive safe integer.
   */
  constructor(options: HttpTransportOptions) {
    const auth = (options as Partial<HttpTransportOptions> | undefined)?.auth;
    if (!(auth instanceof PeerAuth)) throw new RaftError('BAD_REQUEST', 'HttpTransport needs options.auth (a PeerAuth): peers are always authenticated');
    this.#auth = auth;
    this.#timeoutMs = positive('timeoutMs', options.timeoutMs ?? 5000);
    this.#snapshotTimeoutMs = positive('snapshotTimeoutMs', options.snapshotTimeoutMs ?? 30_000);
    this.#maxResponseBytes = positive('maxResponseBytes', options.maxResponseBytes ?? 1024 * 1024);
    this.#prefix = normalizePathPrefix(options.pathPrefix ?? DEFAULT_RAFT_PATH_PREFIX);
    const maxSockets = positive('maxConnectionsPerPeer', options.maxConnectionsPerPeer ?? 32);
    this.#ownsAgent = options.agent === undefined;
    this.#agent = options.agent ?? new Agent({ keepAlive: true, maxSockets, scheduling: 'lifo' });
    this.#maxSockets = maxSockets;
    this.#httpsAgent = this.#tlsAgent(options.tls ?? {});
  }

  /**
   * Uses `tls` for `https:` requests from now on (a certificate rotation):
   * later requests go over new connections made with it; requests in flight
   * finish on theirs. Options that Node refuses (an unparsable PEM) throw
   * here and leave the current ones in use.
   */
  setTls(tls: TransportTls): void {
    const next = this.#tlsAgent(tls);
    const previous = this.#httpsAgent;
    this.#httpsAgent = next;
    // Idle connections made with the old certificate are not reused; busy ones end with their request.
    for (const sockets of Object.values(previous.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
    this.#retired.add(previous);
    if (this.#closed) previous.destroy();
  }

  #tlsAgent(tls: TransportTls): HttpsAgent {
    // Parse the PEM now (createSecureContext throws on a bad one), not on the first request.
    const options = { ca: tls.ca as string | Buffer | (string | Buffer)[] | undefined, cert: tls.cert, key: tls.key };
    createSecureContext(options);
    return new HttpsAgent({ keepAlive: true, maxSockets: this.#maxSockets, scheduling: 'lifo', ...options });
  }

  /** Whether {@link HttpTransport.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends a RequestVote (or PreVote) as JSON. */
  async requestVote(target: string, request: RequestVoteRequest, signal?: AbortSignal): Promise<RequestVoteResponse> {
    return this.#json('requestVote', target, checkRequestVoteRequest(request), checkRequestVoteResponse, signal);
  }

  /** Sends a whole batch of entries (or a heartbeat) in one binary request. */
  async appendEntries(target: string, request: AppendEntriesRequest, signal?: AbortSignal): Promise<AppendEntriesResponse> {
    const body = encodeAppendEntriesRequest(request);
    return this.#send('appendEntries', target, BINARY_CONTENT_TYPE, body, checkAppendEntriesResponse, this.#timeoutMs, signal);
  }

  /** Sends one snapshot chunk in a binary request; its timeout is `snapshotTimeoutMs`. */
  async installSnapshot(target: string, request: InstallSnapshotRequest, signal?: AbortSignal): Promise<InstallSnapshotResponse> {
    const body = encodeInstallSnapshotRequest(request);
    return this.#send('installSnapshot', target, BINARY_CONTENT_TYPE, body, checkInstallSnapshotResponse, this.#snapshotTimeoutMs, signal);
  }

  /** Sends a TimeoutNow as JSON. */
  async timeoutNow(target: string, request: TimeoutNowRequest, signal?: AbortSignal): Promise<TimeoutNowResponse> {
    return this.#json('timeoutNow', target, checkTimeoutNowRequest(request), checkTimeoutNowResponse, signal);
  }

  /** Sends a Join as JSON. */
  async join(target: string, request: JoinRequest, signal?: AbortSignal): Promise<JoinResponse> {
    return this.#json('join', target, checkJoinRequest(request), checkJoinResponse, signal);
  }

  /** Sends a Leave as JSON. */
  async leave(target: string, request: LeaveRequest, signal?: AbortSignal): Promise<LeaveResponse> {
    return this.#json('leave', target, checkLeaveRequest(request), checkLeaveResponse, signal);
  }

  /**
   * Fails every call in flight with `CLOSED`, makes later calls fail with
   * `CLOSED`, and destroys the sockets of the transport's own agent so none
   * keeps the process alive. Calling it again does nothing (the transport
   * may be shared by its creator and a node).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const error = new RaftError('CLOSED', 'transport closed');
    for (const fail of [...this.#inFlight]) fail(error);
    if (this.#ownsAgent) this.#agent.destroy();
    this.#httpsAgent.destroy();
    for (const agent of this.#retired) agent.destroy();
    this.#retired.clear();
  }

  /** Same as {@link HttpTransport.close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #json<T>(rpc: RaftRpc, target: string, request: unknown, check: (value: unknown) => T, signal: AbortSignal | undefined): Promise<T> {
    const body = Buffer.from(JSON.stringify(request), 'utf8');
    return this.#send(rpc, target, JSON_CONTENT_TYPE, body, check, this.#timeoutMs, signal);
  }

  #peer(target: string): Peer {
    const cached = this.#peers.get(target);
    if (cached) return cached;
    const peer = this.#parse(target);
    if (this.#peers.size >= MAX_CACHED_PEERS) this.#peers.clear();
    this.#peers.set(target, peer);
    return peer;
  }

  #parse(target: string): Peer {
    let url: URL;
    try {
      url = new URL(target);
    } catch (cause) {
      throw new RaftError('BAD_REQUEST', `invalid target URL ${JSON.stringify(target)}`, { cause });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new RaftError('BAD_REQUEST', `unsupported target URL ${JSON.stringify(target)}: only http: and https: are supported`);
    }
    const https = url.protocol === 'https:';
    return {
      hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port === '' ? (https ? 443 : 80) : Number(url.port),
      base: url.pathname.replace(/\/+$/, '') + this.#prefix,
      https,
    };
  }

  /** The peer listener a 404 named, or `undefined` when the header is absent or not an `http:` or `https:` URL. */
  #learn(target: string, res: IncomingMessage): Peer | undefined {
    const value = res.headers[PEER_URL_HEADER];
    if (typeof value !== 'string') return undefined;
    let peer: Peer;
    try {
      peer = this.#parse(value);
    } catch {
      return undefined;
    }
    if (this.#peerListeners.size >= MAX_CACHED_PEERS) this.#peerListeners.clear();
    this.#peerListeners.set(target, peer);
    return peer;
  }

  #send<T>(
    rpc: RaftRpc,
    target: string,
    contentType: string,
    body: Buffer,
    check: (value: unknown) => T,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    if (this.#closed) return Promise.reject(new RaftError('CLOSED', 'transport closed'));
    if (signal?.aborted) return Promise.reject(new RaftError('ABORTED', `${rpc} to ${target} aborted`, { cause: signal.reason }));
    const first = this.#peerListeners.get(target) ?? this.#peer(target);
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let current: ClientRequest | undefined;
      const settle = (error: RaftError | undefined, value?: T): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#inFlight.delete(fail);
        if (error) {
          current?.destroy();
          reject(error);
        } else {
          resolve(value as T);
        }
      };
      const fail = (error: RaftError): void => settle(error);
      const onAbort = (): void => fail(new RaftError('ABORTED', `${rpc} to ${target} aborted`, { cause: signal?.reason }));
      const timer = setTimeout(() => {
        const cause = Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
        fail(new RaftError('UNREACHABLE', `${rpc} to ${target} timed out after ${timeoutMs} ms`, { cause }));
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#inFlight.add(fail);

      const onResponse = (res: IncomingMessage, redirected: boolean): void => {
        const status = res.statusCode ?? 0;
        if (status === 404 && !redirected) {
          const listener = this.#learn(target, res);
          if (listener !== undefined) {
            res.resume();
            attempt(listener, false, true);
            return;
          }
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (settled) return;
          size += chunk.byteLength;
          if (size > this.#maxResponseBytes) {
            fail(new RaftError('BAD_REQUEST', `${rpc} to ${target}: response is larger than ${this.#maxResponseBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          if (settled) return;
          const bytes = Buffer.concat(chunks, size);
          if (status >= 200 && status < 300) {
            try {
              settle(undefined, check(parseJson(bytes, `${rpc} response`)));
            } catch (error) {
              fail(
                error instanceof RaftError
                  ? new RaftError('BAD_REQUEST', `${rpc} to ${target}: ${error.message}`, { cause: error })
                  : new RaftError('BAD_REQUEST', `${rpc} to ${target}: malformed response`, { cause: error }),
              );
            }
            return;
          }
          let remote: RaftError | undefined;
          try {
            remote = decodeErrorBody(JSON.parse(bytes.toString('utf8')));
          } catch {
            remote = undefined;
          }
          if (remote) {
            fail(remote);
            return;
          }
          const cause = Object.assign(new Error(`HTTP ${status}: ${bytes.toString('utf8', 0, Math.min(size, 200))}`), { status });
          fail(new RaftError('UNREACHABLE', `${rpc} to ${target} answered HTTP ${status}`, { cause }));
        });
        res.on('error', (cause) => fail(new RaftError('UNREACHABLE', `${rpc} to ${target} failed reading the answer: ${cause.message}`, { cause })));
        res.on('close', () => {
          if (!res.complete) fail(new RaftError('UNREACHABLE', `${rpc} to ${target}: connection closed before the answer ended`));
        });
      };

      const attempt = (peer: Peer, mayRetry: boolean, redirected: boolean): void => {
        let answered = false;
        let headers: Record<string, string>;
        try {
          headers = this.#auth.sign(rpc, target, body);
        } catch (error) {
          fail(error instanceof RaftError ? error : new RaftError('UNAUTHENTICATED', `${rpc} to ${target}: cannot sign`, { cause: error }));
          return;
        }
        const req = (peer.https ? httpsRequest : httpRequest)({
          agent: peer.https ? this.#httpsAgent : this.#agent,
          hostname: peer.hostname,
          port: peer.port,
          path: `${peer.base}/${RaftPaths[rpc]}`,
          method: 'POST',
          headers: { 'content-type': contentType, 'content-length': body.byteLength, accept: JSON_CONTENT_TYPE, ...headers },
        });
        current = req;
        req.on('response', (res) => {
          answered = true;
          onResponse(res, redirected);
        });
        req.on('error', (cause: NodeJS.ErrnoException) => {
          // Once an answer arrived, its own events (end, error, close) and the timer settle the call:
          // a peer that answers early (413) and closes may make the rest of the upload fail here.
          if (settled || answered) return;
          if (mayRetry && !answered && req.reusedSocket && cause.code !== undefined && STALE_SOCKET_CODES.has(cause.code)) {
            attempt(peer, false, redirected);
            return;
          }
          // A learned peer listener that is gone: the next call asks the target's address again.
          if (cause.code !== undefined && GONE_CODES.has(cause.code) && this.#peerListeners.get(target) === peer) this.#peerListeners.delete(target);
          fail(new RaftError('UNREACHABLE', `${rpc} to ${target} failed: ${cause.message}`, { cause }));
        });
        req.end(body);
      };
      attempt(first, true, first !== this.#peers.get(target));
    });
  }
}
