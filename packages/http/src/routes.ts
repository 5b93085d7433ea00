import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  BrokerError,
  Headers,
  MAX_U64,
  MESSAGES_CONTENT_TYPE,
  MESSAGE_HEADER_SIZE,
  Paths,
  Query,
  encodeFrame,
  frameTopicID,
  frameType,
  isBrokerError,
  parseU16,
  parseU64,
  splitFrames,
  writeFrameIndex,
  type Frame,
} from '@msg/wire';
import type { HandlerBroker, PublishMessage } from './broker.js';
import { ClientGoneError, readBody } from './body.js';
import { authenticatedIdentity } from './auth.js';
import { HandlerMetrics, type RouteName } from './metrics.js';
import { ResponseHeaders, brokerError, sendError, sendJSON } from './reply.js';
import { FramePump } from './stream.js';

/** Query parameter of `POST /messaging/heartbeat` naming the reporting reader (ours; optional). */
export const READER_ID_QUERY = 'readerID';

/** Called with every error that is not a `BrokerError` (answered as a 500 `INTERNAL`). */
export type InternalErrorListener = (error: unknown, request: { method: string; url: string }) => void;

/** What the routes need besides the broker. */
export interface RoutesOptions {
  /** Largest request body accepted, in bytes. */
  maxBodyBytes: number;
  /** Sink of unexpected errors. */
  onInternalError: InternalErrorListener;
  /** Called with a batch's decoded messages before any is published; a `BrokerError` it throws (`FORBIDDEN`) is the answer. */
  authorizeBatch?: ((req: IncomingMessage, messages: readonly PublishMessage[]) => void) | undefined;
}

/** A route function: answers one request; never rejects. */
export type RouteFunction = (req: IncomingMessage, res: ServerResponse, query: string, start: number) => Promise<void>;

/** The methods a path accepts, each with its route. `'*'` accepts any method. */
export type PathMethods = Readonly<Partial<Record<'GET' | 'POST' | 'HEAD' | '*', { name: RouteName; serve: RouteFunction }>>>;

/** Splits a request target into its path and its raw query (without `?`). */
export function splitURL(url: string): [path: string, query: string] {
  const q = url.indexOf('?');
  return q < 0 ? [url, ''] : [url.slice(0, q), url.slice(q + 1)];
}

/** The scheme and host of `url` (`http://h:p`), or `undefined` if it is not an http(s) URL. */
function originOf(url: string | undefined): string | undefined {
  if (url === undefined || url === '') return undefined;
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return undefined;
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return undefined;
  }
}

/**
 * The handler's routes, shared by the express app and the `node:http` fast
 * path so both answer byte for byte the same. Each route validates in the
 * original's order, calls the broker, and answers; every failure becomes an
 * error answer (see `sendError`), never a rejection.
 */
export class Routes {
  readonly #broker: HandlerBroker;
  readonly #options: RoutesOptions;
  readonly #pumps = new Set<FramePump>();
  #closed = false;
  /** The handler's own counters. */
  readonly metrics = new HandlerMetrics();
  /** Every path this handler serves itself (the raft mount aside), with its methods. */
  readonly table: ReadonlyMap<string, PathMethods>;

  constructor(broker: HandlerBroker, options: RoutesOptions) {
    this.#broker = broker;
    this.#options = options;
    const get = (name: RouteName, serve: RouteFunction): PathMethods => ({ GET: { name, serve }, HEAD: { name, serve } });
    this.table = new Map<string, PathMethods>([
      [Paths.messages, { GET: { name: 'stream', serve: this.stream }, POST: { name: 'publish', serve: this.publish } }],
      [Paths.batch, { POST: { name: 'batch', serve: this.batch } }],
      [Paths.heartbeat, { POST: { name: 'heartbeat', serve: this.heartbeat } }],
      [Paths.ping, { '*': { name: 'ping', serve: this.ping } }],
      [Paths.health, get('health', this.health)],
      [Paths.ready, get('ready', this.ready)],
      [Paths.metrics, get('metrics', this.metricsText)],
      [Paths.status, get('status', this.status)],
      [Paths.producers, get('producers', this.producers)],
    ]);
  }

  /** Stream responses open now. */
  get activeStreams(): number {
    return this.#pumps.size;
  }

