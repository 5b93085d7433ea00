// A small, protocol-faithful broker for the client's tests: node:http on
// 127.0.0.1 port 0, in-memory topics, and knobs for the faults a client must
// survive. It speaks the original's API (docs/protocol.md §2), plus our
// batch route, error-code headers and reclaimed segments.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import {
  ErrorCodes,
  Headers,
  MESSAGES_CONTENT_TYPE,
  Paths,
  Query,
  decodeMessages,
  encodeMessage,
  parseU16,
  parseU64,
  type ErrorCode,
  type Message,
} from '@msg/wire';

/** Topics shared by the brokers of one fake cluster. */
export class FakeStore {
  /** The last index handed out (raft-like: shared by every topic). */
  lastIndex = 0n;
  readonly topics = new Map<bigint, Message[]>();
  readonly heartbeats: { topicID: bigint; index: bigint }[] = [];
  /** Exactly-once publish, as our brokers do it (without a window): the index of each (producer id, sequence) committed. */
  readonly produced = new Map<string, bigint>();
  readonly #waiters = new Set<() => void>();

  /** Appends a message and wakes streaming readers. */
  append(type: number, topicID: bigint, data: Uint8Array): bigint {
    const index = ++this.lastIndex;
    const list = this.topics.get(topicID) ?? [];
    list.push({ type, topicID, index, data: Uint8Array.from(data) });
    this.topics.set(topicID, list);
    for (const wake of [...this.#waiters]) wake();
    return index;
  }

  /** Messages of `topicID` with an index >= `from`. */
  from(topicID: bigint, from: bigint): Message[] {
    return (this.topics.get(topicID) ?? []).filter((m) => m.index >= from);
  }

  /** Resolves at the next append (or when `signal` fires). */
  changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        this.#waiters.delete(wake);
        signal.removeEventListener('abort', wake);
        resolve();
      };
      this.#waiters.add(wake);
      signal.addEventListener('abort', wake, { once: true });
    });
  }
}

/** One request the fake broker saw. */
export interface SeenRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  /** Messages in the body of a batch request. */
  batchSize?: number;
  /** The request's headers (lower-case names). */
  headers: IncomingMessage['headers'];
}

/** Knobs of a {@link FakeBroker}; all can be changed while it runs. */
export interface FakeBrokerKnobs {
  /** 'leader' serves writes; 'follower' redirects them to `leaderURL` (307) or answers `not leader`. */
  role: 'leader' | 'follower';
  /** Where a follower redirects (scheme + host). Unset: `not leader` with `notLeaderStatus`. */
  leaderURL?: string;
  /** Sent as `X-Broker-Members` (comma-separated) with a follower's 307, as our brokers do. */
  members?: string[];
  /** Sent as `X-Broker-Leader` with a follower's `not leader` answer. */
  leaderHint?: string;
  /** Status of `not leader` (the original: 500; ours: 503). */
  notLeaderStatus: 500 | 503;
  /** Whether `/messaging/batch` exists (an original broker answers 404). */
  batchRoute: boolean;
  /** Whether error answers carry our `X-Broker-Error-Code` (an original broker's do not). */
  errorCodes: boolean;
  /** URLs the leader's ping answers with. */
  pingURLs: string[];
  /** Requests for which nothing is ever answered. */
  stall?: (request: SeenRequest) => boolean;
  /** Requests answered only once the returned promise settles (undefined: at once). */
  hold?: (request: SeenRequest) => Promise<void> | undefined;
  /** Requests whose connection is destroyed without an answer. */
  drop?: (request: SeenRequest) => boolean;
  /** An error answer instead of serving the request. */
  fail?: (request: SeenRequest) => ErrorCode | undefined;
  /** A raw answer instead of serving the request (for answers that break the protocol). */
  answer?: (request: SeenRequest) => RawAnswer | undefined;
  /** Single publishes served (committed) whose answer is then dropped (the connection destroyed): how many more. */
  dropAnswers?: number;
  /** Streams: the first index still stored; a read below it is `segment reclaimed`. */
  firstIndex?: bigint;
  /** Streams: after this many whole messages, write half of the next one and destroy the socket. */
  cutAfter?: number;
  /** Streams: after this many whole messages, write half of the next one and then nothing (read when a stream starts). */
  stallAfter?: number;
  /** Streams: write each frame in pieces of this many bytes, with a flush between them. */
  pieceBytes?: number;
  /** Streams: end a streaming answer after this many messages (a clean end a client must reconnect after). */
  endAfter?: number;
}

/** An answer of the {@link FakeBrokerKnobs.answer} knob. */
export interface RawAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

