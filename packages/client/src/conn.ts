import { BrokerError, MessageDecoder, Paths, Query, isU64, type Message } from '@msg/wire';
import { backoffDelay, resolveBackoff, type Backoff, type BackoffOptions } from './backoff.js';
import { delay, type Clock, type TimerHandle } from './clock.js';
import { ClientError, abortError, brokerErrorFromResponse } from './errors.js';
import type { Logger } from './logger.js';
import type { HttpStream, Transport } from './transport.js';

/** Query parameter of `POST /messaging/heartbeat` naming the reporting reader (as `@msg/http`'s `READER_ID_QUERY`). */
export const READER_ID_QUERY = 'readerID';

/** Longest reader id, in UTF-8 bytes (as the broker's). */
const MAX_READER_ID_BYTES = 255;

const utf8 = new TextEncoder();

/** Options of a {@link Conn} (given to `client.conn()` or as the client's `conn` defaults). */
export interface ConnOptions {
  /**
   * Delays between reconnects of the stream, in milliseconds. Default
   * `{ initialMs: 1000, maxMs: 1000, multiplier: 1, jitter: 0 }`: the
   * original's fixed 1000 ms.
   */
  reconnect?: BackoffOptions;
  /** Consecutive failed connects after which iteration throws the last error. Default `Infinity`. */
  maxReconnects?: number;
  /** Deadline for a stream's answer headers, in milliseconds. Default: the client's `requestTimeoutMs`. */
  responseTimeoutMs?: number;
  /** Send {@link Conn.heartbeat} this often while open, in milliseconds; 0 (the default) never. */
  heartbeatIntervalMs?: number;
  /**
   * The reader id its heartbeats carry (the `readerID` query parameter of
   * `POST /messaging/heartbeat`; 1..255 UTF-8 bytes). The broker keeps one
   * position per reader id and reclaims only what every reader has passed,
   * so two conns with the same id count as one reader: give an id of your
   * own (e.g. `'billing/consumer-1'`) to keep the same reader across
   * processes and restarts. Default: a random UUID chosen when the conn is
   * made (stable for its life, unique per conn). Given in the client's
   * `conn` defaults, every conn of that client shares it.
   */
  readerId?: string;
  /**
   * Reconnect when a stream sends no byte for this long while the loop waits
   * for data, in milliseconds (time spent in the loop's body does not count).
   * It detects a broker that stalls mid-answer or a connection that died
   * silently. 0 (the default, as the original) waits for ever: a streaming
   * conn on a quiet topic legitimately receives nothing, and with a timeout
   * each expiry costs one reconnect (which resumes after the last index).
   */
  idleTimeoutMs?: number;
  /** Largest message data accepted from the stream, in bytes (a larger one is `FRAME_TOO_LARGE`). Default 16 MiB. */
  maxDataLength?: number;
}

/** Options of {@link Conn.open}. */
export interface ConnOpenOptions {
  /**
   * Keep the stream open and wait for new messages (default true). With
   * false, iteration ends at the current end of the topic.
   */
  streaming?: boolean;
  /** Aborting it ends the stream: iteration rejects with `ABORTED`. */
  signal?: AbortSignal;
}

/** The life of a {@link Conn}: `new` until `open()`, `open` until `close()`, then `closed` for good. */
export type ConnState = 'new' | 'open' | 'closed';

/** What a {@link Conn} needs of its client. @internal */
export interface ConnHost {
  transport: Pick<Transport, 'stream'>;
  clock: Clock;
  random: () => number;
  logger: Logger;
  requestTimeoutMs: number;
  /** The headers that authenticate a request (`authorization`), asked for each request; `undefined`: none. */
  authHeaders(): Promise<Readonly<Record<string, string>> | undefined>;
  /** The client's current URL. */
  currentURL(): URL | undefined;
  /** The known URL after `from`. */
  nextURL(from: URL): URL;
  /** Posts a heartbeat of reader `readerId` to the leader (redirects and retries as for a publish). */
  heartbeat(topicID: bigint, index: bigint, readerId: string, signal: AbortSignal): Promise<void>;
  /** The conn was closed. */
  released(conn: Conn): void;
  /** Throws `CLIENT_CLOSED` when the client is not open. */
  assertOpen(): void;
}

