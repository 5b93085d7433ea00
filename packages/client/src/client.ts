import {
  BrokerError,
  Headers,
  MESSAGES_CONTENT_TYPE,
  MESSAGE_HEADER_SIZE,
  Paths,
  Query,
  encodeMessages,
  parseU64,
} from '@msg/wire';
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { z } from 'zod';
import { backoffDelay, resolveBackoff, type Backoff, type BackoffOptions } from './backoff.js';
import { Batcher, type PublishOutcome } from './batcher.js';
import { delay, systemClock, type Clock, type TimerHandle } from './clock.js';
import { formatConfig, loadConfig, parseBrokerURL, writeConfig } from './config.js';
import { Conn, READER_ID_QUERY, type ConnHost, type ConnOptions } from './conn.js';
import { ClientError, abortError, brokerErrorFromResponse, isClientError, throwIfAborted } from './errors.js';
import { safeLogger, silentLogger, type Logger } from './logger.js';
import { validatePublishMessage, type PublishMessage } from './publish-message.js';
import { Transport, type ClientTls, type HttpAnswer } from './transport.js';

/** The original client's ping interval: 1000 ms. */
export const DEFAULT_PING_INTERVAL_MS = 1000;
/** The original client's stream reconnect delay: 1000 ms. */
export const DEFAULT_RECONNECT_DELAY_MS = 1000;

/** Options of every call that talks to a broker. */
export interface CallOptions {
  /** Cancels the call: it rejects with a `ClientError` of code `ABORTED` whose `cause` is the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Coalescing of concurrent {@link Client.publish} calls into batch requests.
 * By default batching is natural: a publish goes out at once when no batch is
 * in flight, and publishes made while one is in flight gather into the next
 * batch, sent as soon as it returns. No timer is involved.
 */
export interface BatchingOptions {
  /** Coalesce at all. Default true. */
  enabled?: boolean;
  /**
   * A linger timer: how long the first waiting message waits for others, in
   * milliseconds, even when nothing is in flight (trades latency for fewer,
   * larger requests). Default 0: no timer, natural batching.
   */
  lingerMs?: number;
  /** Most messages in one batch request. Default 1000. */
  maxMessages?: number;
  /** Most encoded bytes (22-byte header + data per message) in one batch request. Default 1 MiB. */
  maxBytes?: number;
  /**
   * Most batch requests in flight at once. Default 1: batches are sent one
   * after another, so messages coalesced through the batch route get indexes
   * in call order (absent retries). Against a broker without the batch route
   * concurrent publishes go as concurrent single requests, in no set order.
   */
  maxInFlight?: number;
}

/** Options of {@link Client}. Every number of milliseconds must be finite and >= 0. */
export interface ClientOptions {
  /** Broker base URLs (`http://host:port`). A config file read by `open()` replaces them. */
  urls?: readonly (string | URL)[];
  /** Path of the JSON config file `{"urls":[...]}` that `open()` reads and the ping loop rewrites. */
  configPath?: string;
  /**
   * How many times one call is retried after a retriable failure (connection
   * refused or reset, timeout, `not leader`, 5xx), moving to the next known
   * URL each time. Redirects (307) are followed without counting. Default 5.
   */
  retries?: number;
  /** Delays between those retries. Default `{ initialMs: 50, maxMs: 1000, multiplier: 2, jitter: 0.2 }`. */
  backoff?: BackoffOptions;
  /** Deadline of one HTTP request (not of a whole call with its retries), in milliseconds. Default 10000. */
  requestTimeoutMs?: number;
  /** See {@link BatchingOptions}. */
  batching?: BatchingOptions;
  /** Interval of the background ping after `open()`, in milliseconds; 0 turns it off. Default 1000 (the original's). */
  pingIntervalMs?: number;
  /** Defaults for every {@link Conn} of this client. */
  conn?: ConnOptions;
  /** Out-of-band events. Default: silent. */
  logger?: Logger;
  /** Time source for timers and backoff. Default: the real clock. */
  clock?: Clock;
  /** Uniform random numbers in [0, 1) for jitter and the initial URL choice. Default `Math.random`. */
  random?: () => number;
  /**
   * The bearer token of this client's identity, sent as `Authorization:
   * Bearer <token>` with every request (publishes, pings, heartbeats, streams)
   * to a broker started with `--auth-file`. A function is called for every
   * request (and every retry and reconnect), so a rotated token is picked up
   * without a new client; it may return a promise. A token must be a header
   * value without whitespace (else `INVALID_OPTIONS`, which never shows it).
   * The client never logs it. A broker's 401 (`UNAUTHENTICATED`) or 403
   * (`FORBIDDEN`) is a non-retriable `BrokerError`.
   */
  token?: string | (() => string | Promise<string>);
  /**
   * For `https://` brokers: the CA that signs their certificates (default:
   * Node's trusted CAs) and, for brokers that require one (`--tls-ca`), a
   * client certificate and its key; PEM strings or buffers.
   */
  tls?: ClientTls;
  /**
   * Exactly-once publish. Every publish of this client carries this producer id and a sequence number
   * (`X-Broker-Producer-Id`, `X-Broker-Producer-Seq`), so the broker commits each message once even when
   * the client retries it after a lost answer, a timeout or a failover: a retry of a message committed
   * before is answered with its original index.
   *
   * - Default: a random id, new for every `Client`; its sequence starts at 0.
   * - A string (1 to 64 characters of `A-Z a-z 0-9 . _ : -`): a stable id, for a producer that restarts.
   *   Before its first publish the client asks the leader for the sequence that id sends next
   *   (`GET /messaging/producers`), and continues from there.
   * - `false`: no producer id; publishes are at-least-once, exactly as the original's client sent them.
   *
   * Publishes of one producer are sent one request at a time (their sequences must arrive in order), so
   * `batching.maxInFlight` above 1 has no effect with a producer id.
   */
  producerId?: string | false;
}

type State = 'new' | 'opening' | 'open' | 'closed';

interface Request {
  method: 'GET' | 'POST';
  path: string;
  query?: Record<string, string>;
  body?: Uint8Array;
  contentType?: string;
  headers?: Record<string, string>;
}

/** The producer of a client's publishes: its id, and the sequence its next request starts at (`undefined`: ask the leader first). */
interface Producer {
  id: string;
  next: bigint | undefined;
}

const PRODUCER_ID = /^[A-Za-z0-9._:-]{1,64}$/;

const pingBodySchema = z.object({ urls: z.array(z.string()) });
const producerBodySchema = z.object({ producerID: z.string(), next: z.string().regex(/^[0-9]{1,20}$/) });

/**
 * A client of a broker cluster: publishes messages to the leader (following
 * its redirects and failing over across known URLs), learns the cluster's
 * URLs with a background ping and persists them, and opens per-topic
 * {@link Conn} streams.
 *
 * The constructor does no I/O. Call `open()` before anything else and
 * `close()` at the end; `close()` leaves no timer or socket behind.
 *
 * Delivery is at least once: a publish retried after a lost answer may be
 * committed twice.
 */
export class Client {
  readonly #retries: number;
  readonly #backoff: Backoff;
  readonly #requestTimeoutMs: number;
  readonly #batching: Required<BatchingOptions>;
  readonly #pingIntervalMs: number;
  readonly #connOptions: ConnOptions;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #token: string | (() => string | Promise<string>) | undefined;
  readonly #transport: Transport;
  readonly #closing = new AbortController();
  readonly #batcher: Batcher;
  readonly #producer: Producer | undefined;
  /** The producer's requests, one at a time (see {@link ClientOptions.producerId}). */
  #lane: Promise<void> = Promise.resolve();
  readonly #noBatchRoute = new Set<string>();
  readonly #conns = new Set<Conn>();
  readonly #background = new Set<Promise<unknown>>();

