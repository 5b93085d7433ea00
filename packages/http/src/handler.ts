import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { BrokerError, Paths, Query, parseU64 } from '@msg/wire';
import { authenticatedIdentity, markAuthenticated, type AuthStats, type Authorizer, type Permission } from './auth.js';
import type { HandlerBroker, PublishMessage, RaftListener } from './broker.js';
import { DEFAULT_MAX_BODY_BYTES } from './body.js';
import { Limits } from './limits.js';
import type { HandlerMetrics, RouteName } from './metrics.js';
import { sendError } from './reply.js';
import { Routes, splitURL, type InternalErrorListener } from './routes.js';

/** Options of {@link createHandler}. */
export interface HandlerOptions {
  /**
   * Largest request body accepted, in bytes (default 16 MiB). A larger body
   * is answered 413 `BODY_TOO_LARGE` without being buffered, and its
   * connection is closed.
   */
  maxBodyBytes?: number;
  /**
   * Serve single publish, batch publish and the stream GET straight from the
   * `node:http` listener, bypassing express (default true). The answers are
   * the same either way (the same route functions serve both); only the
   * per-request cost differs.
   */
  fastPath?: boolean;
  /**
   * Called with every unexpected (non-`BrokerError`) error, which is
   * answered 500 `internal error` without details. Default: `console.error`.
   */
  onInternalError?: InternalErrorListener;
  /**
   * The raft transport's listener, mounted under `/raft`; takes precedence
   * over `broker.raftHandler` (convenient when the broker object has none,
   * e.g. a `Broker` class of `@msg/broker` served as is).
   */
  raftHandler?: RaftListener;
  /**
   * Limits on connections, streams, slow clients and stalled streams
   * (default `new Limits()`). The handler enforces the stream limits and
   * answers the requests of refused connections; `limits.attach(server)`
   * is what counts the connections and sets the timeouts.
   */
  limits?: Limits;
  /**
   * Who may use the client API (default: none, the API is open). With it,
   * every client route (`/health`, `/ready` and `/raft/*` aside) needs a
   * credential the authorizer knows (else 401 `UNAUTHENTICATED`, with
   * `WWW-Authenticate: Bearer`) with the route's permission (else 403
   * `FORBIDDEN`): publish on the topic (every message's, for a batch),
   * subscribe on the topic (stream GETs and heartbeats), admin (`/status`,
   * `/metrics`); ping needs any credential. Checked before the stream
   * limits, so a refused request takes no stream slot.
   */
  authorizer?: Authorizer;
}

/** A broker's HTTP API: see {@link createHandler}. */
export interface Handler {
  /** The listener to give `http.createServer()` (fast path first, then express). */
  readonly listener: (req: IncomingMessage, res: ServerResponse) => void;
  /** The express app serving every route (the fast path aside); mountable elsewhere. */
  readonly app: Express;
  /** The handler's own counters (requests, latency, bytes published and streamed). */
  readonly metrics: HandlerMetrics;
  /** Stream responses open now. */
  readonly activeStreams: number;
  /** The limits it enforces (`options.limits`, else the defaults); counted in `/metrics`. */
  readonly limits: Limits;
  /**
   * For shutdown: ends every open stream cleanly (their readers closed) and
   * answers new stream requests with 503 `broker already closed`; other
   * routes keep working. Idempotent; does not close the HTTP server.
   */
  close(): void;
}

/**
 * Builds the HTTP API of a broker: the original's routes (same paths, query
 * parameters and their check order, status codes, `X-Broker-Error` texts, 307
 * leader redirects), batch publish, `/raft` (`options.raftHandler`, else the
 * broker's `raftHandler`),
 * `/health`, `/ready`, `/metrics` and `/status`.
 *
 * Constructing it does no I/O:
 * ```ts
 * const handler = createHandler(broker);
 * const server = http.createServer(handler.listener);
 * server.listen(8086);
 * ```
 */
