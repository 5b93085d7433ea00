import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { BrokerError } from '@msg/wire';
import type { ClientErrorKind, ConnectionLimitName, LimitStats, StreamLimitName } from './metrics.js';

/** The numbers of {@link Limits}, as resolved (every count and duration: 0 turns that limit off). */
export interface LimitSettings {
  /** Most connections open at once, over all clients. Default 10000. */
  readonly maxConnections: number;
  /** Most connections open at once from one remote address. Default 0 (none: only the total counts). */
  readonly maxConnectionsPerClient: number;
  /** Most stream GETs (`GET /messaging/messages`, streaming or not) served at once. Default 5000. */
  readonly maxStreams: number;
  /** Most stream GETs served at once to one client identity (see {@link LimitOptions.identify}). Default 1000. */
  readonly maxStreamsPerClient: number;
  /**
   * Milliseconds a stream may stay unable to send: its response's buffer full
   * (`writableNeedDrain`) with no drain since. The stream is then ended (its
   * connection destroyed). A stream that waits for new messages has nothing to
   * send and is never ended by this. Default 60000.
   */
  readonly streamStallMs: number;
  /** Milliseconds a client has to send a request's headers once it began one (node:http `headersTimeout`). Default 10000. */
  readonly headersTimeoutMs: number;
  /**
   * Milliseconds a client has to send a whole request, headers and body
   * (node:http `requestTimeout`). It ends when the request is received: a
   * stream GET's answer may go on for ever. Default 60000.
   */
  readonly requestTimeoutMs: number;
  /** The `Retry-After` of a 503 past a limit, in seconds (at least 1). Default 1. */
  readonly retryAfterSeconds: number;
}

/** The identity of a request's client, for the per-client stream limit: a string, equal for the same client. */
export type ClientIdentity = (req: IncomingMessage) => string;

/** Options of {@link Limits}: any of {@link LimitSettings}, and how to tell clients apart. */
export interface LimitOptions extends Partial<LimitSettings> {
  /**
   * The identity a stream is counted under for `maxStreamsPerClient`.
   * Default: the connection's remote address. A function that throws counts
   * the request under its remote address.
   */
  identify?: ClientIdentity;
}

/** Defaults of {@link LimitSettings}. */
export const DEFAULT_LIMITS: LimitSettings = {
  maxConnections: 10_000,
  maxConnectionsPerClient: 0,
  maxStreams: 5_000,
  maxStreamsPerClient: 1_000,
  streamStallMs: 60_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  retryAfterSeconds: 1,
};

/** Most connections past a connection limit kept open at once, waiting to be answered 503; more are closed at once. */
export const REFUSED_BACKLOG = 64;

/** Milliseconds a connection past a connection limit is kept open waiting for its request; then it is closed. */
export const REFUSED_LINGER_MS = 1000;

/**
 * Descriptors {@link fitToFileLimit} leaves for everything but client
 * connections and stream readers: the listener, raft's log and snapshot
 * files, topics' open segments, connections to peers.
 */
export const RESERVED_DESCRIPTORS = 256;

/**
 * The most file descriptors `settings` let client traffic take: a connection
 * each, a reader's file for each stream (its connection is one of the
 * connections), the refused backlog, plus {@link RESERVED_DESCRIPTORS}.
 * `undefined` when `maxConnections` or `maxStreams` is off (no bound).
 */
export function descriptorsNeeded(settings: LimitSettings): number | undefined {
  if (settings.maxConnections === 0 || settings.maxStreams === 0) return undefined;
  return settings.maxConnections + settings.maxStreams + REFUSED_BACKLOG + RESERVED_DESCRIPTORS;
}

/**
 * The default `maxConnections` and `maxStreams`, lowered when needed so that
 * {@link descriptorsNeeded} stays within `fileLimit` (a process's soft
 * `RLIMIT_NOFILE`): a third of what is left for streams, the rest for
 * connections, at least 1 each.
 */
export function fitToFileLimit(fileLimit: number): { maxConnections: number; maxStreams: number } {
  const { maxConnections, maxStreams } = DEFAULT_LIMITS;
  const budget = fileLimit - REFUSED_BACKLOG - RESERVED_DESCRIPTORS;
  if (maxConnections + maxStreams <= budget) return { maxConnections, maxStreams };
  const streams = Math.max(1, Math.floor(budget / 3));
  return { maxConnections: Math.max(1, budget - streams), maxStreams: streams };
}