  #state: State = 'new';
  #configPath: string | undefined;
  #persisted: string | undefined;
  #urls: URL[] = [];
  /** Origins of the cluster's known members: every URL given to the client, and every URL a member's ping reported. */
  readonly #members = new Set<string>();
  /** `from>to` origin pairs of untrusted redirects already logged. */
  readonly #untrustedLogged = new Set<string>();
  #url: URL | undefined;
  #pingTimer: TimerHandle | undefined;

  constructor(options: ClientOptions = {}) {
    this.#transport = new Transport({ tls: options.tls });
    this.#retries = nonNegativeInteger(options.retries ?? 5, 'retries');
    this.#backoff = resolveBackoff(options.backoff, { initialMs: 50, maxMs: 1000, multiplier: 2, jitter: 0.2 }, 'backoff');
    this.#requestTimeoutMs = positiveNumber(options.requestTimeoutMs ?? 10_000, 'requestTimeoutMs');
    const batching = options.batching ?? {};
    this.#batching = {
      enabled: batching.enabled ?? true,
      lingerMs: nonNegativeNumber(batching.lingerMs ?? 0, 'batching.lingerMs'),
      maxMessages: positiveInteger(batching.maxMessages ?? 1000, 'batching.maxMessages'),
      maxBytes: positiveInteger(batching.maxBytes ?? 1024 * 1024, 'batching.maxBytes'),
      maxInFlight: positiveInteger(batching.maxInFlight ?? 1, 'batching.maxInFlight'),
    };
    this.#pingIntervalMs = nonNegativeNumber(options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS, 'pingIntervalMs');
    this.#connOptions = options.conn ?? {};
    this.#logger = options.logger === undefined ? silentLogger : safeLogger(options.logger);
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#configPath = options.configPath;
    if (typeof options.token === 'string') checkToken(options.token);
    else if (options.token !== undefined && typeof options.token !== 'function') {
      throw new ClientError('INVALID_OPTIONS', { message: 'invalid options: token must be a string or a function returning one' });
    }
    this.#token = options.token;
    // Every request in flight listens on this signal; many concurrent publishes are normal, not a leak.
    setMaxListeners(0, this.#closing.signal);
    if (options.urls !== undefined && options.urls.length > 0) this.setURLs(options.urls);
    this.#batcher = new Batcher(this.#batching, this.#clock, (messages) => this.#sendCoalesced(messages));
    this.#producer = producerOf(options.producerId);
  }