/**
 * One topic's stream of messages, from a start index on, as an async
 * iterable: `for await (const message of conn)`. Create it with
 * `client.conn(topicID)`.
 *
 * Messages arrive in index order with backpressure: while the loop body runs,
 * the HTTP stream is not read (at most one socket buffer is held).
 *
 * After an error (connection refused or reset, a truncated frame, a stream
 * that ends while streaming, a retriable status) the conn reconnects with
 * backoff, to the client's next URL, and **resumes after the last index it
 * delivered**. The original client resumed from its start index and replayed
 * everything on every reconnect; this one delivers each index at most once per
 * conn (messages at or below the last delivered index are skipped).
 *
 * Errors that retrying cannot fix end the iteration with a `BrokerError`:
 * `SEGMENT_RECLAIMED` (its `firstIndex` tells the first index still
 * available: open a new conn there, or give up), `TOPIC_REQUIRED`,
 * `INDEX_REQUIRED`, `FRAME_TOO_LARGE`, ...
 */
export class Conn implements AsyncIterable<Message> {
  /** The topic this conn streams. */
  readonly topicID: bigint;
  /** The reader id its heartbeats carry (see {@link ConnOptions.readerId}). */
  readonly readerId: string;
  readonly #host: ConnHost;
  readonly #reconnect: Backoff;
  readonly #maxReconnects: number;
  readonly #responseTimeoutMs: number;
  readonly #heartbeatIntervalMs: number;
  readonly #idleTimeoutMs: number;
  readonly #maxDataLength: number | undefined;
  readonly #closing = new AbortController();
  #state: ConnState = 'new';
  #signal: AbortSignal = this.#closing.signal;
  #streaming = true;
  #index = 0n;
  #next = 0n;
  #url: URL | undefined;
  #iterated = false;
  #heartbeatTimer: TimerHandle | undefined;
  readonly #background = new Set<Promise<unknown>>();

