/** Seconds the publish rate of {@link TopicStats} averages over. */
export const PUBLISH_RATE_WINDOW_SECONDS = 10;

/**
 * Numbers of one topic kept in memory since the broker opened (a restart
 * starts them over): messages and data bytes applied to it, the rate of the
 * last {@link PUBLISH_RATE_WINDOW_SECONDS} seconds, and its open readers.
 * @internal
 */
export class TopicStats {
  /** Messages applied to the topic since the broker opened. */
  messages = 0;
  /** Data bytes (headers aside) of those messages. */
  bytes = 0;
  /** Readers of the topic open now (streams and one-shot reads). */
  openReaders = 0;
  /** Messages applied per whole second of the clock, for the last window. */
  readonly #buckets = new Array<number>(PUBLISH_RATE_WINDOW_SECONDS).fill(0);
  /** The second (clock ms / 1000, floored) of the newest bucket. */
  #second = 0;

  /** `count` messages of `bytes` data bytes were applied at `nowMs` (clock milliseconds). */
  applied(count: number, bytes: number, nowMs: number): void {
    this.messages += count;
    this.bytes += bytes;
    this.#advance(nowMs);
    this.#buckets[this.#second % PUBLISH_RATE_WINDOW_SECONDS]! += count;
  }

  /** Messages per second applied over the last {@link PUBLISH_RATE_WINDOW_SECONDS} seconds, as of `nowMs`. */
  rate(nowMs: number): number {
    this.#advance(nowMs);
    let total = 0;
    for (const n of this.#buckets) total += n;
    return total / PUBLISH_RATE_WINDOW_SECONDS;
  }

  /** Moves the window to the second of `nowMs`, zeroing the seconds that passed. */
  #advance(nowMs: number): void {
    const second = Math.floor(nowMs / 1000);
    if (second <= this.#second) return;
    const passed = Math.min(second - this.#second, PUBLISH_RATE_WINDOW_SECONDS);
    for (let i = 1; i <= passed; i++) this.#buckets[(this.#second + i) % PUBLISH_RATE_WINDOW_SECONDS] = 0;
    this.#second = second;
  }
}