  /** The URL requests go to first: the leader once known (from a redirect or a ping), else one of {@link urls}. */
  get url(): URL | undefined {
    return this.#url === undefined ? undefined : new URL(this.#url.href);
  }

  /**
   * Whether `url` (compared by origin: scheme, host and port) is a known
   * member of the cluster: a URL given to the constructor, `setURLs`,
   * `setURL` or the config file, or one reported by a ping a member
   * answered. Only members are sent requests, redirects are followed only to
   * members, and only members are persisted.
   */
  isMember(url: string | URL): boolean {
    const value = parseBrokerURL(url);
    return value !== undefined && this.#members.has(value.origin);
  }

  /** Every known broker URL (copies). */
  get urls(): URL[] {
    return this.#urls.map((url) => new URL(url.href));
  }

  /** Whether `open()` succeeded and `close()` has not been called. */
  get opened(): boolean {
    return this.#state === 'open';
  }

  /**
   * Replaces the known broker URLs (absolute http(s) URLs; path and query are
   * ignored). The current {@link url} stays if it is in the list, else one of
   * the list is chosen at random. Every URL of the list becomes a trusted
   * member (see {@link isMember}). Throws `INVALID_URL` for an empty list or
   * a bad URL. Does not write the config file (the ping loop does).
   */
  setURLs(urls: readonly (string | URL)[]): void {
    if (!Array.isArray(urls) || urls.length === 0) {
      throw new ClientError('INVALID_URL', { message: 'invalid url: setURLs needs at least one URL' });
    }
    const parsed = (urls as readonly (string | URL)[]).map((url) => {
      const value = parseBrokerURL(url);
      if (!value) throw new ClientError('INVALID_URL', { message: `invalid url: ${String(url)} is not an absolute http(s) URL` });
      return value;
    });
    this.#replaceURLs(parsed);
  }

  /** Replaces the known URLs with `parsed` (deduplicated by origin), all of them members. */
  #replaceURLs(parsed: readonly URL[]): void {
    const unique = [...new Map(parsed.map((url) => [url.origin, url])).values()];
    for (const url of unique) this.#members.add(url.origin);
    this.#urls = unique;
    if (this.#url === undefined || !unique.some((url) => url.origin === this.#url!.origin)) {
      this.#url = unique[Math.min(unique.length - 1, Math.floor(this.#random() * unique.length))];
    }
  }

  /**
   * Sets the URL requests go to first (for example a known leader); it
   * becomes a trusted member (see {@link isMember}). Throws `INVALID_URL`
   * for a bad URL.
   */
  setURL(url: string | URL): void {
    const value = parseBrokerURL(url);
    if (!value) throw new ClientError('INVALID_URL', { message: `invalid url: ${String(url)} is not an absolute http(s) URL` });
    this.#members.add(value.origin);
    this.#url = value;
  }