  /** Use `client.conn(topicID)`. */
  constructor(topicID: bigint, host: ConnHost, options: ConnOptions = {}) {
    if (!isU64(topicID)) throw new BrokerError('TOPIC_REQUIRED');
    this.topicID = topicID;
    this.#host = host;
    this.#reconnect = resolveBackoff(options.reconnect, { initialMs: 1000, maxMs: 1000, multiplier: 1, jitter: 0 }, 'reconnect');
    this.#maxReconnects = options.maxReconnects ?? Infinity;
    this.#responseTimeoutMs = options.responseTimeoutMs ?? host.requestTimeoutMs;
    this.#heartbeatIntervalMs = options.heartbeatIntervalMs ?? 0;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 0;
    this.#maxDataLength = options.maxDataLength;
    this.readerId = options.readerId ?? globalThis.crypto.randomUUID();
    const readerIdBytes = utf8.encode(this.readerId).byteLength;
    const finite = (ms: number): boolean => Number.isFinite(ms) && ms >= 0;
    if (!(this.#maxReconnects >= 0) || !finite(this.#responseTimeoutMs) || this.#responseTimeoutMs === 0 || !finite(this.#heartbeatIntervalMs) || !finite(this.#idleTimeoutMs) ||
      readerIdBytes < 1 || readerIdBytes > MAX_READER_ID_BYTES) {
      throw new ClientError('INVALID_OPTIONS', { message: `invalid options: conn ${JSON.stringify(options)}` });
    }
  }

  /** See {@link ConnState}. */
  get state(): ConnState {
    return this.#state;
  }

  /**
   * The last index delivered to the loop: what {@link heartbeat} reports.
   * Before the first message, the start index minus one (0 for a start of 0).
   */
  get index(): bigint {
    return this.#index;
  }

  /** Whether the stream waits for new messages (see {@link ConnOpenOptions.streaming}). */
  get streaming(): boolean {
    return this.#streaming;
  }

  /** The broker URL the stream uses (or will use next). */
  get url(): URL | undefined {
    const url = this.#url ?? this.#host.currentURL();
    return url === undefined ? undefined : new URL(url.href);
  }

  /**
   * Opens the conn at `index` (the first message delivered is the first
   * whose index is >= `index`). No request is sent until iteration starts.
   * Starts the periodic heartbeat when configured.
   *
   * @throws BrokerError `CONNECTION_ALREADY_OPEN` when open; `CANNOT_REUSE_CONNECTION` after `close()`; `INDEX_REQUIRED` for an index that is not a u64 bigint; `CLIENT_CLOSED` when its client was closed.
   */
  open(index: bigint, options: ConnOpenOptions = {}): void {
    if (this.#state === 'open') throw new BrokerError('CONNECTION_ALREADY_OPEN');
    if (this.#state === 'closed') throw new BrokerError('CANNOT_REUSE_CONNECTION');
    this.#host.assertOpen();
    if (!isU64(index)) throw new BrokerError('INDEX_REQUIRED');
    this.#state = 'open';
    this.#next = index;
    this.#index = index > 0n ? index - 1n : 0n;
    this.#streaming = options.streaming ?? true;
    this.#signal = options.signal ? AbortSignal.any([this.#closing.signal, options.signal]) : this.#closing.signal;
    this.#url = this.#host.currentURL();
    this.#scheduleHeartbeat();
  }

  /**
   * Closes the conn: the stream's socket is released at once and a loop
   * waiting for the next message ends cleanly (`done`). A conn cannot be
   * opened again.
   *
   * @throws BrokerError `CONNECTION_CLOSED` when not open (never opened, or closed twice).
   */
  async close(): Promise<void> {
    if (this.#state !== 'open') throw new BrokerError('CONNECTION_CLOSED');
    this.#state = 'closed';
    if (this.#heartbeatTimer !== undefined) this.#host.clock.clearTimeout(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
    this.#closing.abort(new BrokerError('CONNECTION_CLOSED'));
    this.#host.released(this);
    await Promise.allSettled([...this.#background]);
  }

  /** Same as {@link close}, but without the error when not open (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#state === 'open') await this.close();
  }

  /**
   * Reports {@link index} as reader {@link readerId} to the leader
   * (`POST /messaging/heartbeat?topicID&index&readerID`), so that segments
   * every reader has stored can be reclaimed (the broker counts a reader from
   * its first heartbeat on). Redirects and retries as for a publish.
   *
   * @throws BrokerError `CONNECTION_CLOSED` when not open.
   */
  async heartbeat(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state !== 'open') throw new BrokerError('CONNECTION_CLOSED');
    const signal = options.signal ? AbortSignal.any([this.#closing.signal, options.signal]) : this.#closing.signal;
    try {
      await this.#host.heartbeat(this.topicID, this.#index, this.readerId, signal);
    } catch (error) {
      if (options.signal?.aborted) throw abortError(options.signal);
      if (this.#closing.signal.aborted) throw new BrokerError('CONNECTION_CLOSED');
      throw error;
    }
  }

  /**
   * The messages, once per open conn.
   *
   * @throws BrokerError `CONNECTION_CLOSED` when not open; `CANNOT_REUSE_CONNECTION` when iterated before.
   */
  [Symbol.asyncIterator](): AsyncIterator<Message> {
    if (this.#state !== 'open') throw new BrokerError('CONNECTION_CLOSED');
    if (this.#iterated) throw new BrokerError('CANNOT_REUSE_CONNECTION');
    this.#iterated = true;
    return this.#run();
  }

  async *#run(): AsyncGenerator<Message, void, undefined> {
    const signal = this.#signal;
    let failures = 0;
    while (!signal.aborted) {
      const url = this.#url ?? this.#host.currentURL();
      if (url === undefined) throw new ClientError('NO_URLS', { message: 'no broker urls: pass urls or a config file, or call setURLs()' });
      this.#url = url;
      let failure: Error;
      let stream: HttpStream | undefined;
      try {
        const target = new URL(Paths.messages, url);
        target.searchParams.set(Query.topicID, this.topicID.toString());
        target.searchParams.set(Query.index, this.#next.toString());
        target.searchParams.set(Query.streaming, String(this.#streaming));
        const headers = await this.#host.authHeaders();
        stream = await this.#host.transport.stream({ url: target, responseTimeoutMs: this.#responseTimeoutMs, signal, headers });
        if (stream.status !== 200) {
          throw brokerErrorFromResponse(stream.status, stream.headers, await stream.readSome(4096));
        }
        this.#host.logger.debug?.('stream connected', { url: url.origin, topicID: this.topicID, index: this.#next });
        failures = 0;
        const decoder = new MessageDecoder(this.#maxDataLength === undefined ? {} : { maxDataLength: this.#maxDataLength });
        const chunks = stream.body[Symbol.asyncIterator]();
        for (;;) {
          const next = await this.#nextChunk(chunks, stream, url);
          if (next.done) break;
          for (const message of decoder.push(next.value)) {
            if (message.index < this.#next) continue;
            this.#index = message.index;
            this.#next = message.index + 1n;
            yield message;
            if (signal.aborted) return;
          }
        }
        decoder.end();
        if (!this.#streaming) return;
        failure = new BrokerError('UNAVAILABLE', { message: `unavailable: ${url.origin} ended the stream` });
      } catch (error) {
        if (signal.aborted) break;
        const retriable = (error instanceof BrokerError && (error.retriable || error.code === 'TRUNCATED_FRAME')) ||
          (error instanceof ClientError && error.retriable);
        if (!retriable) throw error;
        failure = error;
      } finally {
        stream?.destroy();
      }
      failures++;
      if (failures > this.#maxReconnects) throw failure;
      this.#url = this.#host.nextURL(url);
      const wait = backoffDelay(this.#reconnect, failures, this.#host.random);
      this.#host.logger.warn('reconnecting to broker', { url: url.origin, next: this.#url.origin, topicID: this.topicID, index: this.#next, delayMs: wait, error: failure });
      try {
        await delay(this.#host.clock, wait, signal);
      } catch {
        break;
      }
    }
    // Closed: a clean end. Aborted through the open() signal: an error.
    if (!this.#closing.signal.aborted && signal.aborted) throw new ClientError('ABORTED', { cause: signal.reason });
  }

  /**
   * The stream's next chunk. With an idle timeout, waiting longer than it
   * (only while the loop waits for data, never while its body runs) destroys
   * the stream and throws a retriable `TIMEOUT`.
   */
  async #nextChunk(chunks: AsyncIterator<Uint8Array>, stream: HttpStream, url: URL): Promise<IteratorResult<Uint8Array>> {
    if (this.#idleTimeoutMs === 0) return chunks.next();
    let timer: TimerHandle | undefined;
    const idle = new Promise<never>((_, reject) => {
      timer = this.#host.clock.setTimeout(() => {
        stream.destroy();
        reject(new BrokerError('TIMEOUT', { message: `timeout: ${url.origin} sent nothing for ${this.#idleTimeoutMs} ms` }));
      }, this.#idleTimeoutMs);
    });
    try {
      return await Promise.race([chunks.next(), idle]);
    } finally {
      this.#host.clock.clearTimeout(timer);
    }
  }

  #scheduleHeartbeat(): void {
    if (this.#heartbeatIntervalMs === 0 || this.#state !== 'open') return;
    const timer = this.#host.clock.setTimeout(() => {
      this.#heartbeatTimer = undefined;
      const run = this.heartbeat()
        .catch((error: unknown) => {
          if (this.#state === 'open') this.#host.logger.warn('heartbeat failed', { topicID: this.topicID, error });
        })
        .finally(() => {
          this.#background.delete(run);
          this.#scheduleHeartbeat();
        });
      this.#background.add(run);
    }, this.#heartbeatIntervalMs);
    (timer as { unref?: () => void } | undefined)?.unref?.();
    this.#heartbeatTimer = timer;
  }
}