/** What node:http answers a client error with by default, kept byte for byte (a 'clientError' listener replaces it). */
const CLIENT_ERROR_ANSWERS: Readonly<Record<string, { kind: ClientErrorKind; answer: string }>> = {
  ERR_HTTP_REQUEST_TIMEOUT: { kind: 'timeout', answer: 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n' },
  HPE_HEADER_OVERFLOW: { kind: 'headers_too_large', answer: 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n' },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { kind: 'bad_request', answer: 'HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n' },
};
const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';

/** Marks a socket accepted past a connection limit with the limit it passed. */
const REFUSED = Symbol('msg.http.refusedConnection');
/** A connection accepted past a limit: which one, and its setting in the {@link Limits} that refused it (a peer listener's are its own). */
type Marked = Socket & { [REFUSED]?: { limit: ConnectionLimitName; max: number } };

/** One admitted stream GET. */
interface StreamSlot {
  readonly res: ServerResponse;
  readonly client: string;
  /** `performance.now()` when the sweep first saw its buffer full with no drain since; `undefined` otherwise. */
  stalledSince: number | undefined;
}

const SETTING_NAMES = Object.keys(DEFAULT_LIMITS) as (keyof LimitSettings)[];

/**
 * A broker's limits against exhaustion: connections (in total and per remote
 * address), stream GETs (in total and per client identity), slow clients
 * (headers and request timeouts) and stalled streams. Past a limit a request
 * is answered 503 with `TOO_MANY_CONNECTIONS` or `TOO_MANY_STREAMS`,
 * `Retry-After` and `Connection: close`. Everything is counted for `/metrics`.
 *
 * The handler checks streams and refused connections in its listener; the
 * server-level part needs the server:
 * ```ts
 * const limits = new Limits({ maxConnections: 2000, maxStreams: 1000 });
 * const server = http.createServer(limits.serverOptions, listener);
 * limits.attach(server); // before listen: every connection is counted
 * const handler = createHandler(broker, { limits });
 * ```
 * The constructor only validates; it does no I/O and starts no timer.
 */
export class Limits implements LimitStats {
  /** The resolved numbers. */
  readonly settings: LimitSettings;
  readonly #identify: ClientIdentity;
  #connectionsOpen = 0;
  readonly #connectionsByAddress = new Map<string, number>();
  /** Refused connections now open (answered or not yet), at most {@link REFUSED_BACKLOG}. */
  #refusedOpen = 0;
  readonly #refusedConnections = { connections: [0, 0], connections_per_client: [0, 0] } satisfies Record<ConnectionLimitName, [answered: number, closed: number]>;
  readonly #streams = new Set<StreamSlot>();
  readonly #streamsByClient = new Map<string, number>();
  readonly #refusedStreams: Record<StreamLimitName, number> = { streams: 0, streams_per_client: 0 };
  #stalled = 0;
  readonly #clientErrors = new Map<ClientErrorKind, number>([
    ['timeout', 0],
    ['headers_too_large', 0],
    ['bad_request', 0],
    ['reset', 0],
  ]);
  #sweep: NodeJS.Timeout | undefined;

  /** @throws RangeError when a setting is not an integer >= 0 (`retryAfterSeconds` >= 1), or `headersTimeoutMs` > `requestTimeoutMs` (both set). */
  constructor(options: LimitOptions = {}) {
    const settings = { ...DEFAULT_LIMITS };
    for (const name of SETTING_NAMES) {
      const value = options[name] ?? DEFAULT_LIMITS[name];
      const min = name === 'retryAfterSeconds' ? 1 : 0;
      if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${value}`);
      settings[name] = value;
    }
    if (settings.headersTimeoutMs > 0 && settings.requestTimeoutMs > 0 && settings.headersTimeoutMs > settings.requestTimeoutMs) {
      throw new RangeError(`headersTimeoutMs (${settings.headersTimeoutMs}) must not exceed requestTimeoutMs (${settings.requestTimeoutMs})`);
    }
    this.settings = Object.freeze(settings);
    this.#identify = options.identify ?? remoteAddress;
  }

  /**
   * Options for `http.createServer()`: the two timeouts, and how often
   * node:http checks them (a quarter of the shorter one, between 10 ms and
   * 1 s; node's own default is every 30 s, which would let a slow client
   * stay up to 30 s longer). Only `createServer` takes the checking interval.
   */
  get serverOptions(): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
    const { headersTimeoutMs, requestTimeoutMs } = this.settings;
    const positive = [headersTimeoutMs, requestTimeoutMs].filter((ms) => ms > 0);
    const shortest = positive.length === 0 ? 4000 : Math.min(...positive);
    return {
      headersTimeout: headersTimeoutMs,
      requestTimeout: requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, Math.max(10, Math.floor(shortest / 4))),
    };
  }

  /**
   * Applies the server-level limits to `server`; call it before `listen` so
   * that every connection is counted (several servers may share one `Limits`):
   * - connections are counted from `'connection'` to `'close'`; one past a
   *   limit is kept open (at most {@link REFUSED_BACKLOG} such at once, each
   *   at most {@link REFUSED_LINGER_MS}) so that the handler answers its
   *   request 503 `TOO_MANY_CONNECTIONS`; beyond that backlog, and on a TLS
   *   server (where an answer would cost a handshake), it is closed at once
   *   without an answer;
   * - `headersTimeout` and `requestTimeout` are set (pass
   *   {@link serverOptions} to `createServer` for a checking interval to match);
   * - client errors (timeouts, malformed requests, resets) are counted by
   *   kind and answered exactly as node:http does by default.
   */
  attach(server: Server): void {
    server.headersTimeout = this.settings.headersTimeoutMs;
    server.requestTimeout = this.settings.requestTimeoutMs;
    const answers = typeof (server as { addContext?: unknown }).addContext !== 'function';
    server.on('connection', (socket: Socket) => this.#onConnection(socket, answers));
    server.on('clientError', (error: Error & { code?: string }, socket: Duplex) => this.#onClientError(error, socket));
  }

  /**
   * For the handler, on every request: `TOO_MANY_CONNECTIONS` when `req`
   * came on a connection accepted past a connection limit, else `undefined`.
   */
  refusal(req: IncomingMessage): BrokerError | undefined {
    const mark = (req.socket as Marked)[REFUSED];
    if (mark === undefined) return undefined;
    const max = mark.limit === 'connections' ? `${mark.max} in all` : `${mark.max} per client`;
    return new BrokerError('TOO_MANY_CONNECTIONS', { message: `too many connections: the broker holds at most ${max}` });
  }

  /**
   * For the handler, on every stream GET: takes a stream slot for `res`
   * until it closes, or answers why not (`TOO_MANY_STREAMS`, the slot not
   * taken). While it holds the slot, a response whose buffer stays full for
   * `streamStallMs` is destroyed.
   */
  admitStream(req: IncomingMessage, res: ServerResponse): BrokerError | undefined {
    const { maxStreams, maxStreamsPerClient, streamStallMs } = this.settings;
    if (maxStreams > 0 && this.#streams.size >= maxStreams) {
      this.#refusedStreams.streams++;
      return new BrokerError('TOO_MANY_STREAMS', { message: `too many streams: the broker serves at most ${maxStreams}` });
    }
    const client = this.#clientOf(req);
    const held = this.#streamsByClient.get(client) ?? 0;
    if (maxStreamsPerClient > 0 && held >= maxStreamsPerClient) {
      this.#refusedStreams.streams_per_client++;
      return new BrokerError('TOO_MANY_STREAMS', { message: `too many streams: the broker serves at most ${maxStreamsPerClient} per client` });
    }
    const slot: StreamSlot = { res, client, stalledSince: undefined };
    this.#streams.add(slot);
    this.#streamsByClient.set(client, held + 1);
    res.once('close', () => this.#release(slot));
    if (streamStallMs > 0) {
      res.on('drain', () => {
        slot.stalledSince = undefined;
      });
      this.#sweep ??= setInterval(() => this.#sweepStalled(), Math.min(1000, Math.max(10, Math.floor(streamStallMs / 4)))).unref();
    }
    return undefined;
  }

  /** The `Retry-After` header of a 503 past a limit. */
  get retryAfter(): string {
    return String(this.settings.retryAfterSeconds);
  }

  /** Connections counted against the limits now (refused ones aside). */
  get connectionsOpen(): number {
    return this.#connectionsOpen;
  }

  /** Stream GETs holding a slot now. */
  get streamsAdmitted(): number {
    return this.#streams.size;
  }

  /** Streams ended because their client read nothing for `streamStallMs` while there was data to send. */
  get streamsStalled(): number {
    return this.#stalled;
  }

  /** Client errors by kind (node:http's `'clientError'`: timeouts, malformed requests, resets). */
  get clientErrors(): ReadonlyMap<ClientErrorKind, number> {
    return this.#clientErrors;
  }

  /** Connections refused past `limit` so far, those answered 503 (`answered`) or closed without an answer. */
  connectionsRefused(limit: ConnectionLimitName, answered: boolean): number {
    return this.#refusedConnections[limit][answered ? 0 : 1];
  }

  /** Stream GETs refused past `limit` so far. */
  streamsRefused(limit: StreamLimitName): number {
    return this.#refusedStreams[limit];
  }

  #onConnection(socket: Socket, answers: boolean): void {
    const { maxConnections, maxConnectionsPerClient } = this.settings;
    const address = socket.remoteAddress ?? '';
    const held = this.#connectionsByAddress.get(address) ?? 0;
    const limit: ConnectionLimitName | undefined =
      maxConnections > 0 && this.#connectionsOpen >= maxConnections
        ? 'connections'
        : maxConnectionsPerClient > 0 && held >= maxConnectionsPerClient
          ? 'connections_per_client'
          : undefined;
    if (limit === undefined) {
      this.#connectionsOpen++;
      this.#connectionsByAddress.set(address, held + 1);
      socket.once('close', () => {
        this.#connectionsOpen--;
        decrement(this.#connectionsByAddress, address);
      });
      return;
    }
    if (!answers || this.#refusedOpen >= REFUSED_BACKLOG) {
      this.#refusedConnections[limit][1]++;
      socket.destroy();
      return;
    }
    this.#refusedConnections[limit][0]++;
    this.#refusedOpen++;
    (socket as Marked)[REFUSED] = { limit, max: limit === 'connections' ? this.settings.maxConnections : this.settings.maxConnectionsPerClient };
    const timer = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
    socket.once('close', () => {
      this.#refusedOpen--;
      clearTimeout(timer);
    });
  }

  #onClientError(error: Error & { code?: string }, socket: Duplex): void {
    const known = error.code === undefined ? undefined : CLIENT_ERROR_ANSWERS[error.code];
    const kind: ClientErrorKind = known?.kind ?? (error.code === 'ECONNRESET' ? 'reset' : 'bad_request');
    this.#clientErrors.set(kind, (this.#clientErrors.get(kind) ?? 0) + 1);
    // node:http's own rule: answer only when nothing of a response went out on this socket yet.
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    if (socket.writable && inFlight?.headersSent !== true) socket.write(known?.answer ?? BAD_REQUEST);
    socket.destroy(error);
  }

  #clientOf(req: IncomingMessage): string {
    try {
      return this.#identify(req);
    } catch {
      return remoteAddress(req);
    }
  }

  #release(slot: StreamSlot): void {
    if (!this.#streams.delete(slot)) return;
    decrement(this.#streamsByClient, slot.client);
    if (this.#streams.size === 0 && this.#sweep !== undefined) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  /** Ends every stream whose buffer has been full, without a drain, for `streamStallMs`. */
  #sweepStalled(): void {
    const now = performance.now();
    const stallMs = this.settings.streamStallMs;
    for (const slot of this.#streams) {
      if (!slot.res.writableNeedDrain) {
        slot.stalledSince = undefined;
      } else if (slot.stalledSince === undefined) {
        slot.stalledSince = now;
      } else if (now - slot.stalledSince >= stallMs) {
        this.#stalled++;
        this.#release(slot);
        slot.res.destroy();
      }
    }
  }
}

/** The default {@link ClientIdentity}: the connection's remote address. */
function remoteAddress(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? '';
}

function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 1) - 1;
  if (n <= 0) counts.delete(key);
  else counts.set(key, n);
}
