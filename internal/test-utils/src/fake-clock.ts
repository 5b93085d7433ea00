/** A timer handle of {@link FakeClock}. */
export interface FakeTimer {
  readonly id: number;
}

interface Scheduled {
  id: number;
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A virtual clock for code that takes an injected clock
 * (`now()`, `setTimeout()`, `clearTimeout()`). Time moves only through
 * {@link FakeClock.advance}; due timers run in time order, ties in the order
 * they were set.
 */
export class FakeClock {
  #now: number;
  #seq = 0;
  #timers = new Map<number, Scheduled>();

  /** @param start the initial time in milliseconds since the epoch. */
  constructor(start = 0) {
    this.#now = start;
  }

  /** The current virtual time in milliseconds. */
  now(): number {
    return this.#now;
  }

  /** Schedules `fn` to run `ms` virtual milliseconds from now. */
  setTimeout(fn: () => void, ms: number): FakeTimer {
    const id = ++this.#seq;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, ms), seq: id, fn });
    return { id };
  }

  /** Cancels a timer; unknown or fired timers are ignored. */
  clearTimeout(timer: FakeTimer | undefined): void {
    if (timer) this.#timers.delete(timer.id);
  }

  /** How many timers are waiting. */
  get pending(): number {
    return this.#timers.size;
  }

  /**
   * Moves time forward by `ms`, running every timer that falls due (including
   * timers set by those timers), each with `now()` at its due time.
   */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (let guard = 0; guard < 1_000_000; guard++) {
      let next: Scheduled | undefined;
      for (const t of this.#timers.values()) {
        if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
      }
      if (!next) break;
      this.#timers.delete(next.id);
      this.#now = next.at;
      next.fn();
    }
    this.#now = end;
  }
}