  /**
   * Ends every open stream cleanly (readers closed, bodies ended) and answers
   * later stream requests with 503 `broker already closed`. Idempotent.
   */
  close(): void {
    this.#closed = true;
    for (const pump of this.#pumps) pump.stop();
  }

  /**
   * Answers a request for a path of {@link table}: its route, or 405 with
   * `Allow` for another method. Unknown paths get 404.
   */
  dispatch(req: IncomingMessage, res: ServerResponse, path: string, query: string, start: number): Promise<void> {
    const methods = this.table.get(path);
    if (methods === undefined) return this.notFound(req, res, start);
    const method = req.method ?? '';
    const route = (Object.hasOwn(methods, method) ? methods[method as 'GET'] : undefined) ?? methods['*'];
    if (route === undefined) {
      this.#answerError(res, brokerError('METHOD_NOT_ALLOWED'), { Allow: Object.keys(methods).join(', ') });
      this.#record('other', res, start);
      return Promise.resolve();
    }
    // Routes that ignore their body still refuse one declared over the limit.
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > this.#options.maxBodyBytes) {
      this.#answerError(res, brokerError('BODY_TOO_LARGE', `body too large: the limit is ${this.#options.maxBodyBytes} bytes`));
      this.#record(route.name, res, start);
      return Promise.resolve();
    }
    return route.serve(req, res, query, start);
  }

  /** 404 `not found`. */
  notFound = async (_req: IncomingMessage, res: ServerResponse, start: number): Promise<void> => {
    this.#answerError(res, brokerError('NOT_FOUND'));
    this.#record('other', res, start);
  };

  /** Answers an error that escaped a foreign handler (the raft mount). */
  fail(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.#fail(req, res, error);
  }

