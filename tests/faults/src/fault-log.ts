/** One line of a {@link FaultLog}. */
export interface FaultEntry {
  /** Milliseconds since the log was made. */
  readonly t: number;
  /** Wall-clock time (ISO 8601). */
  readonly at: string;
  /** What happened: a fault kind, `heal`, `restart`, `leader`, `probe`, … */
  readonly event: string;
  /** Details (the node, the duration, the outcome). */
  readonly detail: string;
}

/**
 * Timestamped record of every fault injected and healed, and of what the
 * harness saw (leaders, restarts, probes). `around` cuts out the lines near
 * a violation for the failure report.
 */
export class FaultLog {
  readonly entries: FaultEntry[] = [];
  readonly #start = Date.now();
  readonly #echo: ((line: string) => void) | undefined;

  /** `echo`: also called with every formatted line as it is recorded (the soak prints them). */
  constructor(echo?: (line: string) => void) {
    this.#echo = echo;
  }

  /** Milliseconds since the log was made. */
  now(): number {
    return Date.now() - this.#start;
  }

  /** The time (ms since the log was made) of an absolute `Date.now()` value. */
  relative(epochMs: number): number {
    return epochMs - this.#start;
  }

  /** Records an event now; returns its entry. */
  record(event: string, detail: string): FaultEntry {
    const t = this.now();
    const entry = { t, at: new Date(this.#start + t).toISOString(), event, detail };
    this.entries.push(entry);
    this.#echo?.(format(entry));
    return entry;
  }

  /** The entries within `windowMs` (default 10000) of time `t`, formatted, or the last 20 when `t` is undefined. */
  around(t: number | undefined, windowMs = 10_000): string {
    const lines = t === undefined ? this.entries.slice(-20) : this.entries.filter((e) => Math.abs(e.t - t) <= windowMs);
    return lines.map(format).join('\n');
  }

  /** Every entry, formatted. */
  toString(): string {
    return this.entries.map(format).join('\n');
  }
}

/** `2026-…Z +12.345s event detail`. */
export function format(entry: FaultEntry): string {
  return `${entry.at} +${(entry.t / 1000).toFixed(3)}s ${entry.event} ${entry.detail}`;
}
