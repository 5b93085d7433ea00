/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** Give up after this many milliseconds. Default 5000. */
  timeoutMs?: number;
  /** Milliseconds between two tries. Default 10. */
  intervalMs?: number;
  /** Said in the error when time runs out. */
  message?: string;
}

/**
 * Calls `check` until it returns a value other than `undefined`/`false` or
 * stops throwing, then returns that value. Bounded by `timeoutMs`; the last
 * error (if any) becomes the `cause` of the timeout error.
 */
export async function waitFor<T>(check: () => T | Promise<T>, options: WaitForOptions = {}): Promise<Exclude<T, false | undefined>> {
  const { timeoutMs = 5000, intervalMs = 10, message = 'condition not met' } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as Exclude<T, false | undefined>;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      throw new Error(`waitFor: ${message} after ${timeoutMs} ms`, { cause: lastError });
    }
    await sleep(intervalMs);
  }
}

/** Resolves after `ms` milliseconds of real time. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