  /** `POST /messaging/messages?type&topicID`: publish one message (the body is its data). */
  publish: RouteFunction = this.#route('publish', async (req, res, query) => {
    const q = new URLSearchParams(query);
    const type = parseU16(q.get(Query.type));
    if (type === undefined) throw brokerError('MESSAGE_TYPE_REQUIRED');
    const topicID = parseU64(q.get(Query.topicID));
    if (topicID === undefined) throw brokerError('TOPIC_REQUIRED');
    const producer = producerOf(req);
    const data = await readBody(req, this.#options.maxBodyBytes);
    if (data.byteLength === 0) throw brokerError('MESSAGE_DATA_REQUIRED');
    if (!this.#broker.isLeader()) {
      this.#redirect(req, res, undefined);
      return;
    }
    // Validated here, encoded once: the broker puts this frame into its log as it is.
    const frame = encodeFrame({ type, topicID, data });
    const index = await this.#broker.publish(producer === undefined ? { type, topicID, data, frame } : { type, topicID, data, frame, producer }, this.#signalFor(res));
    this.metrics.publishedMessages++;
    this.metrics.publishedBytes += data.byteLength;
    if (res.destroyed) return;
    res.writeHead(200, { [ResponseHeaders.index]: index.toString(), 'Content-Length': '0' });
    res.end();
  });

  /**
   * `POST /messaging/batch`: publish many messages (the body holds them
   * encoded back to back; their index fields are ignored) at consecutive
   * indexes, in body order.
   */
  batch: RouteFunction = this.#route('batch', async (req, res) => {
    const producer = producerOf(req);
    const body = await readBody(req, this.#options.maxBodyBytes);
    const messages = decodeBatch(body, this.#options.maxBodyBytes);
    if (producer !== undefined) {
      for (let i = 0; i < messages.length; i++) messages[i]!.producer = { id: producer.id, seq: producer.seq + BigInt(i) };
      if (producer.seq + BigInt(messages.length - 1) > MAX_U64) throw brokerError('INVALID_PRODUCER', 'invalid producer: the batch runs past the largest sequence');
    }
    this.#options.authorizeBatch?.(req, messages);
    if (!this.#broker.isLeader()) {
      this.#redirect(req, res, undefined);
      return;
    }
    const range = await this.#broker.publishBatch(messages, this.#signalFor(res));
    this.metrics.publishedMessages += messages.length;
    for (const m of messages) this.metrics.publishedBytes += m.data.byteLength;
    if (res.destroyed) return;
    const headers: Record<string, string> = {
      [ResponseHeaders.index]: range.firstIndex.toString(),
      [ResponseHeaders.lastIndex]: range.lastIndex.toString(),
      'Content-Length': '0',
    };
    if (producer !== undefined) headers[ResponseHeaders.duplicates] = String(range.duplicates ?? 0);
    if (range.indexes !== undefined) headers[ResponseHeaders.indexes] = indexRuns(range.indexes);
    res.writeHead(200, headers);
    res.end();
  });

  /** `GET /messaging/producers?producerID`: `{"producerID","next"}`, the sequence that producer (of the caller's identity) sends next; 404 for one not held. */
  producers: RouteFunction = this.#route('producers', async (req, res, query) => {
    const id = new URLSearchParams(query).get(Query.producerID);
    if (id === null || !PRODUCER_ID.test(id)) throw brokerError('INVALID_PRODUCER', PRODUCER_ID_TEXT);
    if (this.#broker.producerNext === undefined) throw brokerError('NOT_FOUND');
    if (!this.#broker.isLeader()) {
      this.#redirect(req, res, undefined);
      return;
    }
    const next = this.#broker.producerNext(producerKey(req, id));
    if (next === undefined) throw brokerError('NOT_FOUND', `not found: producer ${id} has published nothing the broker remembers`);
    sendJSON(res, 200, { producerID: id, next });
  });

  /** `GET /messaging/messages?topicID&index&streaming`: stream a topic's frames. */
  stream: RouteFunction = this.#route('stream', async (req, res, query) => {
    let pump: FramePump | undefined;
    try {
      const q = new URLSearchParams(query);
      const topicID = parseU64(q.get(Query.topicID));
      if (topicID === undefined) throw brokerError('TOPIC_REQUIRED');
      const index = parseU64(q.get(Query.index));
      if (index === undefined) throw brokerError('INDEX_REQUIRED');
      const streaming = q.get(Query.streaming) === 'true';
      if (this.#closed) throw brokerError('BROKER_CLOSED');
      const frames = await this.#broker.openTopicReader(topicID, index, { streaming });
      pump = new FramePump(
        res,
        frames,
        (n) => {
          this.metrics.streamedBytes += n;
        },
        (error) => this.#report(req, error),
      );
      if (res.destroyed) {
        await frames.close();
        return;
      }
      res.writeHead(200, { 'Content-Type': MESSAGES_CONTENT_TYPE, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
      // A streaming client learns at once that its stream is open; a
      // non-streaming answer goes out with its first chunk (or its end).
      if (streaming) res.flushHeaders();
      this.#pumps.add(pump);
      this.metrics.activeStreams = this.#pumps.size;
      if (this.#closed) pump.stop();
      await pump.run();
    } finally {
      if (pump) this.#pumps.delete(pump);
      this.metrics.activeStreams = this.#pumps.size;
    }
  });

  /**
   * `POST /messaging/heartbeat?topicID&index[&readerID]`: a reader reports what
   * it has stored. `readerID` (ours, optional) is passed on as is.
   */
  heartbeat: RouteFunction = this.#route('heartbeat', async (req, res, query) => {
    const q = new URLSearchParams(query);
    const topicID = parseU64(q.get(Query.topicID));
    if (topicID === undefined) throw brokerError('TOPIC_REQUIRED');
    const index = parseU64(q.get(Query.index));
    if (index === undefined) throw brokerError('INDEX_REQUIRED');
    if (!this.#broker.isLeader()) {
      this.#redirect(req, res, undefined);
      return;
    }
    await this.#broker.heartbeat(topicID, index, this.#signalFor(res), q.get(READER_ID_QUERY) ?? undefined);
    if (res.destroyed) return;
    res.writeHead(200, { 'Content-Length': '0' });
    res.end();
  });

  /** `/messaging/ping` (any method): the leader answers `{"urls":[...]}`. */
  ping: RouteFunction = this.#route('ping', async (req, res) => {
    if (!this.#broker.isLeader()) {
      this.#redirect(req, res, undefined);
      return;
    }
    sendJSON(res, 200, { urls: [...this.#broker.urls()] });
  });

  /** `GET /health`: 200 while the process serves HTTP. */
  health: RouteFunction = this.#route('health', async (_req, res) => {
    sendJSON(res, 200, { status: 'ok' });
  });

  /** `GET /ready`: 200 `{"ready":true}` or 503 `{"ready":false,"reason":...}`. */
  ready: RouteFunction = this.#route('ready', async (req, res) => {
    const readiness = this.#broker.ready();
    sendJSON(res, readiness.ready ? 200 : 503, readiness.ready ? { ready: true } : { ready: false, reason: readiness.reason ?? 'not ready' });
  });

  /** `GET /metrics`: Prometheus text format 0.0.4. */
  metricsText: RouteFunction = this.#route('metrics', async (req, res) => {
    const body = await this.metrics.render(this.#broker.metrics());
    res.writeHead(200, {
      'Content-Type': 'text/plain; version=0.0.4; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(body)),
      'Cache-Control': 'no-store',
    });
    res.end(body);
  });

  /** `GET /status`: JSON (leadership, cluster URLs, readiness, then the broker's own status). */
  status: RouteFunction = this.#route('status', async (req, res) => {
    sendJSON(res, 200, {
      isLeader: this.#broker.isLeader(),
      leaderURL: this.#broker.leaderURL() ?? null,
      urls: this.#broker.urls(),
      ready: this.#broker.ready(),
      streams: this.#pumps.size,
      ...this.#broker.status(),
    });
  });

  /**
   * A route from its body: an error the body throws becomes the error answer
   * (`BrokerError` as its status, anything else 500), and every request is
   * recorded under `name` in the handler's metrics.
   */
  #route(name: RouteName, body: (req: IncomingMessage, res: ServerResponse, query: string) => Promise<void>): RouteFunction {
    return async (req, res, query, start) => {
      try {
        await body(req, res, query);
      } catch (error) {
        this.#fail(req, res, error);
      } finally {
        this.#record(name, res, start);
      }
    };
  }

  /** Records a request in the handler's metrics; 499 when the client left before an answer. */
  record(route: RouteName, res: ServerResponse, start: number): void {
    this.#record(route, res, start);
  }

  #record(route: RouteName, res: ServerResponse, start: number): void {
    this.metrics.observe(route, res.headersSent ? res.statusCode : 499, (performance.now() - start) / 1000);
  }

  /** 307 to the leader with this request's path and query, or 503 `not leader` when none is known. */
  #redirect(req: IncomingMessage, res: ServerResponse, leaderURL: string | undefined): void {
    const origin = originOf(leaderURL) ?? originOf(this.#broker.leaderURL());
    if (origin === undefined) throw brokerError('NOT_LEADER');
    if (res.headersSent || res.destroyed) return;
    res.writeHead(307, { Location: origin + originalURL(req), [ResponseHeaders.members]: this.#broker.urls().join(','), 'Content-Length': '0' });
    res.end();
  }

  #fail(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    if (isClientGone(error)) return;
    if (isBrokerError(error, 'NOT_LEADER') && !res.headersSent) {
      try {
        this.#redirect(req, res, error.leaderURL);
        return;
      } catch (notLeader) {
        error = notLeader;
      }
    }
    if (!isBrokerError(error)) {
      this.#report(req, error);
      error = new BrokerError('INTERNAL', { cause: error });
    }
    if (res.headersSent) {
      if (!res.destroyed) res.destroy();
      return;
    }
    this.#answerError(res, error as BrokerError);
  }

  #report(req: IncomingMessage, error: unknown): void {
    try {
      this.#options.onInternalError(error, { method: req.method ?? '', url: originalURL(req) });
    } catch {
      // A failing logger must not take the answer down with it.
    }
  }

  #answerError(res: ServerResponse, error: BrokerError, extraHeaders?: Record<string, string>): void {
    // An unread body over the limit is left on the socket: close it after the answer.
    const headers = error.code === 'BODY_TOO_LARGE' ? { ...extraHeaders, Connection: 'close' } : extraHeaders;
    sendError(res, error, headers);
  }

  /**
   * An AbortSignal that aborts when the client goes away: one per connection
   * (created on its first use), aborted when the connection closes. Cheaper
   * than one controller per request on the hot path; a close after the
   * answer aborts only signals of requests already answered.
   */
  #signalFor(res: ServerResponse): AbortSignal {
    // A request read while an earlier answer on its keep-alive connection is still going out (pipelined, or
    // sent as soon as the previous answer arrived: common over TLS) has no `res.socket` yet; its request has.
    const socket: Connection | null = res.socket ?? res.req.socket;
    if (socket === null || socket.destroyed) return AbortSignal.abort(new ClientGoneError());
    let controller = socket[CONNECTION_SIGNAL];
    if (controller === undefined) {
      controller = new AbortController();
      socket[CONNECTION_SIGNAL] = controller;
      socket.once('close', abortConnection);
    }
    return controller.signal;
  }

}

