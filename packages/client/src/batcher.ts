import type { Clock, TimerHandle } from './clock.js';
import { abortError } from './errors.js';
import type { PublishMessage } from './publish-message.js';

/** The outcome of one message of a batch: its index, or its own error. */
export type PublishOutcome = { ok: true; index: bigint } | { ok: false; error: unknown };

/** How the batcher hands a batch over; resolves with one outcome per message, in order, or rejects for all. */
export type SendBatch = (messages: PublishMessage[]) => Promise<PublishOutcome[]>;

/** Limits of {@link Batcher}. */
export interface BatcherLimits {
  /**
   * 0: batch naturally (a message goes at once when a batch may be sent, and
   * waits only while `maxInFlight` batches are in flight). Above 0: the first
   * queued message also waits this many milliseconds for company (a linger
   * timer, as before), unless its batch fills up first.
   */
  lingerMs: number;
  /** Most messages in one batch. */
  maxMessages: number;
  /** Most encoded bytes in one batch (a larger single message travels alone). */
  maxBytes: number;
  /** Most batches in flight at once. */
  maxInFlight: number;
}

interface Entry {
  message: PublishMessage;
  size: number;
  settled: boolean;
  resolve(index: bigint): void;
  reject(error: unknown): void;
  dispose(): void;
}

/**
 * Coalesces concurrent publishes into batches, as Kafka producers and smart
 * batching do: when fewer than `maxInFlight` batches are in flight, what is
 * queued goes at once (at the end of the current synchronous run, so calls
 * made together travel together; no timer); while the limit is reached,
 * messages gather and go as the next batch as soon as one returns. A batch
 * holds at most `maxMessages` messages and `maxBytes` bytes; the rest waits
 * for the next. With `lingerMs` > 0 a linger timer delays the first message
 * instead. Each caller gets its own outcome.
 */
export class Batcher {
  readonly #limits: BatcherLimits;
  readonly #clock: Clock;
  readonly #send: SendBatch;
  #queue: Entry[] = [];
  #queuedBytes = 0;
  #timer: TimerHandle | undefined;
  #flushQueued = false;
  #inFlight = 0;
  readonly #running = new Set<Promise<void>>();
  #closedWith: (() => Error) | undefined;

  constructor(limits: BatcherLimits, clock: Clock, send: SendBatch) {
    this.#limits = limits;
    this.#clock = clock;
    this.#send = send;
  }

  /** Queues `message` (`size` = its encoded bytes) and resolves with its index. */
  add(message: PublishMessage, size: number, signal?: AbortSignal): Promise<bigint> {
    if (this.#closedWith) return Promise.reject(this.#closedWith());
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise<bigint>((resolve, reject) => {
      const onAbort = (): void => {
        if (entry.settled) return;
        const at = this.#queue.indexOf(entry);
        if (at >= 0) {
          this.#queue.splice(at, 1);
          this.#queuedBytes -= entry.size;
        }
        // If the batch is already on its way the message may still be published.
        entry.settled = true;
        reject(abortError(signal!));
      };
      const entry: Entry = {
        message,
        size,
        settled: false,
        resolve,
        reject,
        dispose: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(entry);
      this.#queuedBytes += size;
      if (this.#queue.length >= this.#limits.maxMessages || this.#queuedBytes >= this.#limits.maxBytes) {
        this.#flush();
      } else if (this.#inFlight >= this.#limits.maxInFlight) {
        // Gathers until a batch in flight returns (#flush runs then).
      } else if (this.#limits.lingerMs === 0) {
        if (!this.#flushQueued) {
          this.#flushQueued = true;
          queueMicrotask(() => {
            this.#flushQueued = false;
            if (!this.#closedWith) this.#flush();
          });
        }
      } else if (this.#timer === undefined) {
        this.#timer = this.#clock.setTimeout(() => {
          this.#timer = undefined;
          this.#flush();
        }, this.#limits.lingerMs);
      }
    });
  }

  /** Messages waiting for a batch. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Rejects every queued message with `makeError()`, refuses new ones, and
   * waits for the batches in flight to settle.
   */
  async close(makeError: () => Error): Promise<void> {
    this.#closedWith = makeError;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const queue = this.#queue;
    this.#queue = [];
    this.#queuedBytes = 0;
    for (const entry of queue) settle(entry, { ok: false, error: makeError() });
    await Promise.allSettled([...this.#running]);
  }

  #flush(): void {
    if (this.#timer !== undefined) {
      this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    while (this.#inFlight < this.#limits.maxInFlight && this.#queue.length > 0) {
      const batch = this.#take();
      this.#inFlight++;
      const run = this.#run(batch).finally(() => {
        this.#inFlight--;
        this.#running.delete(run);
        if (this.#queue.length > 0 && !this.#closedWith) this.#flush();
      });
      this.#running.add(run);
    }
  }

  #take(): Entry[] {
    const batch: Entry[] = [];
    let bytes = 0;
    while (this.#queue.length > 0 && batch.length < this.#limits.maxMessages) {
      const next = this.#queue[0]!;
      if (batch.length > 0 && bytes + next.size > this.#limits.maxBytes) break;
      this.#queue.shift();
      this.#queuedBytes -= next.size;
      bytes += next.size;
      batch.push(next);
    }
    return batch;
  }

  async #run(batch: Entry[]): Promise<void> {
    let outcomes: PublishOutcome[];
    try {
      outcomes = await this.#send(batch.map((entry) => entry.message));
    } catch (error) {
      outcomes = batch.map(() => ({ ok: false, error }));
    }
    batch.forEach((entry, i) => settle(entry, outcomes[i] ?? { ok: false, error: new Error('missing batch outcome') }));
  }
}

function settle(entry: Entry, outcome: PublishOutcome): void {
  entry.dispose();
  if (entry.settled) return;
  entry.settled = true;
  if (outcome.ok) entry.resolve(outcome.index);
  else entry.reject(outcome.error);
}
