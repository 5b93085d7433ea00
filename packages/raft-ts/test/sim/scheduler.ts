import type { Clock } from '../../src/clock.js';

interface Event {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * Virtual time for the simulation: a heap of timed events run in time order
 * (ties in scheduling order). After each event every promise continuation it
 * caused runs (a macrotask turn drains the microtask queue) before the next
 * event, so a run depends only on the seed.
 */
export class Scheduler {
  #now = 0;
  #seq = 0;
  #heap: Event[] = [];
  /** Events run so far. */
  steps = 0;

  /** Current virtual time in milliseconds. */
  get now(): number {
    return this.#now;
  }

  /** Runs `fn` after `ms` virtual milliseconds; returns a cancellable handle. */
  schedule(ms: number, fn: () => void): Event {
    const ev: Event = { at: this.#now + Math.max(0, ms), seq: ++this.#seq, fn, cancelled: false };
    const h = this.#heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
    return ev;
  }

  /** Cancels a handle from {@link Scheduler.schedule}. */
  cancel(handle: unknown): void {
    if (handle && typeof handle === 'object' && 'cancelled' in handle) (handle as Event).cancelled = true;
  }

  #pop(): Event | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
    return top;
  }

  /** Runs events until virtual time `until` (or `stop()` returns true). */
  async runUntil(until: number, stop?: () => boolean): Promise<void> {
    await drain();
    while (this.#heap.length > 0 && this.#heap[0]!.at <= until) {
      if (stop?.()) return;
      const ev = this.#pop()!;
      if (ev.cancelled) continue;
      this.#now = ev.at;
      this.steps++;
      ev.fn();
      await drain();
    }
    if (!stop?.()) this.#now = Math.max(this.#now, until);
  }

  /** A clock whose timers fire only while `alive()` holds. */
  clock(alive: () => boolean): Clock {
    return {
      now: () => this.#now,
      setTimeout: (fn, ms) => this.schedule(ms, () => alive() && fn()),
      clearTimeout: (h) => this.cancel(h),
    };
  }
}

function before(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

function drain(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
