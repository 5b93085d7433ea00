/**
 * Bounded waiting without jest (the soak runs outside it, and the main entry
 * of `@msg/test-utils` registers jest hooks).
 */

/** Resolves after `ms` milliseconds of real time. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Calls `check` every `intervalMs` (default 100) until it returns something
 * other than `undefined`/`false` (a throw counts as not yet) and returns it;
 * rejects naming `what` after `timeoutMs` milliseconds, with the last error
 * as `cause`.
 */
export async function waitFor<T>(check: () => T | Promise<T>, what: string, timeoutMs: number, intervalMs = 100): Promise<Exclude<T, false | undefined>> {
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
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
    await sleep(intervalMs);
  }
}
