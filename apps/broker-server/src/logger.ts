/** Severity of a log line, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * How lines are written: `json`, one JSON object per line `{time, level, msg,
 * ...fields}` (for files, pipes and log collectors); `text`, one readable line
 * `<time> <LEVEL> <msg> key=value ...` with an error's stack and causes on
 * indented lines beneath it (for a terminal).
 */
export type LogFormat = 'json' | 'text';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A structured logger: each call writes one entry `{time, level, msg, ...fields}`. */
export interface JsonLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Where and how {@link createLogger} writes. */
export interface LoggerOptions {
  /** Receives each finished line (with its `\n`). Default: `stream.write`. */
  write?: (line: string) => void;
  /** Written to when `write` is not given; its `isTTY` picks the default format. Default: `process.stderr`. */
  stream?: { write(text: string): unknown; isTTY?: boolean };
  /** Default: `text` when `stream` is a terminal and no `write` is given, else `json`. */
  format?: LogFormat;
  /** The clock of the `time` field. Default: the real one. */
  now?: () => Date;
}

/** How deep nested fields and `cause` chains are followed. */
const MAX_DEPTH = 10;

/**
 * A logger writing entries at `level` and above. The second argument is a
 * line sink (JSON lines, kept for callers of the first version) or
 * {@link LoggerOptions}. In both formats bigint values are decimal strings and
 * an error is written whole: name, message, its own fields (such as `code`),
 * `stack`, and its `cause` chain (each cause the same way; a loop is cut with
 * `'[Circular]'`). A field that cannot be serialized costs its entry the
 * fields, not the line: the line then carries `logError`.
 */
export function createLogger(level: LogLevel, output: ((line: string) => void) | LoggerOptions = {}, now: () => Date = () => new Date()): JsonLogger {
  const options: LoggerOptions = typeof output === 'function' ? { write: output, format: 'json', now } : output;
  const stream = options.stream ?? process.stderr;
  const write = options.write ?? ((line: string) => void stream.write(line));
  const format = options.format ?? (options.write === undefined && stream.isTTY === true ? 'text' : 'json');
  const clock = options.now ?? now;
  const render = format === 'text' ? textLine : jsonLine;
  const min = RANK[level];
  const log = (at: LogLevel) => (msg: string, fields: Record<string, unknown> = {}) => {
    if (RANK[at] < min) return;
    write(render(clock().toISOString(), at, msg, fields));
  };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

function jsonLine(time: string, level: LogLevel, msg: string, fields: Record<string, unknown>): string {
  try {
    return `${JSON.stringify({ time, level, msg, ...(plain(fields, new Set(), 0) as Record<string, unknown>) }, bigintAsString)}\n`;
  } catch (error) {
    return `${JSON.stringify({ time, level, msg, logError: `fields not serializable: ${describe(error)}` })}\n`;
  }
}

function textLine(time: string, level: LogLevel, msg: string, fields: Record<string, unknown>): string {
  const errors: Error[] = [];
  let pairs: string;
  try {
    pairs = Object.entries(fields)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => {
        if (isError(value)) errors.push(value);
        return ` ${key}=${textValue(value)}`;
      })
      .join('');
  } catch (error) {
    pairs = ` logError=${textValue(`fields not serializable: ${describe(error)}`)}`;
  }
  let out = `${time} ${level.toUpperCase().padEnd(5)} ${msg}${pairs}\n`;
  for (const error of errors) out += errorBlock(error);
  return out;
}

/** The stack of `error` and of each cause beneath it, indented under the log line. */
function errorBlock(error: Error): string {
  const seen = new Set<unknown>();
  let out = '';
  let current: unknown = error;
  for (let depth = 0; current !== undefined && depth < MAX_DEPTH; depth++) {
    if (seen.has(current)) {
      out += '  Caused by: [Circular]\n';
      break;
    }
    seen.add(current);
    if (!isError(current)) {
      out += `  Caused by: ${textValue(current)}\n`;
      break;
    }
    const [head, ...frames] = (current.stack ?? headline(current)).split('\n');
    out += depth === 0 ? '' : `  Caused by: ${headline(current)}\n`;
    if (depth === 0 && head !== undefined && !head.includes(current.message)) out += `    ${head}\n`;
    for (const frame of frames) out += `    ${frame.trim()}\n`;
    current = current.cause;
  }
  return out;
}

/** `Name [CODE]: message`. */
function headline(error: Error): string {
  const code = (error as { code?: unknown }).code;
  return `${error.name}${typeof code === 'string' || typeof code === 'number' ? ` [${code}]` : ''}: ${error.message}`;
}

/** A field value in the text format: bare when it reads unambiguously, JSON otherwise. */
function textValue(value: unknown): string {
  if (isError(value)) return JSON.stringify(headline(value));
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string') return /^[^\s"=\\]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return JSON.stringify(plain(value, new Set(), 0), bigintAsString) ?? '[unserializable]';
  return String(value);
}

function bigintAsString(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

/**
 * `value` with every error (at any depth, causes included) turned into a plain
 * object `{name, message, ...own fields, stack, cause}`; plain objects and
 * arrays are copied the same way, anything else is left to `JSON.stringify`.
 */
function plain(value: unknown, seen: Set<object>, depth: number): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (seen.has(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Truncated]';
  seen.add(value);
  try {
    if (isError(value)) {
      const out: Record<string, unknown> = { name: value.name, message: value.message };
      for (const [key, field] of Object.entries(value)) if (key !== 'cause') out[key] = plain(field, seen, depth + 1);
      if (value.stack !== undefined) out.stack = value.stack;
      if (value.cause !== undefined) out.cause = plain(value.cause, seen, depth + 1);
      return out;
    }
    if (Array.isArray(value)) return value.map((item) => plain(item, seen, depth + 1));
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) return value;
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(value)) out[key] = plain(field, seen, depth + 1);
    return out;
  } finally {
    seen.delete(value);
  }
}

/** An Error, also one made in another realm (node's own errors seen from a vm context). */
function isError(value: unknown): value is Error {
  return value instanceof Error || Object.prototype.toString.call(value) === '[object Error]';
}

function describe(error: unknown): string {
  return isError(error) ? error.message : String(error);
}
