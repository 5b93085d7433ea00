/**
 * Where the client reports out-of-band events (a failed background ping, a
 * stream reconnecting). Errors of a call are thrown to its caller, never only
 * logged. The default logger is silent.
 */
export interface Logger {
  /** Something went wrong in the background and is being retried. */
  warn(message: string, fields?: Record<string, unknown>): void;
  /** Routine events (connected, leader changed). Optional. */
  debug?(message: string, fields?: Record<string, unknown>): void;
}

/** A logger that drops everything. */
export const silentLogger: Logger = { warn: () => undefined };
