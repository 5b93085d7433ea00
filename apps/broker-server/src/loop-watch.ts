import type { JsonLogger } from './logger.js';

/** A timer that fires this late (ms) means the event loop was blocked: every request, commit and stream waited. */
export const BLOCKED_LOOP_MS = 100;

/** How often the watch's timer is due (ms): the resolution of what it measures. */
const TICK_MS = 20;

/**
 * Watches the event loop: a timer due every {@link TICK_MS} ms that fires {@link BLOCKED_LOOP_MS} ms or more late
 * means something held the loop (synchronous work, a long garbage collection); it is logged as `event loop
 * blocked` with how long, at most once a second. The timer never keeps the process alive. Returns the stop.
 */
export function watchEventLoop(logger: Pick<JsonLogger, 'warn'>, now: () => number = () => performance.now()): () => void {
  let due = now() + TICK_MS;
  let reportedAt = -Infinity;
  const timer = setInterval(() => {
    const at = now();
    const late = at - due;
    due = at + TICK_MS;
    if (late < BLOCKED_LOOP_MS || at - reportedAt < 1000) return;
    reportedAt = at;
    logger.warn('event loop blocked', { blockedMs: Math.round(late) });
  }, TICK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
