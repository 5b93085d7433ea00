/** Severity of a log line, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A structured logger: each call writes one JSON line `{time, level, msg, ...fields}`. */
export interface JsonLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) {
    const coded = value as Error & { code?: unknown };
    return { name: value.name, message: value.message, ...(coded.code === undefined ? {} : { code: coded.code }) };
  }
  return value;
}

/**
 * A logger writing JSON lines at `level` and above to `write` (default:
 * stderr). bigint fields are written as decimal strings, errors as
 * `{name, message, code}`.
 */
export function createLogger(level: LogLevel, write: (line: string) => void = (line) => process.stderr.write(line), now = () => new Date()): JsonLogger {
  const min = RANK[level];
  const log = (at: LogLevel) => (msg: string, fields: Record<string, unknown> = {}) => {
    if (RANK[at] < min) return;
    write(`${JSON.stringify({ time: now().toISOString(), level: at, msg, ...fields }, replacer)}\n`);
  };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}