const CONNECTION_SIGNAL = Symbol('msg.http.connectionSignal');
type Connection = Socket & { [CONNECTION_SIGNAL]?: AbortController };

function abortConnection(this: Connection): void {
  this[CONNECTION_SIGNAL]?.abort(new ClientGoneError());
}

/** True for the errors that mean "the client left": ours, or an abort caused by our signal. */
function isClientGone(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof ClientGoneError || e.name === 'AbortError') return true;
  }
  return false;
}

function originalURL(req: IncomingMessage): string {
  return (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
}

/**
 * Validates a batch body once and returns its messages, each with its frame:
 * a view of the body (no copy), whose ignored index field is set to 0. Every
 * malformed body is `INVALID_BATCH` (with the decoder's text), and then, once
 * the body is known to be whole frames, an empty message is
 * `MESSAGE_DATA_REQUIRED`.
 */
function decodeBatch(body: Buffer, maxDataLength: number): PublishMessage[] {
  if (body.byteLength === 0) throw brokerError('INVALID_BATCH', 'invalid batch: the body holds no message');
  let frames: Frame[];
  try {
    frames = splitFrames(body, { maxDataLength });
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new BrokerError('INVALID_BATCH', { message: `invalid batch: ${detail}`, cause: error });
  }
  const messages: PublishMessage[] = new Array<PublishMessage>(frames.length);
  for (let i = 0; i < frames.length; i++) {
    const frame = frames[i]!;
    if (frame.byteLength === MESSAGE_HEADER_SIZE) {
      throw brokerError('MESSAGE_DATA_REQUIRED', `message data required: message ${i} of the batch is empty`);
    }
    writeFrameIndex(frame, 0, 0n);
    messages[i] = { type: frameType(frame), topicID: frameTopicID(frame), data: frame.subarray(MESSAGE_HEADER_SIZE), frame };
  }
  return messages;
}

const PRODUCER_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const PRODUCER_ID_TEXT = 'invalid producer: the producer id must be 1 to 64 characters of A-Z a-z 0-9 . _ : -';

/** The producer key the broker deduplicates on: the id, prefixed with the authenticated identity (and `/`) when there is one. */
function producerKey(req: IncomingMessage, id: string): string {
  const identity = authenticatedIdentity(req);
  return identity === undefined ? id : `${identity}/${id}`;
}

/**
 * The request's producer (`X-Broker-Producer-Id` with `X-Broker-Producer-Seq`), or `undefined` without either;
 * one without the other, a malformed id or a sequence that is not a decimal u64 is `INVALID_PRODUCER`.
 */
function producerOf(req: IncomingMessage): { id: string; seq: bigint } | undefined {
  const id = req.headers[Headers.producerId];
  const seqText = req.headers[Headers.producerSeq];
  if (id === undefined && seqText === undefined) return undefined;
  if (typeof id !== 'string' || typeof seqText !== 'string') {
    throw brokerError('INVALID_PRODUCER', 'invalid producer: X-Broker-Producer-Id and X-Broker-Producer-Seq go together, once each');
  }
  if (!PRODUCER_ID.test(id)) throw brokerError('INVALID_PRODUCER', PRODUCER_ID_TEXT);
  const seq = parseU64(seqText);
  if (seq === undefined) throw brokerError('INVALID_PRODUCER', 'invalid producer: X-Broker-Producer-Seq must be a decimal u64');
  return { id: producerKey(req, id), seq };
}

/** `indexes` as runs of consecutive indexes: `a-b` (or `a` alone), comma-separated. */
function indexRuns(indexes: readonly bigint[]): string {
  const runs: string[] = [];
  let start = 0;
  for (let i = 1; i <= indexes.length; i++) {
    if (i < indexes.length && indexes[i] === indexes[i - 1]! + 1n) continue;
    runs.push(i - 1 === start ? String(indexes[start]) : `${indexes[start]}-${indexes[i - 1]}`);
    start = i;
  }
  return runs.join(',');
}
