import { parseArgs } from 'node:util';
import { parseBrokerURL } from '@msg/client';
import { parseU64 } from '@msg/wire';
import { usageError } from './errors.js';

/** One flag of a subcommand. */
export interface FlagSpec {
  /** `string` takes a value (`--from 5` or `--from=5`); `boolean` takes none. */
  type: 'string' | 'boolean';
  /** May be given more than once (values collected in order). */
  multiple?: boolean;
  /** One-letter alias (`-h`). */
  short?: string;
}

/** The flags of a subcommand, by long name (without `--`). */
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** What {@link parseCommandArgs} returns: the flags as given, and the positional arguments in order. */
export interface ParsedArgs {
  /** A string (or a list, for `multiple` flags) for string flags, `true` for boolean flags; absent when not given. */
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  /** Positional arguments (everything after `--` too). */
  positionals: string[];
}

/**
 * Parses `argv` of `msg <command>` strictly: an unknown flag, a missing value
 * or too many or too few positionals is a `USAGE` error (exit 64) naming it.
 * `--help`/`-h` is always accepted (check `values.help`).
 */
export function parseCommandArgs(
  command: string,
  argv: readonly string[],
  flags: FlagSpecs,
  positionals: { min?: number; max?: number; names?: string } = {},
): ParsedArgs {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...flags, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    throw usageError(`${(error as Error).message.replace(/\. To specify a positional argument.*$/s, '')}; see \`msg ${command} --help\``);
  }
  const values = parsed.values as ParsedArgs['values'];
  if (values.help === true) return { values, positionals: parsed.positionals };
  const { min = 0, max = 0, names = 'arguments' } = positionals;
  if (parsed.positionals.length < min) throw usageError(`missing ${names}; see \`msg ${command} --help\``);
  if (parsed.positionals.length > max) {
    throw usageError(`unexpected argument ${JSON.stringify(parsed.positionals[max])}; see \`msg ${command} --help\``);
  }
  return { values, positionals: parsed.positionals };
}

/** The value of string flag `--name`, `undefined` when not given. */
export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const value = args.values[name];
  if (Array.isArray(value)) return value.at(-1) as string | undefined;
  return typeof value === 'string' ? value : undefined;
}

/** The values of a `multiple` string flag, in order (empty when not given). */
export function stringsFlag(args: ParsedArgs, name: string): string[] {
  const value = args.values[name];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return typeof value === 'string' ? [value] : [];
}

/** Whether boolean flag `--name` was given. */
export function booleanFlag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}

/**
 * An integer flag in `[min, max]`; `fallback` when not given. A value that is
 * not a base-10 integer in range is a `USAGE` error naming the flag.
 */
export function integerFlag(args: ParsedArgs, name: string, fallback: number, range: { min?: number; max?: number } = {}): number {
  const text = stringFlag(args, name);
  if (text === undefined) return fallback;
  const { min = 0, max = Number.MAX_SAFE_INTEGER } = range;
  const value = /^-?[0-9]+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw usageError(`--${name}: expected an integer in ${min}..${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

/** A u64 (a topic id, an index) given as `what`; a `USAGE` error naming it when it is not one. */
export function u64Arg(text: string, what: string): bigint {
  const value = parseU64(text.trim());
  if (value === undefined) throw usageError(`${what}: expected an integer in 0..18446744073709551615, got ${JSON.stringify(text)}`);
  return value;
}

/** One of `choices` for flag `--name`; `fallback` when not given. */
export function choiceFlag<T extends string>(args: ParsedArgs, name: string, choices: readonly T[], fallback: T): T {
  const text = stringFlag(args, name);
  if (text === undefined) return fallback;
  if (!(choices as readonly string[]).includes(text)) {
    throw usageError(`--${name}: expected one of ${choices.join(', ')}, got ${JSON.stringify(text)}`);
  }
  return text as T;
}

/** The flags every subcommand that talks to a broker takes. */
export const CONNECTION_FLAGS: FlagSpecs = {
  url: { type: 'string', multiple: true },
  token: { type: 'string' },
  ca: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
};

/** The usage lines of {@link CONNECTION_FLAGS}. */
export const CONNECTION_USAGE = [
  '  --url <url>        a broker of the cluster (may be repeated); default $MSG_URL (comma separated)',
  `                     or ${'http://127.0.0.1:8086'}`,
  '  --token <token>    bearer token of a client identity (brokers started with --auth-file); default $MSG_TOKEN',
  '  --ca <file>        PEM CA that signs the brokers\' certificates (https:// URLs); default $MSG_CA',
  '  --cert <file>      PEM client certificate, for brokers that require one (--tls-ca); needs --key',
  '  --key <file>       PEM private key of --cert',
].join('\n');

/** The URL `msg` talks to when neither `--url` nor `MSG_URL` is given: the broker's default listen address. */
export const DEFAULT_URL = 'http://127.0.0.1:8086';

/** Where and how to reach the cluster, from {@link CONNECTION_FLAGS} and the environment. */
export interface Connection {
  /** The brokers given (at least one), deduplicated by origin. */
  urls: URL[];
  /** The bearer token, when one was given. */
  token?: string;
  /** Paths of the PEM files to read, when given. */
  tlsFiles: { ca?: string; cert?: string; key?: string };
}

/**
 * The {@link Connection} of `args`: `--url` (repeatable; else `env.MSG_URL`,
 * comma separated; else {@link DEFAULT_URL}), `--token` (else
 * `env.MSG_TOKEN`), `--ca` (else `env.MSG_CA`), `--cert` and `--key` (both or
 * neither). A URL that is not an absolute http(s) URL, an empty token or a
 * token with whitespace is a `USAGE` error naming the flag or variable.
 */
export function connectionOf(args: ParsedArgs, env: NodeJS.ProcessEnv): Connection {
  const given = stringsFlag(args, 'url');
  const fromEnv = env.MSG_URL?.trim();
  const source = given.length > 0 ? '--url' : fromEnv ? 'MSG_URL' : 'the default';
  const texts = given.length > 0 ? given : fromEnv ? fromEnv.split(',').map((s) => s.trim()).filter((s) => s !== '') : [DEFAULT_URL];
  const urls = new Map<string, URL>();
  for (const text of texts) {
    const url = parseBrokerURL(text);
    if (url === undefined) throw usageError(`${source}: expected an absolute http:// or https:// URL, got ${JSON.stringify(text)}`);
    urls.set(url.origin, url);
  }
  if (urls.size === 0) throw usageError(`${source}: no URL`);
  const connection: Connection = { urls: [...urls.values()], tlsFiles: {} };
  const flagToken = stringFlag(args, 'token');
  const token = flagToken ?? (env.MSG_TOKEN === '' ? undefined : env.MSG_TOKEN);
  if (token !== undefined) {
    const setting = flagToken !== undefined ? '--token' : 'MSG_TOKEN';
    // Never echo the token itself.
    if (token === '' || /\s/.test(token)) throw usageError(`${setting}: a token is one word without whitespace`);
    connection.token = token;
  }
  const ca = stringFlag(args, 'ca') ?? (env.MSG_CA === '' ? undefined : env.MSG_CA);
  if (ca !== undefined) connection.tlsFiles.ca = ca;
  const cert = stringFlag(args, 'cert');
  const key = stringFlag(args, 'key');
  if ((cert === undefined) !== (key === undefined)) throw usageError(cert === undefined ? '--key needs --cert' : '--cert needs --key');
  if (cert !== undefined && key !== undefined) {
    connection.tlsFiles.cert = cert;
    connection.tlsFiles.key = key;
  }
  return connection;
}
