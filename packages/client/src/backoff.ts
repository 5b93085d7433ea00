import { ClientError } from './errors.js';

/** Exponential backoff between retries. */
export interface BackoffOptions {
  /** Delay before the first retry, in milliseconds. */
  initialMs?: number;
  /** Upper bound of any delay, in milliseconds. */
  maxMs?: number;
  /** Factor applied to the delay after each further failure (>= 1). */
  multiplier?: number;
  /**
   * Fraction of each delay replaced by randomness, 0..1: the delay is drawn
   * uniformly from `[d * (1 - jitter), d]`. 0 gives exact delays.
   */
  jitter?: number;
}

/** {@link BackoffOptions} with every field set. */
export type Backoff = Required<BackoffOptions>;

/**
 * Checks and completes backoff options over the given defaults. Without an
 * explicit `maxMs`, the default one is raised to `initialMs` when that is
 * larger, so `{ initialMs: 5000 }` alone is valid. Throws `INVALID_OPTIONS`
 * for a negative or non-finite delay, `maxMs < initialMs`, a multiplier below
 * 1 or a jitter outside 0..1.
 */
export function resolveBackoff(options: BackoffOptions | undefined, defaults: Backoff, name: string): Backoff {
  const given = stripUndefined(options ?? {});
  const b = { ...defaults, ...given };
  if (given.maxMs === undefined && b.initialMs > b.maxMs) b.maxMs = b.initialMs;
  const ok =
    Number.isFinite(b.initialMs) && b.initialMs >= 0 &&
    Number.isFinite(b.maxMs) && b.maxMs >= b.initialMs &&
    Number.isFinite(b.multiplier) && b.multiplier >= 1 &&
    Number.isFinite(b.jitter) && b.jitter >= 0 && b.jitter <= 1;
  if (!ok) throw new ClientError('INVALID_OPTIONS', { message: `invalid options: ${name} ${JSON.stringify(b)}` });
  return b;
}

/**
 * The delay in milliseconds before retry number `attempt` (1 = the first
 * retry), with `random()` in [0, 1) supplying the jitter.
 */
export function backoffDelay(backoff: Backoff, attempt: number, random: () => number): number {
  const exponent = Math.max(0, attempt - 1);
  const base = Math.min(backoff.maxMs, backoff.initialMs * backoff.multiplier ** exponent);
  return Math.round(base * (1 - backoff.jitter * random()));
}

/** Returns a copy of `value` without its `undefined` fields. */
export function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