export function createHandler(broker: HandlerBroker, options: HandlerOptions = {}): Handler {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) {
    throw new RangeError(`maxBodyBytes must be a positive integer, got ${maxBodyBytes}`);
  }
  const onInternalError: InternalErrorListener =
    options.onInternalError ??
    ((error, request) => {
      console.error(`@msg/http: internal error answering ${request.method} ${request.url}`, error);
    });
  const authorizer = options.authorizer;
  let gate: Gate | undefined;
  const routes = new Routes(broker, {
    maxBodyBytes,
    onInternalError,
    authorizeBatch: authorizer === undefined ? undefined : (req, messages) => gate?.authorizeBatch(req, messages),
  });
  if (authorizer !== undefined) {
    gate = new Gate(authorizer, routes);
    routes.metrics.auth = hasStats(authorizer) ? authorizer : NO_AUTH_STATS;
  }
  const limits = options.limits ?? new Limits();
  routes.metrics.limits = limits;
  const raft = options.raftHandler ?? broker.raftHandler;
  const guard = new Guard(limits, routes);
  const app = createApp(raft, routes, guard, gate);

  const fastPath = options.fastPath ?? true;
  const publish = routes.publish;
  const stream = routes.stream;
  const batch = routes.batch;
  const listener = fastPath
    ? (req: IncomingMessage, res: ServerResponse): void => {
        const start = performance.now();
        if (guard.refuseConnection(req, res, start)) return;
        const [path, query] = splitURL(req.url ?? '/');
        if (path === Paths.messages) {
          if (req.method === 'POST') {
            if (gate?.refuse(req, res, path, query, start)) return;
            return void publish(req, res, query, start);
          }
          if (req.method === 'GET') {
            if (gate?.refuse(req, res, path, query, start)) return;
            if (guard.refuseStream(req, res, start)) return;
            return void stream(req, res, query, start);
          }
        } else if (path === Paths.batch && req.method === 'POST') {
          if (gate?.refuse(req, res, path, query, start)) return;
          return void batch(req, res, query, start);
        } else if (raft !== undefined && path.startsWith(RAFT_PREFIX)) {
          // Raft's RPCs between brokers: every AppendEntries of the cluster, so no express either. The
          // listener sees the path relative to the mount, as under express (which also keeps originalUrl).
          const mounted = req as IncomingMessage & { originalUrl?: string };
          mounted.originalUrl = req.url;
          req.url = (req.url ?? '/').slice(Paths.raft.length);
          return serveRaft(raft, routes, req, res, start, (error) => routes.fail(req, res, error));
        }
        app(req, res);
      }
    : (req: IncomingMessage, res: ServerResponse): void => {
        if (guard.refuseConnection(req, res, performance.now())) return;
        app(req, res);
      };

  return {
    listener,
    app,
    metrics: routes.metrics,
    get activeStreams() {
      return routes.activeStreams;
    },
    limits,
    close: () => routes.close(),
  };
}

/**
 * Applies the request-level part of {@link Limits}: each method answers 503
 * (`Retry-After`, `Connection: close`), records the request and returns true
 * when a limit refuses it.
 */
class Guard {
  readonly #limits: Limits;
  readonly #routes: Routes;

  constructor(limits: Limits, routes: Routes) {
    this.#limits = limits;
    this.#routes = routes;
  }

  /** A request on a connection accepted past a connection limit: `TOO_MANY_CONNECTIONS`. */
  refuseConnection(req: IncomingMessage, res: ServerResponse, start: number): boolean {
    const refusal = this.#limits.refusal(req);
    if (refusal === undefined) return false;
    this.#refuse(res, refusal, 'other', start);
    return true;
  }

  /** A stream GET past a stream limit: `TOO_MANY_STREAMS`; otherwise it takes a slot until its answer closes. */
  refuseStream(req: IncomingMessage, res: ServerResponse, start: number): boolean {
    const refusal = this.#limits.admitStream(req, res);
    if (refusal === undefined) return false;
    this.#refuse(res, refusal, 'stream', start);
    return true;
  }

  #refuse(res: ServerResponse, error: BrokerError, route: RouteName, start: number): void {
    // The request's body (if any) is left unread: the connection closes after the answer.
    sendError(res, error, { 'Retry-After': this.#limits.retryAfter, Connection: 'close' });
    this.#routes.record(route, res, start);
  }
}

/** What a request needs of the authorizer: nothing, any identity, or a permission (on the `topicID` query parameter). */
type Requirement = 'open' | 'identity' | { permission: Permission; topic: boolean };

const PUBLISH: Requirement = { permission: 'publish', topic: true };
const SUBSCRIBE: Requirement = { permission: 'subscribe', topic: true };
const ADMIN: Requirement = { permission: 'admin', topic: false };

/** The requirement of each path of the routes table, by method (`'*'`: any other). */
const REQUIREMENTS: ReadonlyMap<string, Readonly<Record<string, Requirement>>> = new Map<string, Readonly<Record<string, Requirement>>>([
  [Paths.messages, { POST: PUBLISH, GET: SUBSCRIBE, HEAD: SUBSCRIBE, '*': 'identity' }],
  // A batch's topics are checked once its body is decoded (Gate.authorizeBatch).
  [Paths.batch, { '*': 'identity' }],
  [Paths.heartbeat, { POST: SUBSCRIBE, '*': 'identity' }],
  [Paths.ping, { '*': 'identity' }],
  [Paths.health, { '*': 'open' }],
  [Paths.ready, { '*': 'open' }],
  [Paths.metrics, { '*': ADMIN }],
  [Paths.status, { '*': ADMIN }],
  // A producer's key is prefixed with the caller's identity: each sees only its own.
  [Paths.producers, { '*': 'identity' }],
]);

/** Authorizer stats of an authorizer that keeps none. */
const NO_AUTH_STATS: AuthStats = { identityCount: 0, reloads: () => 0 };

function hasStats(authorizer: Authorizer): authorizer is Authorizer & AuthStats {
  const candidate = authorizer as Partial<AuthStats>;
  return typeof candidate.reloads === 'function' && typeof candidate.identityCount === 'number';
}

/**
 * Applies an {@link Authorizer} before dispatch: 401 `UNAUTHENTICATED` or
 * 403 `FORBIDDEN` (recorded, counted), else marks the request with its
 * identity (see `authenticatedIdentity`).
 */
class Gate {
  readonly #authorizer: Authorizer;
  readonly #routes: Routes;

