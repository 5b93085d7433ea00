/**
 * Where the client reports out-of-band events (a failed background ping, a
 * stream reconnecting). Errors of a call are thrown to its caller, never only
 * logged. The default logger is silent.
 *
 * `fields` are always safe to serialize with a plain `JSON.stringify`: u64
 * values (topic ids, indexes) arrive as decimal strings, and errors as plain
 * objects `{name, message, code?, stack, cause?, ...}` (their own fields,
 * bigints among them, converted the same way; an HTTP library's `options`,
 * `request` and `response` left out). Credentials never appear: a field named
 * `authorization` or `token` is `'[redacted]'`. A logger that throws does not
 * disturb the client; what it threw is dropped.
 */
export interface Logger {
  /** Something went wrong in the background and is being retried. */
  warn(message: string, fields?: Record<string, unknown>): void;
  /** Routine events (connected, leader changed). Optional. */
  debug?(message: string, fields?: Record<string, unknown>): void;
}

/** A logger that drops everything. */
export const silentLogger: Logger = { warn: () => undefined };

/**
 * Own fields of errors that are left out: an HTTP library's request options,
 * request and response objects (got's `RequestError` has them), which carry
 * the request's headers, `authorization` (the token) among them.
 */
const DROPPED_ERROR_FIELDS: ReadonlySet<string> = new Set(['options', 'request', 'response']);

/** Keys whose values are credentials, replaced by `'[redacted]'` wherever they appear. */
const SECRET_KEY = /^(authorization|proxy-authorization|token)$/i;

/** How deep nested objects and `cause` chains are followed. */
const MAX_DEPTH = 8;

/**
 * `logger` with its fields made JSON-safe (see {@link Logger}) and its own
 * exceptions contained. Internal to the package.
 */
export function safeLogger(logger: Logger): Logger {
  const safe: Logger = { warn: (message, fields) => call(() => logger.warn(message, logFields(fields))) };
  if (logger.debug !== undefined) safe.debug = (message, fields) => call(() => logger.debug?.(message, logFields(fields)));
  return safe;
}

function call(write: () => void): void {
  try {
    write();
  } catch {
    // A broken log sink must not break a publish or a stream.
  }
}

/** `fields` with every value converted by {@link logValue}. Internal to the package. */
export function logFields(fields: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (fields === undefined) return undefined;
  return logValue(fields, new Set(), 0) as Record<string, unknown>;
}

/**
 * A JSON-safe copy of `value`: bigint as a decimal string, an `Error` as a
 * plain object with its name, message, own fields, stack and cause, arrays and
 * plain objects converted element by element. Other values are kept as they
 * are (`JSON.stringify` handles them or their `toJSON`). Cycles become
 * `'[Circular]'`.
 */
function logValue(value: unknown, seen: Set<object>, depth: number): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object' || value === null) return value;
  if (seen.has(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Truncated]';
  seen.add(value);
  try {
    if (isError(value)) {
      const out: Record<string, unknown> = { name: value.name, message: value.message };
      for (const [key, field] of Object.entries(value)) {
        if (field === undefined || key === 'cause' || DROPPED_ERROR_FIELDS.has(key)) continue;
        out[key] = SECRET_KEY.test(key) ? '[redacted]' : logValue(field, seen, depth + 1);
      }
      if (value.stack !== undefined) out.stack = value.stack;
      if (value.cause !== undefined) out.cause = logValue(value.cause, seen, depth + 1);
      return out;
    }
    if (Array.isArray(value)) return value.map((item) => logValue(item, seen, depth + 1));
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) return value;
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(value)) out[key] = SECRET_KEY.test(key) ? '[redacted]' : logValue(field, seen, depth + 1);
    return out;
  } finally {
    seen.delete(value);
  }
}

/** An Error, also one made in another realm (node's own errors seen from a vm context). */
function isError(value: object): value is Error {
  return value instanceof Error || Object.prototype.toString.call(value) === '[object Error]';
}
