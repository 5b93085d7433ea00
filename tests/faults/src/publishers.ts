import { Client, isBrokerError, isClientError } from '@msg/client';
import { request } from '../../integration/src/http-request.js';
import { sleep } from '@msg/test-utils/wait-for';

/** An acknowledged publish. */
export interface Ack {
  /** The payload (unique per attempt, see {@link RawPublishers}). */
  readonly payload: string;
  /** The index the broker acknowledged. */
  readonly index: bigint;
  /** When the attempt started and ended (`Date.now()`). */
  readonly startedAt: number;
  readonly endedAt: number;
}

/** What a publisher ledger holds, for the checker. */
export interface Ledger {
  /** Raw publishes never retry a payload (a duplicate is a violation); `@msg/client` publishes may (at least once). */
  readonly kind: 'raw' | 'client';
  readonly topicID: bigint;
  /** Acknowledged publishes, by payload. */
  readonly acked: ReadonlyMap<string, Ack>;
  /** Every payload sent (acknowledged or not). */
  readonly sent: ReadonlySet<string>;
  /** Attempts that failed, and the last reasons. */
  readonly failed: number;
  readonly lastFailures: readonly string[];
}

/** Options of {@link RawPublishers}. */
export interface RawPublishersOptions {
  urls: readonly string[];
  topicID: bigint;
  /** Concurrent loops. */
  workers: number;
  /** Unique per run: payloads are `<tag>-w<worker>-<attempt>`. */
  tag: string;
  /** Deadline of one request, in ms. Default 5000. */
  requestTimeoutMs?: number;
  /** Pause between two attempts of a loop, in ms (keeps a loaded machine usable). Default 5. */
  pauseMs?: number;
}

function remember(list: string[], line: string): void {
  list.push(line);
  if (list.length > 20) list.shift();
}

/**
 * Raw HTTP publishers (`node:http`, one fresh connection per request) that
 * record every attempt: each attempt sends a payload never sent before, a
 * 307 is followed with the same payload (nothing was proposed), any other
 * outcome moves to the next URL. So an acknowledged payload is proof of one
 * commit, and a payload found twice is a broker duplicate.
 */
export class RawPublishers implements Ledger {
  readonly kind = 'raw';
  readonly topicID: bigint;
  readonly acked = new Map<string, Ack>();
  readonly sent = new Set<string>();
  failed = 0;
  readonly lastFailures: string[] = [];
  readonly #options: Required<RawPublishersOptions>;
  #stopped = false;
  #loops: Promise<void>[] = [];

  constructor(options: RawPublishersOptions) {
    this.#options = { requestTimeoutMs: 5000, pauseMs: 5, ...options };
    this.topicID = options.topicID;
  }

  /** Starts the loops. */
  start(): void {
    for (let w = 0; w < this.#options.workers; w++) this.#loops.push(this.#loop(w));
  }

  /** Stops the loops and waits for the requests in flight (each bounded by its timeout). */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#loops);
  }

  async #loop(worker: number): Promise<void> {
    const { urls, topicID, tag, requestTimeoutMs, pauseMs } = this.#options;
    let next = worker;
    let target = urls[next % urls.length]!;
    for (let attempt = 0; !this.#stopped; attempt++) {
      const payload = `${tag}-w${worker}-${attempt}`;
      this.sent.add(payload);
      const startedAt = Date.now();
      let failure: string | undefined;
      for (let redirects = 0; ; redirects++) {
        try {
          const answer = await request(`${target}/messaging/messages?type=1&topicID=${topicID}`, { method: 'POST', body: payload, timeoutMs: requestTimeoutMs });
          const location = answer.headers.location;
          if (answer.status === 307 && location !== undefined && redirects < 5) {
            target = new URL(location).origin;
            continue;
          }
          const index = answer.headers['x-broker-index'];
          if (answer.status === 200 && typeof index === 'string') this.acked.set(payload, { payload, index: BigInt(index), startedAt, endedAt: Date.now() });
          else failure = `${answer.status} ${String(answer.headers['x-broker-error-code'] ?? answer.headers['x-broker-error'])}`;
        } catch (error) {
          failure = (error as Error).message;
        }
        break;
      }
      if (failure !== undefined) {
        this.failed++;
        remember(this.lastFailures, `${payload} ${target}: ${failure}`);
        target = urls[++next % urls.length]!;
        await sleep(50);
      } else if (pauseMs > 0) await sleep(pauseMs);
    }
  }
}

/** Options of {@link ClientPublishers}. */
export interface ClientPublishersOptions {
  urls: readonly string[];
  topicID: bigint;
  /** Concurrent `publish()` loops sharing one `Client` (its calls batch). */
  workers: number;
  tag: string;
  /** Pause between two publishes of a loop, in ms. Default 5. */
  pauseMs?: number;
}

/**
 * `@msg/client` publishers, the way an application uses them: one `Client`
 * with every broker URL, `publish()` loops that retry on their own (bounded
 * retries, failover). Delivery is at least once, so a payload found twice is
 * counted as a duplicate, not a violation; a payload acknowledged must still
 * be found at its acknowledged index.
 */
export class ClientPublishers implements Ledger {
  readonly kind = 'client';
  readonly topicID: bigint;
  readonly acked = new Map<string, Ack>();
  readonly sent = new Set<string>();
  failed = 0;
  readonly lastFailures: string[] = [];
  /** Errors by code (retriable ones are expected during faults). */
  readonly errors = new Map<string, number>();
  readonly #options: Required<ClientPublishersOptions>;
  readonly #client: Client;
  #stopped = false;
  #loops: Promise<void>[] = [];

  constructor(options: ClientPublishersOptions) {
    this.#options = { pauseMs: 5, ...options };
    this.topicID = options.topicID;
    this.#client = new Client({ urls: [...options.urls], retries: 8, requestTimeoutMs: 5000, pingIntervalMs: 1000, backoff: { initialMs: 50, maxMs: 500 } });
  }

  /** Opens the client and starts the loops. */
  async start(): Promise<void> {
    await this.#client.open();
    for (let w = 0; w < this.#options.workers; w++) this.#loops.push(this.#loop(w));
  }

  /** Stops the loops and closes the client. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.#stopped) return Promise.all(this.#loops).then(() => undefined);
    this.#stopped = true;
    // Closing first fails the calls in flight (CLIENT_CLOSED): they are not acknowledged.
    await this.#client.close();
    await Promise.all(this.#loops);
  }

  async #loop(worker: number): Promise<void> {
    const { topicID, tag, pauseMs } = this.#options;
    for (let attempt = 0; !this.#stopped; attempt++) {
      const payload = `${tag}-c${worker}-${attempt}`;
      this.sent.add(payload);
      const startedAt = Date.now();
      try {
        const index = await this.#client.publish({ type: 1, topicID, data: Buffer.from(payload) });
        this.acked.set(payload, { payload, index, startedAt, endedAt: Date.now() });
        if (pauseMs > 0) await sleep(pauseMs);
      } catch (error) {
        if (this.#stopped) break;
        this.failed++;
        const code = isBrokerError(error) || isClientError(error) ? `${error.code}${error.retriable ? '' : ' (not retriable)'}` : (error as Error).message;
        this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
        remember(this.lastFailures, `${payload}: ${code}`);
        await sleep(50);
      }
    }
  }
}
