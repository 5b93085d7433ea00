/** Structured fields of a log line (bigints and errors allowed: the logger formats them). */
export type LogFields = Record<string, unknown>;

/**
 * Where the broker writes its log lines: one call per line, the level is the
 * method, the message a fixed text (the variable parts are `fields`). Same
 * shape as the broker server's JSON-lines logger; inject your own.
 */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** A {@link Logger} that drops every line (the default). */
export const silentLogger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