  constructor(authorizer: Authorizer, routes: Routes) {
    this.#authorizer = authorizer;
    this.#routes = routes;
  }

  /** Checks a request for a path of the routes table; true when it was refused (and answered). */
  refuse(req: IncomingMessage, res: ServerResponse, path: string, query: string, start: number): boolean {
    const byMethod = REQUIREMENTS.get(path);
    if (byMethod === undefined) return false;
    const method = req.method ?? '';
    const requirement = (Object.hasOwn(byMethod, method) ? byMethod[method] : undefined) ?? byMethod['*'] ?? 'identity';
    if (requirement === 'open') return false;
    const identity = this.#authorizer.authenticate(req);
    let refusal: BrokerError | undefined;
    if (identity === undefined) {
      refusal = this.#unauthenticated(req);
    } else {
      markAuthenticated(req, identity);
      if (requirement !== 'identity') {
        const topicID = requirement.topic ? parseU64(new URLSearchParams(query).get(Query.topicID)) : undefined;
        // Without a valid topic id the route answers TOPIC_REQUIRED itself.
        if ((!requirement.topic || topicID !== undefined) && !this.#authorizer.permits(identity, requirement.permission, topicID)) {
          refusal = this.#forbidden(identity, requirement.permission, topicID);
        }
      }
    }
    if (refusal === undefined) return false;
    const headers: Record<string, string> = refusal.code === 'UNAUTHENTICATED' ? { 'WWW-Authenticate': 'Bearer realm="msg"' } : {};
    // A body left unread: close the connection after the answer.
    if (method !== 'GET' && method !== 'HEAD') headers.Connection = 'close';
    sendError(res, refusal, headers);
    const route = this.#routes.table.get(path);
    this.#routes.record((route?.[method as 'GET'] ?? route?.['*'])?.name ?? 'other', res, start);
    return true;
  }

  /** The batch route's hook: every message's topic needs publish; throws `FORBIDDEN` naming the first that lacks it. */
  authorizeBatch(req: IncomingMessage, messages: readonly PublishMessage[]): void {
    const identity = authenticatedIdentity(req) ?? this.#authorizer.authenticate(req);
    if (identity === undefined) throw this.#unauthenticated(req);
    for (const message of messages) {
      if (!this.#authorizer.permits(identity, 'publish', message.topicID)) throw this.#forbidden(identity, 'publish', message.topicID);
    }
  }

  #unauthenticated(req: IncomingMessage): BrokerError {
    this.#routes.metrics.authFailures.unauthenticated++;
    const text = req.headers.authorization === undefined ? 'a bearer token is required' : 'the credential is not known';
    return new BrokerError('UNAUTHENTICATED', { message: `unauthenticated: ${text}` });
  }

  #forbidden(identity: string, permission: Permission, topicID: bigint | undefined): BrokerError {
    this.#routes.metrics.authFailures.forbidden++;
    const what = permission === 'admin' ? 'admin' : `${permission} on topic ${topicID}`;
    return new BrokerError('FORBIDDEN', { message: `forbidden: ${JSON.stringify(identity)} has no ${what}` });
  }
}

/** The express app: one route per path (405 for other methods), `/raft`, then 404. */
function createApp(raft: RaftListener | undefined, routes: Routes, guard: Guard, gate: Gate | undefined): Express {
  const app = express();
  // Paths match exactly, as in the original.
  app.set('case sensitive routing', true);
  app.set('strict routing', true);
  app.set('x-powered-by', false);
  app.set('etag', false);
  app.set('query parser', false);

  for (const path of routes.table.keys()) {
    const streams = path === Paths.messages;
    app.all(path, (req: Request, res: Response) => {
      const start = performance.now();
      if (gate?.refuse(req, res, path, splitURL(req.url)[1], start)) return;
      if (streams && req.method === 'GET' && guard.refuseStream(req, res, start)) return;
      void routes.dispatch(req, res, path, splitURL(req.url)[1], start);
    });
  }
  if (raft !== undefined) {
    app.use(Paths.raft, (req: Request, res: Response, next: NextFunction) => {
      serveRaft(raft, routes, req, res, performance.now(), next);
    });
  }
  app.use((req: Request, res: Response) => {
    void routes.notFound(req, res, performance.now());
  });
  // Errors thrown by the raft handler or by express itself.
  app.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    routes.fail(req, res, error);
  });
  return app;
}

/** Paths under it go to the raft listener. */
const RAFT_PREFIX = `${Paths.raft}/`;

/** Hands a request to the raft listener, counting it as a `raft` request; a throw or rejection goes to `fail`. */
function serveRaft(raft: RaftListener, routes: Routes, req: IncomingMessage, res: ServerResponse, start: number, fail: (error: unknown) => void): void {
  res.once('finish', () => routes.record('raft', res, start));
  try {
    // Typed as returning void, but an async listener's rejection must not go unhandled.
    const result: unknown = raft(req, res);
    if (result instanceof Promise) result.catch(fail);
  } catch (error) {
    fail(error);
  }
}
