import { sleep } from '@msg/test-utils';
import type { Message } from '@msg/wire';
import { request } from './http-request.js';

/** Options of {@link Publishers}. */
export interface PublishersOptions {
  /** Broker URLs to publish to (any member: a follower redirects). */
  urls: readonly string[];
  topicID: bigint;
  /** Concurrent publish loops. */
  workers: number;
  /** Message type. Default 1. */
  type?: number;
  /** Deadline of one request in milliseconds. Default 5000. */
  requestTimeoutMs?: number;
  /** Pause after a failed attempt before the next one, in milliseconds. Default 50. */
  retryDelayMs?: number;
  /** No loop runs longer than this, in milliseconds. Default 120000. */
  maxRunMs?: number;
}

/**
 * Publish loops over raw HTTP that keep an exact ledger. Every attempt sends
 * a payload never sent before (`w<worker>-<attempt>`), so an attempt whose
 * answer was lost cannot be mistaken for an acknowledged one. A 307 is
 * followed with the same payload (nothing was proposed); any other failure
 * (connection refused or reset, timeout, 5xx) moves to the next URL and the
 * next attempt sends a new payload.
 */
export class Publishers {
  /** Acknowledged payload → the index in its `X-Broker-Index`. */
  readonly acked = new Map<string, bigint>();
  /** Every payload ever sent (acknowledged or not). */
  readonly sent = new Set<string>();
  /** Failed attempts, with why. */
  readonly failures: string[] = [];
  readonly #options: Required<PublishersOptions>;
  #stopped = false;
  #loops: Promise<void>[] = [];

  constructor(options: PublishersOptions) {
    this.#options = { type: 1, requestTimeoutMs: 5000, retryDelayMs: 50, maxRunMs: 120_000, ...options };
  }

  /** Starts the loops. */
  start(): void {
    for (let w = 0; w < this.#options.workers; w++) this.#loops.push(this.#loop(w));
  }

  /** Stops the loops and waits for the requests in flight to settle. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#loops);
  }

  /**
   * Throws unless `messages` (a topic as one broker serves it, from index 0)
   * hold every acknowledged payload exactly once at its acknowledged index,
   * no payload twice, and nothing that was never sent.
   */
  verify(messages: readonly Message[], where: string): void {
    const seen = new Map<string, bigint>();
    for (const m of messages) {
      const payload = Buffer.from(m.data).toString();
      if (!this.sent.has(payload)) throw new Error(`${where}: payload ${payload} at ${m.index} was never sent`);
      const before = seen.get(payload);
      if (before !== undefined) throw new Error(`${where}: payload ${payload} at ${before} and again at ${m.index}`);
      seen.set(payload, m.index);
    }
    for (const [payload, index] of this.acked) {
      const at = seen.get(payload);
      if (at === undefined) throw new Error(`${where}: acknowledged payload ${payload} (index ${index}) is missing`);
      if (at !== index) throw new Error(`${where}: acknowledged payload ${payload} at index ${at}, acknowledged as ${index}`);
    }
  }

  /** The highest acknowledged index (0 if none). */
  get maxAckedIndex(): bigint {
    let max = 0n;
    for (const index of this.acked.values()) if (index > max) max = index;
    return max;
  }

  async #loop(worker: number): Promise<void> {
    const { urls, topicID, type, requestTimeoutMs, retryDelayMs, maxRunMs } = this.#options;
    const deadline = Date.now() + maxRunMs;
    let target = urls[worker % urls.length]!;
    let next = worker;
    for (let attempt = 0; !this.#stopped && Date.now() < deadline; attempt++) {
      const payload = `w${worker}-${attempt}`;
      this.sent.add(payload);
      let failure: string | undefined;
      for (let redirects = 0; ; redirects++) {
        try {
          const answer = await request(`${target}/messaging/messages?type=${type}&topicID=${topicID}`, {
            method: 'POST',
            body: payload,
            timeoutMs: requestTimeoutMs,
          });
          const location = answer.headers.location;
          if (answer.status === 307 && location !== undefined && redirects < 5) {
            target = new URL(location).origin;
            continue;
          }
          const index = answer.headers['x-broker-index'];
          if (answer.status === 200 && typeof index === 'string') this.acked.set(payload, BigInt(index));
          else failure = `${target}: ${answer.status} ${String(answer.headers['x-broker-error'])}`;
        } catch (error) {
          failure = `${target}: ${(error as Error).message}`;
        }
        break;
      }
      if (failure !== undefined) {
        this.failures.push(`${payload} ${failure}`);
        target = urls[++next % urls.length]!;
        await sleep(retryDelayMs);
      }
    }
  }
}