  /**
   * Opens the client: reads the config file at `configPath` (or the
   * constructor's), whose URLs replace any given before, and starts the
   * background ping. A missing file is created from the URLs given to the
   * constructor or `setURLs`; with none it is `CONFIG_NOT_FOUND`. A file that
   * is not JSON or not `{"urls":[...]}` is `CONFIG_NOT_JSON` / `CONFIG_INVALID`
   * (the client stays unopened, so `open` may be called again). Without any
   * path, the URLs given before are used.
   *
   * @throws BrokerError `CLIENT_ALREADY_OPEN` when already open; `CLIENT_CLOSED` after `close()`.
   */
  async open(configPath?: string): Promise<void> {
    if (this.#state === 'open' || this.#state === 'opening') throw new BrokerError('CLIENT_ALREADY_OPEN');
    if (this.#state === 'closed') throw new BrokerError('CLIENT_CLOSED');
    this.#state = 'opening';
    try {
      const path = configPath ?? this.#configPath;
      this.#configPath = path;
      if (path !== undefined) {
        try {
          const config = await loadConfig(path);
          this.setURLs(config.urls);
          this.#persisted = formatConfig(config);
        } catch (error) {
          if (!isClientError(error, 'CONFIG_NOT_FOUND') || this.#urls.length === 0) throw error;
          await writeConfig(path, { urls: this.#urls });
          this.#persisted = formatConfig({ urls: this.#urls });
        }
      }
    } catch (error) {
      if (this.#state === 'opening') this.#state = 'new';
      throw error;
    }
    if (this.#state !== 'opening') throw new BrokerError('CLIENT_CLOSED');
    this.#state = 'open';
    this.#schedulePing();
  }

  /**
   * Closes the client: stops the ping loop, closes every open {@link Conn},
   * fails calls still waiting or in flight with `CLIENT_CLOSED`, and frees
   * every socket. Resolves once nothing of the client is running.
   *
   * @throws BrokerError `CLIENT_CLOSED` when not open (never opened, or closed twice).
   */
  async close(): Promise<void> {
    if (this.#state === 'new' || this.#state === 'closed') throw new BrokerError('CLIENT_CLOSED');
    this.#state = 'closed';
    if (this.#pingTimer !== undefined) this.#clock.clearTimeout(this.#pingTimer);
    this.#pingTimer = undefined;
    this.#closing.abort(new BrokerError('CLIENT_CLOSED'));
    await Promise.allSettled([...this.#conns].filter((conn) => conn.state === 'open').map((conn) => conn.close()));
    await this.#batcher.close(() => new BrokerError('CLIENT_CLOSED'));
    await Promise.allSettled([...this.#background]);
    this.#transport.close();
  }

  /** Same as {@link close}, but without the error when already closed (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#state === 'open' || this.#state === 'opening') await this.close();
  }

  /**
   * Publishes one message and resolves with the index the broker committed it
   * at. A call goes out at once when no batch is in flight; calls made while
   * one is in flight are coalesced into the next batch request (when batching
   * is on and the broker has the batch route); each caller still gets its own
   * index or error. Validation errors (`MESSAGE_TYPE_REQUIRED`, `TOPIC_REQUIRED`,
   * `MESSAGE_DATA_REQUIRED`) are thrown before anything is sent; broker errors
   * come back as `BrokerError` with their code; after the retries, `NO_LEADER`
   * (no broker would take it), `UNAVAILABLE` or `TIMEOUT`.
   *
   * Aborting the signal of a message already sent in a batch rejects this call
   * with `ABORTED`, but the message may still be committed.
   */
  async publish(message: PublishMessage, options: CallOptions = {}): Promise<bigint> {
    this.#assertOpen();
    validatePublishMessage(message);
    throwIfAborted(options.signal);
    const target = this.#target();
    if (!this.#batching.enabled || this.#noBatchRoute.has(target.origin)) {
      return this.#publishOne(message, options.signal);
    }
    return this.#batcher.add(message, MESSAGE_HEADER_SIZE + message.data.byteLength, options.signal);
  }

  /**
   * Publishes `messages` through the broker's batch route and resolves with
   * their indexes, in order (`indexes[i]` is `messages[i]`'s; consecutive
   * within one request). Lists larger than the batching limits
   * (`maxMessages`, `maxBytes`) go as several requests, one after another: if
   * one fails, the messages of the requests before it stay published. Against
   * a broker without the batch route (a broker of the original answers 404),
   * the messages go one by one, in order, and the client remembers not to try
   * the batch route on that URL again.
   */
  async publishBatch(messages: readonly PublishMessage[], options: CallOptions = {}): Promise<bigint[]> {
    this.#assertOpen();
    for (const message of messages) validatePublishMessage(message);
    throwIfAborted(options.signal);
    const indexes: bigint[] = [];
    for (const chunk of this.#chunks(messages)) {
      const sent = await this.#publishFramed(chunk, options.signal);
      if (sent !== undefined) {
        indexes.push(...sent);
        continue;
      }
      for (const message of chunk) indexes.push(await this.#publishOne(message, options.signal));
    }
    return indexes;
  }

  /**
   * Asks the leader for the cluster's URLs (`POST /messaging/ping`). A
   * non-empty list replaces {@link urls}, its URLs become trusted members
   * (see {@link isMember}) and, when it changed, it is written to the config
   * file atomically (temp file + rename). Resolves with the list the broker
   * sent (empty if it sent none).
   *
   * Only an authenticated ping teaches members: one answered, over this
   * client's own transport (its `tls` and `token`), by a URL that is already
   * a member. The ping goes to a member and follows redirects only to
   * members like any call, so a list from anyone else is never read; a ping
   * redirected only outside the members ends with `UNTRUSTED_REDIRECT`.
   */
  async ping(options: CallOptions = {}): Promise<URL[]> {
    this.#assertOpen();
    const { answer, url: answeredBy } = await this.#execute({ method: 'POST', path: Paths.ping, body: new Uint8Array(0) }, options.signal);
    if (!this.#members.has(answeredBy.origin)) {
      throw new ClientError('UNTRUSTED_REDIRECT', { message: `untrusted redirect: the ping was answered by ${answeredBy.origin}, which is not a known member; its URLs are ignored` });
    }
    if (answer.body.byteLength === 0) return [];
    let urls: URL[];
    try {
      const parsed = pingBodySchema.parse(JSON.parse(new TextDecoder().decode(answer.body)));
      urls = parsed.urls.map((text) => {
        const url = parseBrokerURL(text);
        if (!url) throw new Error(`bad URL ${JSON.stringify(text)}`);
        return url;
      });
    } catch (error) {
      throw new ClientError('BAD_RESPONSE', { message: `bad response: ping answer is not {"urls":[...]}: ${(error as Error).message}`, cause: error });
    }
    if (urls.length > 0) {
      this.#replaceURLs(urls);
      await this.#persist(options.signal);
    }
    return urls;
  }

  /**
   * A stream of one topic's messages that uses this client's URLs. Open it
   * with `conn.open(index)`; `close()` of the client closes it too.
   *
   * @throws BrokerError `CLIENT_CLOSED` when the client is not open.
   */
  conn(topicID: bigint, options: ConnOptions = {}): Conn {
    this.#assertOpen();
    const conn = new Conn(topicID, this.#connHost(), { ...this.#connOptions, ...options });
    this.#conns.add(conn);
    return conn;
  }

  // ---- internals -------------------------------------------------------

  #assertOpen(): void {
    if (this.#state !== 'open') throw new BrokerError('CLIENT_CLOSED');
  }

  #target(): URL {
    const url = this.#url ?? this.#urls[0];
    if (!url) throw new ClientError('NO_URLS', { message: 'no broker urls: pass urls or a config file, or call setURLs()' });
    return url;
  }

  /**
   * The known URL after `from` (wrapping). A `from` outside the list (a
   * leader learned from a redirect) continues after `listed`, the last list
   * URL tried, so a redirect to a dead leader cannot trap the failover.
   * `from` itself when the list is empty.
   */
  #nextURL(from: URL, listed?: URL): URL {
    if (this.#urls.length === 0) return from;
    let at = this.#urls.findIndex((url) => url.origin === from.origin);
    if (at < 0 && listed !== undefined) at = this.#urls.findIndex((url) => url.origin === listed.origin);
    return this.#urls[(at + 1) % this.#urls.length]!;
  }

  #connHost(): ConnHost {
    return {
      transport: this.#transport,
      clock: this.#clock,
      random: this.#random,
      logger: this.#logger,
      requestTimeoutMs: this.#requestTimeoutMs,
      authHeaders: () => this.#authHeaders(),
      currentURL: () => this.#url ?? this.#urls[0],
      nextURL: (from) => this.#nextURL(from),
      heartbeat: async (topicID, index, readerId, signal) => {
        this.#assertOpen();
        await this.#execute(
          {
            method: 'POST',
            path: Paths.heartbeat,
            query: { [Query.topicID]: topicID.toString(), [Query.index]: index.toString(), [READER_ID_QUERY]: readerId },
          },
          signal,
        );
      },
      released: (conn) => this.#conns.delete(conn),
      assertOpen: () => this.#assertOpen(),
    };
  }

  /**
   * Sends a request to the leader: follows 307 redirects to members
   * (remembering the leader), and on a retriable failure moves to the next
   * URL and retries with backoff, at most `retries` times. A redirect or a
   * `not leader` hint to a URL outside the members is not followed: it is
   * logged once per pair of origins and the call moves to the next known URL
   * (a 307 counts as a failure, `UNTRUSTED_REDIRECT`). `accept` lets a
   * caller take some error statuses as answers.
   */
  async #execute(
    request: Request,
    signal: AbortSignal | undefined,
    accept: (status: number) => boolean = () => false,
  ): Promise<{ answer: HttpAnswer; url: URL }> {
    const combined = signal ? AbortSignal.any([signal, this.#closing.signal]) : this.#closing.signal;
    let url = this.#target();
    let listed = url;
    let failures = 0;
    let redirects = 0;
    const path = pathAndQuery(request.path, request.query);
    for (;;) {
      this.#checkCancelled(signal);
      let failure: Error;
      try {
        const auth = await this.#authHeaders();
        const headers = request.headers === undefined ? auth : { ...auth, ...request.headers };
        const answer = await this.#transport.request({
          headers,
          method: request.method,
          url,
          path,
          body: request.body,
          contentType: request.contentType,
          timeoutMs: this.#requestTimeoutMs,
          signal: combined,
        });
        if (answer.status === 307) {
          const leader = parseBrokerURL(new URL(headerValue(answer.headers.location) ?? '', new URL(path, url)).href);
          if (!leader || headerValue(answer.headers.location) === undefined) {
            throw new ClientError('BAD_RESPONSE', { message: `bad response: 307 without a usable Location from ${url.origin}` });
          }
          this.#learnMembers(url, headerValue(answer.headers[Headers.members]));
          if (!this.#members.has(leader.origin)) {
            this.#untrusted(url, leader);
            failure = new ClientError('UNTRUSTED_REDIRECT', {
              message: `untrusted redirect: ${url.origin} redirected to ${leader.origin}, which is not a known member; not followed`,
            });
          } else {
            this.#logger.debug?.('redirected to leader', { from: url.origin, to: leader.origin });
            this.#url = leader;
            url = leader;
            if (++redirects <= 8) continue;
            redirects = 0;
            failure = new BrokerError('NO_LEADER', { message: 'no leader: too many redirects' });
          }
        } else if ((answer.status >= 200 && answer.status < 300) || accept(answer.status)) {
          return { answer, url };
        } else {
          const error = brokerErrorFromResponse(answer.status, answer.headers, answer.body);
          if (!error.retriable) throw error;
          failure = error;
        }
      } catch (error) {
        this.#checkCancelled(signal);
        if (!(error instanceof BrokerError || isClientError(error, 'BAD_RESPONSE')) || !error.retriable) throw error;
        failure = error;
      }
      failures++;
      if (failures > this.#retries) throw finalError(failure, failures);
      let hinted = failure instanceof BrokerError && failure.leaderURL ? parseBrokerURL(failure.leaderURL) : undefined;
      if (hinted !== undefined && !this.#members.has(hinted.origin)) {
        this.#untrusted(url, hinted);
        hinted = undefined;
      }
      const next = hinted ?? this.#nextURL(url, listed);
      if (this.#urls.some((known) => known.origin === next.origin)) listed = next;
      this.#logger.debug?.('retrying', { from: url.origin, to: next.origin, error: failure.message, failures });
      this.#url = next;
      url = next;
      try {
        await delay(this.#clock, backoffDelay(this.#backoff, failures, this.#random), combined);
      } catch {
        this.#checkCancelled(signal);
      }
    }
  }

  /**
   * Takes the member URLs a member's 307 lists (`X-Broker-Members`, comma-separated) as members, as a ping
   * answered by that member would teach them: only from a member (every URL a call reaches is one), and
   * malformed entries are skipped. The known URLs ({@link urls}) change only with a ping.
   */
  #learnMembers(from: URL, listed: string | undefined): void {
    if (listed === undefined || !this.#members.has(from.origin)) return;
    for (const part of listed.split(',').slice(0, 64)) {
      const member = parseBrokerURL(part.trim());
      if (member !== undefined) this.#members.add(member.origin);
    }
  }

  /** Logs (once per pair of origins, at most 1024 pairs remembered) that `from` redirected to `to`, outside the members. Origins only: never a path, query or credential. */
  #untrusted(from: URL, to: URL): void {
    const key = `${from.origin}>${to.origin}`;
    if (this.#untrustedLogged.has(key)) return;
    if (this.#untrustedLogged.size >= 1024) this.#untrustedLogged.clear();
    this.#untrustedLogged.add(key);
    this.#logger.warn('untrusted redirect: not followed (the target is not a known member)', { from: from.origin, to: to.origin });
  }

  /** `authorization` for the current token (the token function is called now), or `undefined` without one. */
  async #authHeaders(): Promise<Readonly<Record<string, string>> | undefined> {
    if (this.#token === undefined) return undefined;
    const token = typeof this.#token === 'string' ? this.#token : checkToken(await this.#token());
    return { authorization: `Bearer ${token}` };
  }

  #checkCancelled(signal: AbortSignal | undefined): void {
    if (signal?.aborted) throw abortError(signal);
    if (this.#closing.signal.aborted) throw new BrokerError('CLIENT_CLOSED');
  }

  async #publishOne(message: PublishMessage, signal: AbortSignal | undefined): Promise<bigint> {
    const { answer, url } = await this.#produce(1, signal, (headers) =>
      this.#execute(
        {
          method: 'POST',
          path: Paths.messages,
          query: { [Query.type]: String(message.type), [Query.topicID]: message.topicID.toString() },
          body: message.data,
          contentType: MESSAGES_CONTENT_TYPE,
          ...(headers === undefined ? {} : { headers }),
        },
        signal,
      ),
    );
    const index = parseU64(headerValue(answer.headers[Headers.index]));
    if (index === undefined) throw new ClientError('BAD_RESPONSE', { message: `bad response: publish answer from ${url.origin} has no valid X-Broker-Index` });
    return index;
  }

  /**
   * Sends one batch request. Resolves with the indexes, or `undefined` when
   * the broker has no batch route (then remembered for its URL).
   */
  async #publishFramed(messages: readonly PublishMessage[], signal: AbortSignal | undefined): Promise<bigint[] | undefined> {
    if (this.#noBatchRoute.has(this.#target().origin)) return undefined;
    const body = encodeMessages(messages.map((m) => ({ type: m.type, topicID: m.topicID, index: 0n, data: m.data })));
    const { answer, url } = await this.#produce(messages.length, signal, (headers) =>
      this.#execute(
        { method: 'POST', path: Paths.batch, body, contentType: MESSAGES_CONTENT_TYPE, ...(headers === undefined ? {} : { headers }) },
        signal,
        (status) => status === 404 || status === 405,
      ),
    );
    if (answer.status === 404 || answer.status === 405) {
      this.#logger.debug?.('no batch route: publishing one by one', { url: url.origin });
      this.#noBatchRoute.add(url.origin);
      return undefined;
    }
    const first = parseU64(headerValue(answer.headers[Headers.index]));
    const last = parseU64(headerValue(answer.headers[Headers.lastIndex]));
    const runs = headerValue(answer.headers[Headers.indexes]);
    if (runs !== undefined) {
      const indexes = parseIndexRuns(runs, messages.length);
      if (indexes === undefined) throw new ClientError('BAD_RESPONSE', { message: `bad response: batch of ${messages.length} from ${url.origin} answered X-Broker-Indexes ${JSON.stringify(runs.slice(0, 100))}` });
      return indexes;
    }
    if (first === undefined || last === undefined || last - first + 1n !== BigInt(messages.length)) {
      throw new ClientError('BAD_RESPONSE', {
        message: `bad response: batch of ${messages.length} from ${url.origin} answered X-Broker-Index ${String(first)}, X-Broker-Last-Index ${String(last)}`,
      });
    }
    return messages.map((_, i) => first + BigInt(i));
  }

  /** The batcher's sender: one batch request, else each message alone so each caller gets its own outcome. */
  async #sendCoalesced(messages: PublishMessage[]): Promise<PublishOutcome[]> {
    if (messages.length > 1) {
      try {
        const indexes = await this.#publishFramed(messages, undefined);
        if (indexes) return indexes.map((index) => ({ ok: true, index }));
      } catch (error) {
        // A batch refused as a whole (one bad message, too large, ...): find out whose fault it is.
        if (!(error instanceof BrokerError) || error.retriable || error.code === 'CLIENT_CLOSED') throw error;
      }
    }
    return Promise.all(
      messages.map((message) =>
        this.#publishOne(message, undefined).then(
          (index): PublishOutcome => ({ ok: true, index }),
          (error: unknown): PublishOutcome => ({ ok: false, error }),
        ),
      ),
    );
  }

  /**
   * Sends one publish request of `count` messages through `send`, with this client's producer headers (none
   * without a producer). A producer's requests go one at a time, each taking the next `count` sequences; a
   * `SEQUENCE_GAP` (an earlier request of this producer was never committed) is sent again once, renumbered
   * from the sequence the broker expects. A refusal that wrote nothing (a 4xx other than a sequence error)
   * gives its sequences back.
   */
  async #produce<T>(count: number, signal: AbortSignal | undefined, send: (headers: Record<string, string> | undefined) => Promise<T>): Promise<T> {
    const producer = this.#producer;
    if (producer === undefined) return send(undefined);
    const turn = this.#lane.then(async () => {
      producer.next ??= await this.#producerNext(producer.id, signal);
      const seq = producer.next;
      producer.next = seq + BigInt(count);
      try {
        return await send(producerHeaders(producer.id, seq));
      } catch (error) {
        if (!(error instanceof BrokerError)) throw error;
        if (error.code === 'SEQUENCE_GAP' && error.producerNext !== undefined) {
          this.#logger.debug?.('producer sequence gap: renumbering', { sent: String(seq), next: String(error.producerNext) });
          producer.next = error.producerNext + BigInt(count);
          return await send(producerHeaders(producer.id, error.producerNext));
        }
        if (error.status >= 400 && error.status < 500 && error.status !== 409 && producer.next === seq + BigInt(count)) producer.next = seq;
        throw error;
      }
    });
    this.#lane = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }

  /** The sequence producer `id` sends next, from the leader (0 for a producer it does not hold, or a broker without the route). */
  async #producerNext(id: string, signal: AbortSignal | undefined): Promise<bigint> {
    const { answer, url } = await this.#execute({ method: 'GET', path: Paths.producers, query: { [Query.producerID]: id } }, signal, (status) => status === 404);
    if (answer.status === 404) return 0n;
    try {
      const parsed = producerBodySchema.parse(JSON.parse(new TextDecoder().decode(answer.body)));
      return BigInt(parsed.next);
    } catch (error) {
      throw new ClientError('BAD_RESPONSE', { message: `bad response: the producer answer of ${url.origin} is not {"producerID","next"}`, cause: error });
    }
  }

  *#chunks(messages: readonly PublishMessage[]): Generator<PublishMessage[]> {
    let chunk: PublishMessage[] = [];
    let bytes = 0;
    for (const message of messages) {
      const size = MESSAGE_HEADER_SIZE + message.data.byteLength;
      if (chunk.length > 0 && (chunk.length >= this.#batching.maxMessages || bytes + size > this.#batching.maxBytes)) {
        yield chunk;
        chunk = [];
        bytes = 0;
      }
      chunk.push(message);
      bytes += size;
    }
    if (chunk.length > 0) yield chunk;
  }

  async #persist(signal: AbortSignal | undefined): Promise<void> {
    if (this.#configPath === undefined) return;
    const text = formatConfig({ urls: this.#urls });
    if (text === this.#persisted) return;
    throwIfAborted(signal);
    await writeConfig(this.#configPath, { urls: this.#urls });
    this.#persisted = text;
  }

  #schedulePing(): void {
    if (this.#pingIntervalMs === 0 || this.#state !== 'open') return;
    const timer = this.#clock.setTimeout(() => {
      this.#pingTimer = undefined;
      const run = this.ping({ signal: this.#closing.signal })
        .catch((error: unknown) => {
          if (this.#state === 'open') this.#logger.warn('ping failed', { error });
        })
        .finally(() => {
          this.#background.delete(run);
          this.#schedulePing();
        });
      this.#background.add(run);
    }, this.#pingIntervalMs);
    // The ping loop alone must never keep a process alive.
    (timer as { unref?: () => void } | undefined)?.unref?.();
    this.#pingTimer = timer;
  }
}

/** `path` with `query` encoded as its query string (as `URLSearchParams` would, without building a URL per request). */
function pathAndQuery(path: string, query: Record<string, string> | undefined): string {
  if (query === undefined) return path;
  let search = '';
  for (const key in query) search += `${search === '' ? '?' : '&'}${encodeURIComponent(key)}=${encodeURIComponent(query[key]!)}`;
  return path + search;
}

/** The producer of {@link ClientOptions.producerId}: a random one by default, none for `false`; a malformed id is `INVALID_OPTIONS`. */
function producerOf(option: string | false | undefined): Producer | undefined {
  if (option === false) return undefined;
  if (option === undefined) return { id: randomUUID(), next: 0n };
  if (typeof option !== 'string' || !PRODUCER_ID.test(option)) {
    throw new ClientError('INVALID_OPTIONS', { message: 'invalid options: producerId must be false or 1 to 64 characters of A-Z a-z 0-9 . _ : -' });
  }
  return { id: option, next: undefined };
}

function producerHeaders(id: string, seq: bigint): Record<string, string> {
  return { [Headers.producerId]: id, [Headers.producerSeq]: seq.toString() };
}

/** The indexes of `X-Broker-Indexes` (`a-b,c,...`), or `undefined` unless they are exactly `count` u64 values. */
function parseIndexRuns(text: string, count: number): bigint[] | undefined {
  const indexes: bigint[] = [];
  for (const run of text.split(',')) {
    const [a, b, extra] = run.trim().split('-');
    const first = parseU64(a);
    const last = b === undefined ? first : parseU64(b);
    if (first === undefined || last === undefined || extra !== undefined || last < first || last - first >= BigInt(count - indexes.length)) return undefined;
    for (let i = first; i <= last; i++) indexes.push(i);
  }
  return indexes.length === count ? indexes : undefined;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The error a call ends with once its retries are spent. */
function finalError(failure: Error, attempts: number): Error {
  if (failure instanceof BrokerError && (failure.code === 'NOT_LEADER' || failure.code === 'NO_LEADER')) {
    return new BrokerError('NO_LEADER', { message: `no leader (after ${attempts} attempts)`, cause: failure });
  }
  return failure;
}

function nonNegativeNumber(value: number, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new ClientError('INVALID_OPTIONS', { message: `invalid options: ${name} must be a finite number >= 0, got ${String(value)}` });
  }
  return value;
}

function positiveNumber(value: number, name: string): number {
  if (nonNegativeNumber(value, name) === 0) throw new ClientError('INVALID_OPTIONS', { message: `invalid options: ${name} must be > 0` });
  return value;
}

function nonNegativeInteger(value: number, name: string): number {
  if (!Number.isInteger(nonNegativeNumber(value, name))) throw new ClientError('INVALID_OPTIONS', { message: `invalid options: ${name} must be an integer` });
  return value;
}

function positiveInteger(value: number, name: string): number {
  if (nonNegativeInteger(value, name) === 0) throw new ClientError('INVALID_OPTIONS', { message: `invalid options: ${name} must be >= 1` });
  return value;
}

/** `token` when it can be a bearer token (a non-empty header value without whitespace); `INVALID_OPTIONS` otherwise, never showing it. */
function checkToken(token: unknown): string {
  if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) {
    throw new ClientError('INVALID_OPTIONS', { message: `invalid options: token must be a non-empty string of printable ASCII without spaces (got ${typeof token === 'string' ? `${token.length} characters` : typeof token})` });
  }
  return token;
}