/** A fake broker listening on 127.0.0.1 with an OS-chosen port. */
export class FakeBroker {
  readonly store: FakeStore;
  readonly knobs: FakeBrokerKnobs;
  readonly requests: SeenRequest[] = [];
  /** Bytes written to stream bodies so far. */
  streamedBytes = 0;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #closing = new AbortController();
  #url: string | undefined;

  constructor(store = new FakeStore(), knobs: Partial<FakeBrokerKnobs> = {}) {
    this.store = store;
    this.knobs = { role: 'leader', notLeaderStatus: 503, batchRoute: true, errorCodes: true, pingURLs: [], ...knobs };
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) this.#error(res, 'INTERNAL', String(error));
        else res.destroy();
      });
    });
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  /** `http://127.0.0.1:<port>` once started. */
  get url(): string {
    if (!this.#url) throw new Error('not started');
    return this.#url;
  }

  /** Requests seen on `path` (optionally of one method). */
  count(path: string, method?: string): number {
    return this.requests.filter((r) => r.path === path && (method === undefined || r.method === method)).length;
  }

  /** Starts listening; `port` 0 (the default) lets the OS choose. */
  async start(port = 0): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    this.#url = `http://127.0.0.1:${address.port}`;
    return this.#url;
  }

  /** Stops listening and destroys every connection (streams included). */
  async close(): Promise<void> {
    this.#closing.abort();
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Destroys every open connection, keeping the server up. */
  dropConnections(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const seen: SeenRequest = { method: req.method ?? '', path: url.pathname, query: url.searchParams, headers: req.headers };
    const body = await readBody(req);
    if (url.pathname === Paths.batch && this.knobs.batchRoute) {
      try {
        let n = 0;
        for await (const _ of decodeMessages([body])) n++;
        seen.batchSize = n;
      } catch {
        seen.batchSize = -1;
      }
    }
    this.requests.push(seen);
    if (this.knobs.stall?.(seen)) return;
    const held = this.knobs.hold?.(seen);
    if (held) await held;
    if (this.knobs.drop?.(seen)) {
      req.socket.destroy();
      return;
    }
    const failure = this.knobs.fail?.(seen);
    if (failure) return this.#error(res, failure);
    const raw = this.knobs.answer?.(seen);
    if (raw) {
      res.writeHead(raw.status, raw.headers ?? {});
      res.end(raw.body ?? '');
      return;
    }

    const isWrite = req.method === 'POST' && (url.pathname === Paths.messages || url.pathname === Paths.heartbeat || url.pathname === Paths.batch);
    if (url.pathname === Paths.batch && !this.knobs.batchRoute) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('404 page not found\n');
      return;
    }
    if ((isWrite || url.pathname === Paths.ping) && this.knobs.role === 'follower') {
      if (this.knobs.leaderURL) {
        res.writeHead(307, { location: `${this.knobs.leaderURL}${url.pathname}${url.search}`, ...(this.knobs.members ? { [Headers.members]: this.knobs.members.join(',') } : {}) });
        res.end();
      } else {
        this.#error(res, 'NOT_LEADER', undefined, this.knobs.notLeaderStatus, this.knobs.leaderHint ? { [Headers.leader]: this.knobs.leaderHint } : {});
      }
      return;
    }
    switch (url.pathname) {
      case Paths.messages:
        if (req.method === 'POST') return this.#publish(url, req, body, res);
        if (req.method === 'GET') return this.#stream(url, req, res);
        return this.#error(res, 'METHOD_NOT_ALLOWED');
      case Paths.batch:
        if (req.method !== 'POST') return this.#error(res, 'METHOD_NOT_ALLOWED');
        return this.#batch(body, res);
      case Paths.heartbeat: {
        if (req.method !== 'POST') return this.#error(res, 'METHOD_NOT_ALLOWED');
        const topicID = parseU64(url.searchParams.get(Query.topicID));
        if (topicID === undefined) return this.#error(res, 'TOPIC_REQUIRED');
        const index = parseU64(url.searchParams.get(Query.index));
        if (index === undefined) return this.#error(res, 'INDEX_REQUIRED');
        this.store.heartbeats.push({ topicID, index });
        res.writeHead(200);
        res.end();
        return;
      }
      case Paths.ping:
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify({ urls: this.knobs.pingURLs })}\n`);
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('404 page not found\n');
    }
  }

  #publish(url: URL, req: IncomingMessage, body: Uint8Array, res: ServerResponse): void {
    const type = parseU16(url.searchParams.get(Query.type));
    if (type === undefined) return this.#error(res, 'MESSAGE_TYPE_REQUIRED');
    const topicID = parseU64(url.searchParams.get(Query.topicID));
    if (topicID === undefined) return this.#error(res, 'TOPIC_REQUIRED');
    if (body.byteLength === 0) return this.#error(res, 'MESSAGE_DATA_REQUIRED');
    const producer = req.headers[Headers.producerId] === undefined ? undefined : `${String(req.headers[Headers.producerId])} ${String(req.headers[Headers.producerSeq])}`;
    const index = (producer === undefined ? undefined : this.store.produced.get(producer)) ?? this.store.append(type, topicID, body);
    if (producer !== undefined) this.store.produced.set(producer, index);
    if ((this.knobs.dropAnswers ?? 0) > 0) {
      this.knobs.dropAnswers!--;
      req.socket.destroy();
      return;
    }
    res.writeHead(200, { [Headers.index]: index.toString() });
    res.end();
  }

  async #batch(body: Uint8Array, res: ServerResponse): Promise<void> {
    const messages: Message[] = [];
    try {
      for await (const m of decodeMessages([body])) messages.push(m);
    } catch {
      return this.#error(res, 'INVALID_BATCH');
    }
    if (messages.length === 0) return this.#error(res, 'INVALID_BATCH');
    if (messages.some((m) => m.data.byteLength === 0)) return this.#error(res, 'MESSAGE_DATA_REQUIRED');
    const indexes = messages.map((m) => this.store.append(m.type, m.topicID, m.data));
    res.writeHead(200, { [Headers.index]: indexes[0]!.toString(), [Headers.lastIndex]: indexes.at(-1)!.toString() });
    res.end();
  }

  async #stream(url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const topicID = parseU64(url.searchParams.get(Query.topicID));
    if (topicID === undefined) return this.#error(res, 'TOPIC_REQUIRED');
    const start = parseU64(url.searchParams.get(Query.index));
    if (start === undefined) return this.#error(res, 'INDEX_REQUIRED');
    const streaming = url.searchParams.get(Query.streaming) === 'true';
    if (this.knobs.firstIndex !== undefined && start < this.knobs.firstIndex) {
      return this.#error(res, 'SEGMENT_RECLAIMED', undefined, undefined, { [Headers.firstIndex]: this.knobs.firstIndex.toString() });
    }
    res.writeHead(200, { 'content-type': MESSAGES_CONTENT_TYPE });
    res.flushHeaders();
    const gone = new AbortController();
    req.socket.once('close', () => gone.abort());
    const signal = AbortSignal.any([gone.signal, this.#closing.signal]);
    let next = start;
    let sent = 0;
    const stallAfter = this.knobs.stallAfter;
    for (;;) {
      for (const message of this.store.from(topicID, next)) {
        if (signal.aborted) return;
        const frame = encodeMessage(message);
        if (this.knobs.cutAfter !== undefined && sent >= this.knobs.cutAfter) {
          res.write(frame.subarray(0, Math.max(1, frame.byteLength >> 1)));
          await new Promise((resolve) => setTimeout(resolve, 5));
          req.socket.destroy();
          return;
        }
        if (stallAfter !== undefined && sent >= stallAfter) {
          res.write(frame.subarray(0, Math.max(1, frame.byteLength >> 1)));
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
          return;
        }
        const piece = this.knobs.pieceBytes ?? frame.byteLength;
        for (let at = 0; at < frame.byteLength; at += piece) {
          if (!res.write(frame.subarray(at, at + piece))) await drained(res, signal);
          if (piece < frame.byteLength) await new Promise((resolve) => setImmediate(resolve));
          if (signal.aborted) return;
        }
        this.streamedBytes += frame.byteLength;
        next = message.index + 1n;
        sent++;
        if (streaming && this.knobs.endAfter !== undefined && sent >= this.knobs.endAfter) {
          res.end();
          return;
        }
      }
      if (!streaming) {
        res.end();
        return;
      }
      await this.store.changed(signal);
      if (signal.aborted) return;
    }
  }

  #error(res: ServerResponse, code: ErrorCode, text?: string, status?: number, extra: Record<string, string> = {}): void {
    const message = text ?? ErrorCodes[code].text;
    const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8', [Headers.error]: message, ...extra };
    if (this.knobs.errorCodes) headers[Headers.errorCode] = code;
    res.writeHead(status ?? ErrorCodes[code].status, headers);
    res.end(message);
  }
}

function readBody(req: IncomingMessage): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Starts a fake broker. */
export async function startFakeBroker(knobs: Partial<FakeBrokerKnobs> = {}, store?: FakeStore): Promise<FakeBroker> {
  const broker = new FakeBroker(store, knobs);
  await broker.start();
  return broker;
}

/** A URL on 127.0.0.1 where nothing listens (a port just freed). */
export async function deadURL(): Promise<string> {
  const broker = new FakeBroker();
  const url = await broker.start();
  await broker.close();
  return url;
}
